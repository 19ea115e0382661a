package interp

import (
	"testing"

	"qconv/graph"
)

// The fused write computes what the chain computes (the interpreter runs both).
func TestFusedStateWriteSameValues(t *testing.T) {
	var got [2][]float32
	for i, chained := range []bool{true, false} {
		it, err := New(chainedStateGraph([]int64{3, 3}, chained), "main")
		if err != nil {
			t.Fatal(err)
		}
		states := map[string]*Array{graph.StateConv: NewArray(graph.F32, 3, 3)}
		for step := 0; step < 2; step++ {
			out, err := it.Run(map[string]*Array{"x": farr(graph.F32, []int64{1, 3}, 1, -2, 0.5)}, states)
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
