package interp

import (
	"math"
	"testing"

	"qconv/graph"
	"qconv/lower"
)

// The bf16 stock lowering's composite: bf16 operands and results, the update in fp32 (the body
// casts in and out, graph.RecurrenceMathDType), and the shipped body agrees with the declared op
// at query length 1 to within one bf16 rounding of each output.
func TestGatedDeltaCompositeBodyBF16(t *testing.T) {
	ck := openFixture(t, "tinyqwen35-code")
	cfg := ck.Config
	m := lowerFor(t, ck, lower.Options{Contract: graph.Stock, Compute: graph.BF16, StateDType: graph.BF16, Weights: lower.DenseWeights{Checkpoint: ck, DType: graph.BF16}})
	gdu := m.Func(lower.GatedDeltaFunc)
	for _, a := range gdu.Args {
		if a.Value.Type.DType != graph.BF16 {
			t.Fatalf("composite operand %s is %s, want bf16", a.Name, a.Value.Type)
		}
	}
	for _, r := range gdu.Results {
		if r.Value.Type.DType != graph.BF16 {
			t.Fatalf("composite result %s is %s, want bf16", r.Name, r.Value.Type)
		}
	}
	f32Ops := 0
	for _, op := range gdu.Body {
		if op.Name == graph.OpMatmul || op.Name == graph.OpMul || op.Name == graph.OpReduceSum {
			if op.Results[0].Type.DType != graph.F32 {
				t.Fatalf("the body's %s computes in %s, want f32", op.Name, op.Results[0].Type.DType)
			}
			f32Ops++
		}
	}
	if f32Ops == 0 {
		t.Fatal("no fp32 arithmetic in the body")
	}
	nv, dk, dv := int64(cfg.LinearNumValueHeads), int64(cfg.LinearKeyHeadDim), int64(cfg.LinearValueHeadDim)
	rng := uint64(11)
	rnd := func(a *Array, scale, shift float32) *Array {
		for i := range a.F {
			rng = rng*6364136223846793005 + 1442695040888963407
			a.F[i] = graph.RoundBF16(scale*(float32(rng>>40)/float32(1<<24)-0.5) + shift)
		}
		return a
	}
	in := map[string]*Array{
		"query": rnd(NewArray(graph.BF16, 1, nv, 1, dk), 2, 0), "key": rnd(NewArray(graph.BF16, 1, nv, 1, dk), 2, 0), "value": rnd(NewArray(graph.BF16, 1, nv, 1, dv), 2, 0),
		"g": rnd(NewArray(graph.BF16, 1, nv, 1), 1, -0.5), "beta": rnd(NewArray(graph.BF16, 1, nv, 1), 1, 0.5), "initial_state": rnd(NewArray(graph.BF16, 1, nv, dk, dv), 1, 0),
	}
	body, err := New(m, lower.GatedDeltaFunc)
	if err != nil {
		t.Fatal(err)
	}
	got, err := body.Run(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]*Array{"output_0": NewArray(graph.BF16, 1, 1, nv, dv), "output_1": NewArray(graph.BF16, 1, nv, dk, dv)}
	gatedDeltaDeclared(in["query"], in["key"], in["value"], in["g"], in["beta"], in["initial_state"], want["output_0"], want["output_1"])
	for k, w := range want {
		g := got[k]
		if g.DType != graph.BF16 {
			t.Fatalf("%s is %s", k, g)
		}
		for i, x := range g.F {
			if graph.RoundBF16(x) != x {
				t.Fatalf("%s[%d] = %v is not a bf16", k, i, x)
			}
			// One bf16 rounding apart at most: 2^-8 relative, or an absolute 2^-8 near zero.
			if d := math.Abs(float64(x - w.F[i])); d > math.Max(math.Abs(float64(w.F[i])), 1)*0x1p-8 {
				t.Fatalf("%s[%d]: body %v, declared op %v", k, i, x, w.F[i])
			}
		}
	}
}
