package interp

import (
	"path/filepath"
	"testing"

	"qconv/graph"
	"qconv/hf"
)

// Test helpers this package's tests share with graph's and lower's (test files cannot be imported
// across packages).

func openFixture(t testing.TB, name string) *hf.Checkpoint {
	t.Helper()
	ck, err := hf.Open(filepath.Join("..", "..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	return ck
}

// chainedStateGraph updates a [layers, 3] state one layer at a time. chained=true is the form the
// GPU delegate drops (read → slice_update → slice_update → ... → write); false writes the concat
// of the layers' new rows once.
func chainedStateGraph(stateShape []int64, chained bool) *graph.Module {
	m := &graph.Module{}
	f := graph.NewFunc("main")
	m.Funcs = append(m.Funcs, f)
	b := graph.NewBuilder(m, f)
	x := f.AddArg("x", graph.Tensor(graph.F32, 1, 3))
	h := f.AddState(graph.StateConv, graph.Tensor(graph.F32, stateShape...))
	tok := b.Op(graph.OpCreateToken)
	cur, tok := b.ReadState(h, tok)
	layers := stateShape[0]
	var parts []*graph.Value
	next := cur
	for l := int64(0); l < layers; l++ {
		row := b.Add(b.Slice(cur, []int64{l, 0}, []int64{l + 1, 3}), x)
		if chained {
			next = b.Op(graph.OpSliceUpdate, next, row, b.I32s(l, 0), b.I32s(l+1, 3), b.I32s(1, 1))
		} else {
			parts = append(parts, row)
		}
	}
	if !chained {
		next = graph.FuseLayerSlices(b, parts, cur)
	}
	f.AddResult(graph.StateConv, b.WriteState(h, next, tok))
	f.AddResult("y", b.ReduceSum(next, 0))
	if b.Err() != nil {
		panic(b.Err())
	}
	return m
}
