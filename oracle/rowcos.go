package oracle

import "math"

// RowCosine is the cosine of two logit rows in float64: 0 when either holds a NaN or is zero.
func RowCosine(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		x, y := float64(a[i]), float64(b[i])
		ab += x * y
		aa += x * x
		bb += y * y
	}
	c := ab / math.Sqrt(aa*bb)
	if math.IsNaN(c) {
		return 0
	}
	return c
}
