package mlir

import (
	"path/filepath"
	"testing"

	"qconv/graph"
	"qconv/hf"
	"qconv/lower"
)

// Test helpers this package's tests share with graph's, interp's and lower's (test files cannot
// be imported across packages).

func openFixture(t testing.TB, name string) *hf.Checkpoint {
	t.Helper()
	ck, err := hf.Open(filepath.Join("..", "..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	return ck
}

// lowerFor lowers ck under opt and verifies the module for the device opt's state dtype implies.
func lowerFor(t testing.TB, ck *hf.Checkpoint, opt lower.Options) *graph.Module {
	t.Helper()
	m, err := lower.Lower(ck.Config, opt)
	if err != nil {
		t.Fatal(err)
	}
	dev := graph.GPU
	if opt.StateDType == graph.F16 {
		dev = graph.ANE
	}
	if err := graph.Verify(m, graph.VerifyOptions{Device: dev}); err != nil {
		t.Fatal(err)
	}
	return m
}

// stateGraph is a minimal valid stateful graph: one state written with x added to it.
func stateGraph(stateType graph.Type, write func(b *graph.Builder, cur, x *graph.Value) *graph.Value) (*graph.Module, *graph.Func) {
	m := &graph.Module{}
	f := graph.NewFunc("main")
	m.Funcs = append(m.Funcs, f)
	b := graph.NewBuilder(m, f)
	x := f.AddArg("x", stateType)
	h := f.AddState(graph.StateRec, stateType)
	tok := b.Op(graph.OpCreateToken)
	cur, tok := b.ReadState(h, tok)
	nv := write(b, cur, x)
	f.AddResult(graph.StateRec, b.WriteState(h, nv, tok))
	f.AddResult("y", b.Add(cur, x))
	if b.Err() != nil {
		panic(b.Err())
	}
	return m, f
}
