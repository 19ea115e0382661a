package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestElementwiseEqualsScalar checks every elementwise kernel against the scalar Go
// expression, bit for bit, on lengths around the 8- and 32-lane loops and on values that
// include zeros, infinities, subnormals and results that overflow or round.
func TestElementwiseEqualsScalar(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	special := []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)), 1e-40, -3e-39, math.MaxFloat32, 1, -1}
	val := func() float32 {
		if rng.IntN(8) == 0 {
			return special[rng.IntN(len(special))]
		}
		return float32(rng.NormFloat64() * math.Pow(10, rng.Float64()*40-20))
	}
	same := func(x, y float32) bool {
		return math.Float32bits(x) == math.Float32bits(y) || x != x && y != y
	}
	for _, n := range []int{1, 7, 8, 9, 31, 32, 33, 64, 100, 1027} {
		a, b, dst := make([]float32, n), make([]float32, n), make([]float32, n)
		for i := range a {
			a[i], b[i] = val(), val()
		}
		y := val()
		for _, op := range []byte{'+', '-', '*', '/'} {
			BinVV(op, dst, a, b)
			for i := range dst {
				if want := binOne(op, a[i], b[i]); !same(dst[i], want) {
					t.Fatalf("BinVV %c n=%d [%d]: %v %c %v = %v, want %v", op, n, i, a[i], op, b[i], dst[i], want)
				}
			}
			BinVS(op, dst, a, y)
			for i := range dst {
				if want := binOne(op, a[i], y); !same(dst[i], want) {
					t.Fatalf("BinVS %c n=%d [%d]: %v %c %v = %v, want %v", op, n, i, a[i], op, y, dst[i], want)
				}
			}
			BinSV(op, dst, y, b)
			for i := range dst {
				if want := binOne(op, y, b[i]); !same(dst[i], want) {
					t.Fatalf("BinSV %c n=%d [%d]: %v %c %v = %v, want %v", op, n, i, y, op, b[i], dst[i], want)
				}
			}
		}
		acc := make([]float64, n)
		want := make([]float64, n)
		for i := range acc {
			acc[i] = rng.NormFloat64() * 1e3
			want[i] = acc[i] + float64(a[i])
		}
		AccF64(acc, a)
		for i := range acc {
			if math.Float64bits(acc[i]) != math.Float64bits(want[i]) && !(math.IsNaN(acc[i]) && math.IsNaN(want[i])) {
				t.Fatalf("AccF64 n=%d [%d] = %v, want %v", n, i, acc[i], want[i])
			}
		}
	}
}
