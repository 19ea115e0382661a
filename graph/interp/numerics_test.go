package interp

import (
	"math"
	"testing"

	"qconv/graph"
	"qconv/lower"
)

// sumGraph is y = x · ones for x [rows, 4] f16; rows dynamic or static.
func sumGraph(rows int64) *graph.Module {
	m := &graph.Module{}
	f := graph.NewFunc("main")
	m.Funcs = append(m.Funcs, f)
	b := graph.NewBuilder(m, f)
	x := f.AddArg("x", graph.Tensor(graph.F16, rows, 4))
	f.AddResult("y", b.Matmul(x, b.Splat(graph.F16, 1, 4, 1)))
	if b.Err() != nil {
		panic(b.Err())
	}
	return m
}

// 2048 + 1 + 1 + 1: exact accumulation gives 2051, rounded once to fp16's 2052; an fp16
// accumulator rounds 2049 back to 2048 at every step. Static graphs are never stressed.
func TestF16AccumulateMatmul(t *testing.T) {
	for _, c := range []struct {
		rows int64
		n    Numerics
		want float64
	}{
		{graph.Dyn, Exact, 2052},
		{graph.Dyn, F16Accumulate, 2048},
		{1, F16Accumulate, 2052},
	} {
		m := sumGraph(c.rows)
		it, err := NewNumerics(m, "main", c.n)
		if err != nil {
			t.Fatal(err)
		}
		out, err := it.Run(map[string]*Array{"x": farr(graph.F16, []int64{1, 4}, 2048, 1, 1, 1)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkNear(t, c.n.String(), out["y"].F, []float64{c.want}, 0)
	}
}

// On a lowered fp16 pipelined graph the stress moves the logits by a small relative amount (the
// device measured about 1.3%); forks keep the mode.
func TestF16AccumulateLoweredGraph(t *testing.T) {
	ck := openFixture(t, "tinyqwen35-code")
	m, err := lower.Lower(ck.Config, lower.Options{Contract: graph.Pipelined, Compute: graph.F16, StateDType: graph.F16, NormDType: graph.F16, Weights: lower.DenseWeights{Checkpoint: ck, DType: graph.F16}})
	if err != nil {
		t.Fatal(err)
	}
	if !m.Dynamic() || !m.HasF16Matmul() {
		t.Fatal("the pipelined fp16 graph should be dynamic with fp16 matmuls")
	}
	ex, err := NewSession(m, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := NewSessionNumerics(m, nil, F16Accumulate)
	if err != nil {
		t.Fatal(err)
	}
	var a, b []float32
	for _, id := range []int{321, 285, 75, 68, 10} {
		if a, err = ex.Step(id); err != nil {
			t.Fatal(err)
		}
		if b, err = st.Step(id); err != nil {
			t.Fatal(err)
		}
	}
	fk, err := st.Fork()
	if err != nil {
		t.Fatal(err)
	}
	c, err := fk.Step(80)
	if err != nil {
		t.Fatal(err)
	}
	d, err := st.Step(80)
	if err != nil {
		t.Fatal(err)
	}
	checkNear(t, "fork keeps the mode", c, f64s(d), 0)
	var num, den float64
	for i := range a {
		num += (float64(a[i]) - float64(b[i])) * (float64(a[i]) - float64(b[i]))
		den += float64(a[i]) * float64(a[i])
	}
	rel := math.Sqrt(num / den)
	t.Logf("fp16-accumulate moves the logits by %.4f relative (L2)", rel)
	if rel < 1e-4 || rel > 0.1 {
		t.Errorf("relative logit change %.4g under fp16 accumulation, want between 1e-4 and 0.1", rel)
	}
}

// Fused weight products (kernels.MatVecF16Acc from the stored weights) and unfused ones (the
// per-term Axpy + RoundF16 loop over a transposed copy) accumulate alike, bit for bit.
func TestF16AccumulateFusedEqualsPlain(t *testing.T) {
	ck := openFixture(t, "tinyqwen35-code")
	m, err := lower.Lower(ck.Config, lower.Options{Contract: graph.Pipelined, Compute: graph.F16, StateDType: graph.F16, NormDType: graph.F16, Weights: lower.DenseWeights{Checkpoint: ck, DType: graph.F16}})
	if err != nil {
		t.Fatal(err)
	}
	var logits [2][]float32
	for i, noFuse := range []bool{false, true} {
		it, err := newInterpreter(m, "main", interpOptions{f16Acc: true, noFuse: noFuse})
		if err != nil {
			t.Fatal(err)
		}
		states := map[string]*Array{}
		for _, a := range m.Func("main").Args {
			if a.Value.Type.Kind == graph.HandleKind {
				shape := append([]int64(nil), a.Value.Type.Shape...)
				for j, d := range shape {
					if d == graph.Dyn {
						shape[j] = 4
					}
				}
				states[a.Name] = NewArray(a.Value.Type.DType, shape...)
			}
		}
		for p, id := range []int{321, 285, 75, 68} {
			out, err := it.Run(map[string]*Array{graph.InInputIDs: {DType: graph.SI32, Shape: []int64{1, 1}, I: []int64{int64(id)}}, graph.InPositionIDs: NewArray(graph.SI32, 1, int64(p+1))}, states)
			if err != nil {
				t.Fatal(err)
			}
			logits[i] = append([]float32(nil), out[graph.OutLogits].F...)
		}
	}
	checkNear(t, "fused vs plain", logits[0], f64s(logits[1]), 0)
}

// One decode step of the trained fixture's fp16 pipelined graph, exact vs fp16-accumulate (the
// stress gate's extra cost).
func BenchmarkStepNumerics(b *testing.B) {
	ck := openFixture(b, "tinyqwen35-code")
	m, err := lower.Lower(ck.Config, lower.Options{Contract: graph.Pipelined, Compute: graph.F16, StateDType: graph.F16, NormDType: graph.F16, Weights: lower.DenseWeights{Checkpoint: ck, DType: graph.F16}})
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []Numerics{Exact, F16Accumulate} {
		b.Run(n.String(), func(b *testing.B) {
			s, err := NewSessionNumerics(m, nil, n)
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; i < b.N; i++ {
				if s.Pos() >= 48 {
					if s, err = NewSessionNumerics(m, nil, n); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := s.Step(100 + i%500); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
