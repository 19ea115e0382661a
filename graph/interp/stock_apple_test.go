package interp

import (
	"strings"
	"testing"

	"qconv/graph"
	"qconv/lower"
	"qconv/oracle"
)

// The stock contract in Apple's op forms (rms_norm and causal scaled_dot_product_attention
// composites, run by their declarations) matches the fp32 reference token by token and over a
// whole prompt in one @main call; and in that module each composite's shipped body equals its
// declared op (the sdpa body with fewer queries than keys, as a decode step after a prefill).
func TestStockAppleFormsMatchReference(t *testing.T) {
	ck := openFixture(t, "tinyqwen35-code")
	m := lowerFor(t, ck, lower.Options{Contract: graph.Stock, Compute: graph.F32, StateDType: graph.F32, AppleComposites: true, Weights: lower.DenseWeights{Checkpoint: ck, DType: graph.F32}})
	counts := map[string]int{}
	for _, f := range m.Funcs {
		counts[graph.CompositeName(f.Composite)]++
	}
	if counts[graph.CompositeRMSNorm] == 0 || counts[graph.CompositeSDPA] != 1 || counts[graph.CompositeGatedDelta] != 1 {
		t.Fatalf("composite graphs %v", counts)
	}
	ref, err := oracle.New(ck, oracle.Options{})
	if err != nil {
		t.Fatal(err)
	}
	gf := loadGoldens(t, true)
	var worstStep, worstMain float64
	for _, p := range gf.Models["tinyqwen35-code"].Prompts[:3] {
		st := ref.NewState()
		var want [][]float32
		for _, id := range p.IDs {
			l, err := ref.Decode(st, id)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, l)
		}
		s, err := NewStockSession(m)
		if err != nil {
			t.Fatal(err)
		}
		for i, id := range p.IDs {
			l, err := s.Step(id)
			if err != nil {
				t.Fatal(err)
			}
			worstStep = max(worstStep, maxAbsDiff(l, want[i]))
		}
		s, _ = NewStockSession(m)
		rows, err := s.Main(p.IDs)
		if err != nil {
			t.Fatal(err)
		}
		for i := range rows {
			worstMain = max(worstMain, maxAbsDiff(rows[i], want[i]))
		}
	}
	if worstStep > 1e-4 || worstMain > 5e-4 {
		t.Errorf("Apple's forms differ from the reference by %.3g token by token, %.3g over whole prompts", worstStep, worstMain)
	}

	// Each composite's body against its declaration.
	for _, f := range m.Funcs {
		name := graph.CompositeName(f.Composite)
		if name != graph.CompositeSDPA && name != graph.CompositeRMSNorm {
			continue
		}
		probe := graph.NewFunc("probe_" + f.Name)
		b := graph.NewBuilder(m, probe)
		var args []*graph.Value
		in := map[string]*Array{}
		for i, a := range f.Args {
			args = append(args, probe.AddArg(a.Name, a.Value.Type))
			shape := append([]int64(nil), a.Value.Type.Shape...)
			for d := range shape {
				if shape[d] == graph.Dyn {
					shape[d] = 3 // queries
					if name == graph.CompositeSDPA && i > 0 {
						shape[d] = 5 // keys
					}
				}
			}
			in[a.Name] = randArray(uint64(11+i), a.Value.Type.DType, shape...)
		}
		probe.AddResult("output", b.OpN(graph.OpInvoke, map[string]graph.Attr{"callee": graph.SymbolRefAttr{Name: f.Name}}, args...)[0])
		m.Funcs = append(m.Funcs, probe)
		if b.Err() != nil {
			t.Fatal(b.Err())
		}
		decl, body := run(t, m, probe.Name, in), run(t, m, f.Name, in)
		if d := maxAbsDiff(decl.F, body.F); d > 1e-5 || len(decl.F) == 0 {
			t.Errorf("@%s: declared op differs from the body by %.3g", f.Name, d)
		}
		if !strings.HasPrefix(f.Name, map[string]string{graph.CompositeSDPA: "sdpa_", graph.CompositeRMSNorm: "rms_norm_"}[name]) {
			t.Errorf("composite graph @%s", f.Name)
		}
	}
}
