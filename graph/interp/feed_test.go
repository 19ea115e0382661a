package interp

import (
	"math"
	"strings"
	"testing"

	"qconv/graph"
	"qconv/hf"
	"qconv/lower"
)

// On the pipelined GPU form the batched path is really taken: the plan finds a region per
// sub-state, every weight product runs batched, and a chunk reads each weight tile once for all
// its frames (the tile count per chunk equals one pass over the weights, not one per token).
func TestFeedTakesBatchedPath(t *testing.T) {
	defer func(n int) { FeedChunk = n }(FeedChunk)
	FeedChunk = 8
	ck := openFixture(t, "tinyqwen35-code")
	m := lowerFor(t, ck, lower.Options{Contract: graph.Pipelined, Compute: graph.F16, StateDType: graph.F32,
		Weights: lower.DenseWeights{Checkpoint: ck, DType: graph.F16}})
	s, err := NewSession(m, nil)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := s.Fork()
	fd := s.feed.feeder(s.decIt, false)
	if fd == nil {
		t.Fatalf("no batched plan: %v", s.feed.err)
	}
	cfg := ck.Config
	wantRegions := 2*cfg.NumLayersOf(hf.FullAttention) + 2*cfg.NumLayersOf(hf.LinearAttention)
	if fd.fp.regions != wantRegions || fd.fp.inRegion != 0 || fd.fp.batched == 0 {
		t.Fatalf("plan %s; want %d regions (K, V per attention layer, conv and recurrence per DeltaNet layer), all products batched", fd.fp.describe(), wantRegions)
	}
	// Tiles of one pass over every batched weight.
	perPass := int64(0)
	for _, n := range fd.fp.nodes {
		if n.batch {
			tile := max(2, feedTileBytes/(4*n.st.w.cols)) &^ 1
			perPass += int64((n.st.w.rows + tile - 1) / tile)
		}
	}
	ids := []int{3, 14, 15, 92, 65, 35, 89, 79, 32, 38, 46, 26, 43, 38, 32, 79} // two chunks of 8
	var rows [][]float32
	if err := s.Feed(ids, func(i int, l []float32) error {
		rows = append(rows, append([]float32(nil), l...))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The products took the decode-once path (the one-vector kernel is a dot of the decoded row).
	for w, ok := range fd.exact {
		if !ok {
			t.Errorf("weight [%d, %d]: the one-vector kernel does not accumulate as kernels.Dot; Feed multiplies it per frame", w.rows, w.cols)
		}
	}
	if len(fd.exact) == 0 {
		t.Errorf("no weight was checked for the decode-once path")
	}
	if got := fd.tilePasses.Load(); got != 2*perPass {
		t.Errorf("%d weight tiles read for 16 tokens in chunks of 8, want %d (two passes)", got, 2*perPass)
	}
	for i, id := range ids {
		want, err := ref.Step(id)
		if err != nil {
			t.Fatal(err)
		}
		for j := range want {
			if math.Float32bits(want[j]) != math.Float32bits(rows[i][j]) {
				t.Fatalf("row %d logit %d: Feed %v, Step %v", i, j, rows[i][j], want[j])
			}
		}
	}
	if !strings.HasPrefix(s.FeedPlan(), "batched: ") {
		t.Errorf("FeedPlan = %q", s.FeedPlan())
	}
}

// A graph that reads a whole fused state outside the per-layer slices is not understood: the
// plan refuses it (Feed then steps token by token) instead of guessing; the same graph reading
// only per-layer rows is planned with one region per layer.
func TestFeedPlanRefusesWholeStateUse(t *testing.T) {
	build := func(whole, chained bool) *graph.Module {
		m := &graph.Module{}
		f := graph.NewFunc("main")
		m.Funcs = append(m.Funcs, f)
		b := graph.NewBuilder(m, f)
		x := f.AddArg("x", graph.Tensor(graph.F32, 1, 3))
		h := f.AddState(graph.StateConv, graph.Tensor(graph.F32, 4, 3))
		tok := b.Op(graph.OpCreateToken)
		cur, tok := b.ReadState(h, tok)
		var parts []*graph.Value
		next := cur
		for l := int64(0); l < 4; l++ {
			row := b.Add(b.Slice(next, []int64{l, 0}, []int64{l + 1, 3}), x)
			if chained {
				next = b.Op(graph.OpSliceUpdate, next, row, b.I32s(l, 0), b.I32s(l+1, 3), b.I32s(1, 1))
			}
			parts = append(parts, row)
		}
		if !chained {
			next = graph.FuseLayerSlices(b, parts, cur)
		}
		y := b.ReduceSum(parts[3], 0)
		if whole && chained {
			y = b.ReduceSum(next, 0)
		} else if whole {
			y = b.ReduceSum(cur, 0)
		}
		f.AddResult(graph.StateConv, b.WriteState(h, next, tok))
		f.AddResult("y", y)
		if b.Err() != nil {
			t.Fatal(b.Err())
		}
		return m
	}
	for _, chained := range []bool{true, false} {
		for _, whole := range []bool{false, true} {
			it, err := New(build(whole, chained), "main")
			if err != nil {
				t.Fatal(err)
			}
			fp, err := planFeed(it.plan, false)
			switch {
			case whole && err == nil:
				t.Errorf("chained=%v: a graph reading the whole state was planned: %s", chained, fp.describe())
			case whole && !strings.Contains(err.Error(), "whole state"):
				t.Errorf("chained=%v: refusal %q does not name the whole-state use", chained, err)
			case !whole && err != nil:
				t.Errorf("chained=%v: per-layer graph not planned: %v", chained, err)
			case !whole && fp.regions != 4:
				t.Errorf("chained=%v: plan %s, want 4 regions", chained, fp.describe())
			}
		}
	}
}

// Feed validates ids before feeding any.
func TestFeedRejectsBadIDs(t *testing.T) {
	ck := openFixture(t, "tinyqwen35-code")
	m := lowerFor(t, ck, lower.Options{Contract: graph.Pipelined, Compute: graph.F32, StateDType: graph.F32,
		Weights: lower.DenseWeights{Checkpoint: ck, DType: graph.F32}})
	s, err := NewSession(m, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Feed([]int{1, 2, s.VocabSize()}, func(int, []float32) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "out of range") || s.Pos() != 0 {
		t.Errorf("Feed with a bad id: %v at position %d, want an out-of-range error before feeding", err, s.Pos())
	}
}
