package kernels

import (
	"math"
	"testing"
)

func TestArgmax(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, c := range []struct {
		name string
		v    []float32
		want int
	}{
		{"empty", nil, 0},
		{"one", []float32{-3}, 0},
		{"largest", []float32{1, 5, 2}, 1},
		{"tie takes the lowest index", []float32{1, 5, 5, 2}, 1},
		{"negative", []float32{-4, -1, -2}, 1},
		{"+inf", []float32{1, inf, 2}, 1},
		{"NaN wins", []float32{1, 9, nan, 2}, 2},
		{"first NaN wins", []float32{1, nan, 9, nan}, 1},
		{"NaN first", []float32{nan, 9, 2}, 0},
		{"NaN after +inf", []float32{inf, nan}, 1},
	} {
		if got := Argmax(c.v); got != c.want {
			t.Errorf("%s: Argmax(%v) = %d, want %d", c.name, c.v, got, c.want)
		}
	}
}
