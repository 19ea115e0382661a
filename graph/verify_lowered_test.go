package graph

import "testing"

// The lowered pipelined graph takes its KV index from get_shape; rewiring it to position_ids'
// value must be caught.
func TestVerifyCatchesValueIndexInLoweredGraph(t *testing.T) {
	ck := openFixture(t, "random/tiny_tied_4L")
	m, err := Lower(ck.Config, LowerOptions{Contract: Pipelined, Compute: F32, StateDType: F32, Weights: DenseWeights{ck, F32}})
	if err != nil {
		t.Fatal(err)
	}
	f := m.Func("main")
	pos := f.Arg(InPositionIDs).Value
	for _, op := range f.Body {
		if op.Name == OpGetShape && op.Operands[0] == pos {
			// get_shape(position_ids) -> an op on the value: cast keeps the type checkable.
			op.Name = OpCast
			op.Results[0].Type = Tensor(UI32, 2)
			op.Operands[0] = pos
		}
	}
	err = Verify(m, VerifyOptions{Device: GPU})
	if !HasRule(err, RuleShapeIndex) {
		t.Fatalf("value-derived index not caught: %v", err)
	}
}
