package interp

import (
	"testing"

	"qconv/graph"
)

// The stress mode is run by default only where the matrix constants hold at most 2^26 values together:
// one [8192, 8193] int8 weight (just over 2^26 values) does not, one [8192, 8192] does, and
// vectors never count.
func TestF16AccumulateCached(t *testing.T) {
	module := func(shapes ...[]int64) *graph.Module {
		f := &graph.Func{Name: "main"}
		for _, s := range shapes {
			f.Body = append(f.Body, &graph.Op{Name: graph.OpConstant, Results: []*graph.Value{{Type: graph.Tensor(graph.SI8, s...)}}})
		}
		return &graph.Module{Funcs: []*graph.Func{f}}
	}
	for _, c := range []struct {
		shapes [][]int64
		want   bool
	}{
		{[][]int64{{8192, 8192}}, true},
		{[][]int64{{8192, 8193}}, false},
		{[][]int64{{8192, 4096}, {8192, 4097}}, false},
		{[][]int64{{8192, 8192}, {1 << 20}}, true},
		{nil, true},
	} {
		if got := F16AccumulateCached(module(c.shapes...)); got != c.want {
			t.Errorf("%v: cached %v, want %v", c.shapes, got, c.want)
		}
	}
}
