package interp

import (
	"math"
	"testing"

	"qconv/graph"
	"qconv/internal/kernels"
)

// TestInterpArgmaxIsKernelsArgmax holds the interpreter's coreai.argmax to the one greedy rule
// the host side uses (kernels.Argmax: lowest index of the largest value, first NaN wins), so an
// in-graph next_token and a host argmax over the same logits never disagree.
func TestInterpArgmaxIsKernelsArgmax(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	rows := [][]float64{
		{1, 5, 5, 2},
		{-4, -1, -2, -1},
		{1, inf, 2, inf},
		{1, 9, nan, 2},
		{1, nan, 9, nan},
		{nan, 9, 2, 1},
		{inf, nan, 0, 0},
	}
	m, f, b := interpModule()
	x := f.AddArg("x", graph.Tensor(graph.F32, int64(len(rows)), 4))
	f.AddResult("a", b.Op(graph.OpArgmax, x, b.I32(-1)))
	var flat []float64
	for _, r := range rows {
		flat = append(flat, r...)
	}
	out := mustRun(t, m, map[string]*Array{"x": farr(graph.F32, []int64{int64(len(rows)), 4}, flat...)}, nil)
	for i, r := range rows {
		row := make([]float32, len(r))
		for j, v := range r {
			row[j] = float32(v)
		}
		if got, want := out["a"].I[i], int64(kernels.Argmax(row)); got != want {
			t.Errorf("row %v: coreai.argmax %d, kernels.Argmax %d", r, got, want)
		}
	}
}
