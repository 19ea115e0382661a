package graph

import (
	"testing"

	"qconv/hf"
)

// chainedStateGraph updates a [layers, 3] state one layer at a time. chained=true is the form the
// GPU delegate drops (read → slice_update → slice_update → ... → write); false writes the concat
// of the layers' new rows once.
func chainedStateGraph(stateShape []int64, chained bool) *Module {
	m := &Module{}
	f := NewFunc("main")
	m.Funcs = append(m.Funcs, f)
	b := NewBuilder(m, f)
	x := f.AddArg("x", Tensor(F32, 1, 3))
	h := f.AddState(StateConv, Tensor(F32, stateShape...))
	tok := b.Op(OpCreateToken)
	cur, tok := b.ReadState(h, tok)
	layers := stateShape[0]
	var parts []*Value
	next := cur
	for l := int64(0); l < layers; l++ {
		row := b.Add(b.Slice(cur, []int64{l, 0}, []int64{l + 1, 3}), x)
		if chained {
			next = b.Op(OpSliceUpdate, next, row, b.I32s(l, 0), b.I32s(l+1, 3), b.I32s(1, 1))
		} else {
			parts = append(parts, row)
		}
	}
	if !chained {
		next = fuseLayerSlices(b, parts, cur)
	}
	f.AddResult(StateConv, b.WriteState(h, next, tok))
	f.AddResult("y", b.ReduceSum(next, 0))
	if b.Err() != nil {
		panic(b.Err())
	}
	return m
}

func TestVerifyFixedStateWrite(t *testing.T) {
	expectRule(t, Verify(chainedStateGraph([]int64{3, 3}, true), VerifyOptions{Device: GPU}),
		RuleFixedStateWrite, "takes another slice_update as its input")
	expectRule(t, Verify(chainedStateGraph([]int64{2, 3}, true), VerifyOptions{Device: ANE}),
		RuleFixedStateWrite, `"convState" is updated by 2 slice_update ops`)
	// One slice_update is not a chain, and the fused form passes.
	if err := Verify(chainedStateGraph([]int64{1, 3}, true), VerifyOptions{Device: GPU}); err != nil {
		t.Errorf("single slice_update: %v", err)
	}
	if err := Verify(chainedStateGraph([]int64{3, 3}, false), VerifyOptions{Device: GPU}); err != nil {
		t.Errorf("fused write: %v", err)
	}
}

// The fused write computes what the chain computes (the interpreter runs both).
func TestFusedStateWriteSameValues(t *testing.T) {
	var got [2][]float32
	for i, chained := range []bool{true, false} {
		it, err := NewInterpreter(chainedStateGraph([]int64{3, 3}, chained), "main")
		if err != nil {
			t.Fatal(err)
		}
		states := map[string]*Array{StateConv: NewArray(F32, 3, 3)}
		for step := 0; step < 2; step++ {
			out, err := it.Run(map[string]*Array{"x": farr(F32, []int64{1, 3}, 1, -2, 0.5)}, states)
			if err != nil {
				t.Fatal(err)
			}
			got[i] = append([]float32(nil), out["y"].F...)
		}
	}
	want := make([]float64, len(got[0]))
	for i, v := range got[0] {
		want[i] = float64(v)
	}
	checkNear(t, "fused vs chained", got[1], want, 0)
	checkNear(t, "after two steps", got[1], []float64{6, -12, 3}, 0)
}

// Every lowered contract writes each fixed-shape state once, from one concat of the layers' new
// slices; reads stay narrow per-layer slices; the KV pair (dynamic) keeps one slice_update per
// full-attention layer.
func TestLoweredFixedStatesWrittenOnce(t *testing.T) {
	for _, fx := range []string{"tinyqwen35-code", "random/tiny_untied_8L"} {
		ck := openFixture(t, fx)
		cfg := ck.Config
		Ll, Lf := int64(cfg.NumLayersOf(hf.LinearAttention)), cfg.NumLayersOf(hf.FullAttention)
		m, err := Lower(cfg, LowerOptions{Contract: Pipelined, Compute: F16, StateDType: F16, NormDType: F16, Weights: DenseWeights{ck, F16}})
		if err != nil {
			t.Fatal(err)
		}
		if err := Verify(m, VerifyOptions{Device: ANE}); err != nil {
			t.Fatalf("%s: %v", fx, err)
		}
		f := m.Func("main")
		for _, name := range []string{StateConv, StateRec} {
			h := f.Arg(name).Value
			var read *Value
			writes := 0
			for _, op := range f.Body {
				if op.Name == OpReadHandle && op.Operands[0] == h {
					read = op.Results[0]
				}
				if op.Name == OpWriteHandle && op.Operands[0] == h {
					writes++
					w := op.Operands[1].Def
					if w == nil || w.Name != OpConcat || int64(len(w.Operands)-1) != Ll {
						t.Errorf("%s: %s is written from %v, want one concat of %d layer slices", fx, name, w, Ll)
					}
				}
			}
			if writes != 1 {
				t.Errorf("%s: %s written %d times", fx, name, writes)
			}
			slices := 0
			for _, op := range f.Body {
				for j, v := range op.Operands {
					if v != read {
						continue
					}
					if op.Name != OpSlice || j != 0 || op.Results[0].Type.Shape[0] != 1 {
						t.Errorf("%s: %s's read value feeds %s (operand %d), want only narrow per-layer slices", fx, name, op.Name, j)
					}
					slices++
				}
			}
			if int64(slices) != Ll {
				t.Errorf("%s: %s read by %d slices, want %d", fx, name, slices, Ll)
			}
		}
		kv := 0
		for _, op := range f.Body {
			if op.Name == OpSliceUpdate {
				kv++
			}
		}
		if kv != 2*Lf {
			t.Errorf("%s: %d slice_updates, want %d (K and V per full-attention layer)", fx, kv, 2*Lf)
		}
	}
}
