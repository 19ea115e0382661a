//go:build amd64 && !purego

package kernels

// roundBF16AVX rounds n float32 values at x to bfloat16 in place; n is a
// multiple of 8 (bf16_round_amd64.s).
//
//go:noescape
func roundBF16AVX(x *float32, n int)
