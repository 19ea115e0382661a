package graph

import (
	"testing"
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
		next = FuseLayerSlices(b, parts, cur)
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
