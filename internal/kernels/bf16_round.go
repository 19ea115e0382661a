package kernels

import "math"

// RoundBF16 replaces each x[i] by float32(bf16(x[i])): round to nearest, ties
// to even, on the float32 bit pattern; overflow to ±Inf; subnormals kept; a
// NaN stays a NaN (quiet bit set, payload truncated). The rule's owner is
// qconv/graph (graph.RoundBF16); this is its vector form, checked against it
// in graph/interp's tests.
func RoundBF16(x []float32) {
	n8 := len(x) &^ 7
	if useAsm && n8 > 0 {
		roundBF16AVX(&x[0], n8)
		x = x[n8:]
	}
	roundBF16Go(x)
}

func roundBF16Go(x []float32) {
	for i, v := range x {
		u := math.Float32bits(v)
		if u&0x7fffffff > 0x7f800000 {
			x[i] = math.Float32frombits((u | 0x00400000) &^ 0xffff)
			continue
		}
		x[i] = math.Float32frombits((u + 0x7fff + (u>>16)&1) &^ 0xffff)
	}
}
