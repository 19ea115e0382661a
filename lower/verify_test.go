package lower

import (
	"testing"

	"qconv/graph"
)

// The lowered pipelined graph takes its KV index from get_shape; rewiring it to position_ids'
// value must be caught.
func TestVerifyCatchesValueIndexInLoweredGraph(t *testing.T) {
	ck := openFixture(t, "random/tiny_tied_4L")
	m, err := Lower(ck.Config, Options{Contract: graph.Pipelined, Compute: graph.F32, StateDType: graph.F32, Weights: DenseWeights{ck, graph.F32}})
	if err != nil {
		t.Fatal(err)
	}
	f := m.Func("main")
	pos := f.Arg(graph.InPositionIDs).Value
	for _, op := range f.Body {
		if op.Name == graph.OpGetShape && op.Operands[0] == pos {
			// get_shape(position_ids) -> an op on the value: cast keeps the type checkable.
			op.Name = graph.OpCast
			op.Results[0].Type = graph.Tensor(graph.UI32, 2)
			op.Operands[0] = pos
		}
	}
	err = graph.Verify(m, graph.VerifyOptions{Device: graph.GPU})
	if !graph.HasRule(err, graph.RuleShapeIndex) {
		t.Fatalf("value-derived index not caught: %v", err)
	}
}
