package graph

import "math"

// bfloat16 is the top half of an IEEE binary32: the same sign and 8-bit exponent (so the same
// range, subnormals included), and 7 stored fraction bits. This file owns the one rounding rule
// every bf16 value in qconv follows (constants, weights, and the interpreter's bf16 results):
// round to nearest, ties to even, on the binary32 bit pattern; values past the largest finite
// bf16 (0x7F7F, about 3.39e38) round to ±Inf; subnormals are kept (no flush to zero), as
// PyTorch's float -> bfloat16 conversion does; a NaN stays a NaN with the quiet bit set.

// BF16FromFloat32 rounds f to bfloat16 and returns its bit pattern.
func BF16FromFloat32(f float32) uint16 {
	b := math.Float32bits(f)
	if f != f {
		return uint16(b>>16) | 0x0040 // quiet NaN, sign kept, payload truncated
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// BF16FromFloat64 rounds v to bfloat16 directly (not through a binary32 rounding first, which
// could round a value twice): v is first narrowed to binary32 with round-to-odd, which keeps the
// sticky information the second rounding needs.
func BF16FromFloat64(v float64) uint16 {
	f := float32(v)
	if v == v && float64(f) != v {
		b := math.Float32bits(f)
		if math.Abs(float64(f)) > math.Abs(v) {
			b-- // truncate toward zero (Inf becomes the largest finite binary32)
		}
		f = math.Float32frombits(b | 1)
	}
	return BF16FromFloat32(f)
}

// BF16ToFloat32 widens a bfloat16 bit pattern exactly.
func BF16ToFloat32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// RoundBF16 is float32(bf16(f)): the value a bf16 tensor holds for f.
func RoundBF16(f float32) float32 { return BF16ToFloat32(BF16FromFloat32(f)) }
