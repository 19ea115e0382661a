package interp

import (
	"slices"
	"testing"

	"qconv/graph"
	"qconv/internal/kernels"
	"qconv/lower"
	"qconv/oracle"
)

// The fp32 form of the stock contract matches the fp32 reference within 1e-4 on every golden
// prompt, fed three ways: token by token through @main, the whole prompt through @main in one
// call (q = prompt length, every row's logits checked), and the prompt but its last token
// through @prefill followed by the last through @main.
func TestStockMatchesReference(t *testing.T) {
	for _, fx := range fixtureModels {
		t.Run(fx.dir, func(t *testing.T) {
			ck := openFixture(t, fx.dir)
			ref, err := oracle.New(ck, oracle.Options{})
			if err != nil {
				t.Fatal(err)
			}
			m := lowerFor(t, ck, lower.Options{Contract: graph.Stock, Compute: graph.F32, StateDType: graph.F32, Weights: lower.DenseWeights{Checkpoint: ck, DType: graph.F32}})
			gf := loadGoldens(t, fx.trained)
			worst := map[string]float64{}
			for _, p := range gf.Models[fx.model].Prompts {
				traj := append(append([]int{}, p.IDs...), p.GenIDs...)
				var want [][]float32
				st := ref.NewState()
				for _, id := range traj {
					l, err := ref.Decode(st, id)
					if err != nil {
						t.Fatal(err)
					}
					want = append(want, l)
				}
				// token by token
				s, err := NewStockSession(m)
				if err != nil {
					t.Fatal(err)
				}
				for i, id := range traj {
					l, err := s.Step(id)
					if err != nil {
						t.Fatal(err)
					}
					worst["step"] = max(worst["step"], maxAbsDiff(l, want[i]))
				}
				// whole prompt through @main, then the continuation one token at a time
				s, _ = NewStockSession(m)
				rows, err := s.Main(p.IDs)
				if err != nil {
					t.Fatal(err)
				}
				for i := range rows {
					worst["main-q"] = max(worst["main-q"], maxAbsDiff(rows[i], want[i]))
				}
				for k, id := range p.GenIDs {
					l, err := s.Step(id)
					if err != nil {
						t.Fatal(err)
					}
					worst["main-q"] = max(worst["main-q"], maxAbsDiff(l, want[len(p.IDs)+k]))
				}
				// @prefill then @main
				s, _ = NewStockSession(m)
				l, err := s.Prefill(p.IDs)
				if err != nil {
					t.Fatal(err)
				}
				worst["prefill"] = max(worst["prefill"], maxAbsDiff(l, want[len(p.IDs)-1]))
				for k, id := range p.GenIDs {
					if got := kernels.Argmax(l); got != id {
						t.Errorf("%s: after @prefill, greedy step %d is %d, golden %d", p.Name, k, got, id)
					}
					if l, err = s.Step(id); err != nil {
						t.Fatal(err)
					}
					worst["prefill"] = max(worst["prefill"], maxAbsDiff(l, want[len(p.IDs)+k]))
				}
			}
			// One call over the whole prompt sums in another order than one token per call; on the
			// untrained 8-layer fixture one row of one prompt measured 3.4e-4 (its neighbours 3e-5).
			// A wrong mask, RoPE position or state row moves logits by O(1).
			tol := map[string]float64{"step": 1e-4, "prefill": 1e-4, "main-q": 5e-4}
			for k, w := range worst {
				t.Logf("%s: max |graph - reference| %.2e", k, w)
				if w > tol[k] {
					t.Errorf("%s: graph differs from the reference by %.3g > %g", k, w, tol[k])
				}
			}
			if len(worst) != 3 {
				t.Fatalf("measured %d feeding modes, want 3", len(worst))
			}
		})
	}
}

// The composite's graph body (the decomposition shipped for runtimes that inline it) equals the
// declared op at query length 1, and an invoke over three tokens (run by the declaration) equals
// three one-token invokes chained through the state (each run through the shipped body).
func TestGatedDeltaCompositeBody(t *testing.T) {
	ck := openFixture(t, "tinyqwen35-code")
	cfg := ck.Config
	m := lowerFor(t, ck, lower.Options{Contract: graph.Stock, Compute: graph.F32, StateDType: graph.F32, Weights: lower.DenseWeights{Checkpoint: ck, DType: graph.F32}})
	nv, dk, dv := int64(cfg.LinearNumValueHeads), int64(cfg.LinearKeyHeadDim), int64(cfg.LinearValueHeadDim)
	// A probe graph that invokes the composite (run by its declaration).
	probe := graph.NewFunc("probe")
	b := graph.NewBuilder(m, probe)
	var args []*graph.Value
	for _, a := range m.Func(lower.GatedDeltaFunc).Args {
		args = append(args, probe.AddArg(a.Name, a.Value.Type))
	}
	outs := b.OpN(graph.OpInvoke, map[string]graph.Attr{"callee": graph.SymbolRefAttr{Name: lower.GatedDeltaFunc}}, args...)
	probe.AddResult("output_0", outs[0])
	probe.AddResult("output_1", outs[1])
	m.Funcs = append(m.Funcs, probe)
	if b.Err() != nil {
		t.Fatal(b.Err())
	}
	body, err := New(m, lower.GatedDeltaFunc)
	if err != nil {
		t.Fatal(err)
	}
	decl, err := New(m, "probe")
	if err != nil {
		t.Fatal(err)
	}
	rng := uint64(7)
	rnd := func(a *Array, scale float32) *Array {
		for i := range a.F {
			rng = rng*6364136223846793005 + 1442695040888963407
			a.F[i] = scale * (float32(rng>>40)/float32(1<<24) - 0.5)
		}
		return a
	}
	inputs := func(S int64) map[string]*Array {
		return map[string]*Array{
			"query": rnd(NewArray(graph.F32, 1, nv, S, dk), 2), "key": rnd(NewArray(graph.F32, 1, nv, S, dk), 2), "value": rnd(NewArray(graph.F32, 1, nv, S, dv), 2),
			"g": rnd(NewArray(graph.F32, 1, nv, S), 1), "beta": rnd(NewArray(graph.F32, 1, nv, S), 1), "initial_state": rnd(NewArray(graph.F32, 1, nv, dk, dv), 1),
		}
	}
	in := inputs(1)
	for i := range in["g"].F { // log-decays are negative
		in["g"].F[i] -= 0.5
	}
	a, err := body.Run(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]float32{"output_0": slices.Clone(a["output_0"].F), "output_1": slices.Clone(a["output_1"].F)}
	c := map[string]*Array{"output_0": NewArray(graph.F32, 1, 1, nv, dv), "output_1": NewArray(graph.F32, 1, nv, dk, dv)}
	gatedDeltaDeclared(in["query"], in["key"], in["value"], in["g"], in["beta"], in["initial_state"], c["output_0"], c["output_1"])
	for k, w := range want {
		if d := maxAbsDiff(c[k].F, w); d > 1e-6 {
			t.Errorf("%s: declared op differs from the body by %.3g at query length 1", k, d)
		}
	}

	// Three tokens at once vs one at a time.
	in3 := inputs(3)
	all, err := decl.Run(in3, nil)
	if err != nil {
		t.Fatal(err)
	}
	allOut, allState := slices.Clone(all["output_0"].F), slices.Clone(all["output_1"].F)
	state := in3["initial_state"]
	for s := int64(0); s < 3; s++ {
		one := map[string]*Array{"initial_state": state}
		for _, name := range []string{"query", "key", "value", "g", "beta"} {
			src := in3[name]
			inner := int64(1)
			if len(src.Shape) == 4 {
				inner = src.Shape[3]
			}
			shape := slices.Clone(src.Shape)
			shape[2] = 1
			dst := NewArray(graph.F32, shape...)
			for h := int64(0); h < nv; h++ {
				copy(dst.F[h*inner:(h+1)*inner], src.F[(h*3+s)*inner:(h*3+s+1)*inner])
			}
			one[name] = dst
		}
		r, err := decl.Run(one, nil)
		if err != nil {
			t.Fatal(err)
		}
		if d := maxAbsDiff(r["output_0"].F, allOut[s*nv*dv:(s+1)*nv*dv]); d > 1e-6 {
			t.Errorf("token %d: output differs by %.3g between one call over 3 tokens and 3 calls", s, d)
		}
		state = &Array{DType: graph.F32, Shape: []int64{1, nv, dk, dv}, F: slices.Clone(r["output_1"].F)}
	}
	if d := maxAbsDiff(state.F, allState); d > 1e-6 {
		t.Errorf("final state differs by %.3g between one call over 3 tokens and 3 calls", d)
	}
}
