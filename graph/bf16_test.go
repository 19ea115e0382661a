package graph

import (
	"math"
	"testing"
)

// The bf16 rounding rule on hand-checked bit patterns: ties to even, overflow to Inf, subnormals
// kept, NaN stays NaN (a signalling NaN whose top half reads as Inf included).
func TestBF16Rounding(t *testing.T) {
	for _, c := range []struct {
		in   uint32
		want uint16
		what string
	}{
		{0x3F800000, 0x3F80, "1.0 is exact"},
		{0x3F807FFF, 0x3F80, "below the half-way point rounds down"},
		{0x3F808000, 0x3F80, "tie rounds to the even 0x3F80"},
		{0x3F808001, 0x3F81, "above the half-way point rounds up"},
		{0x3F818000, 0x3F82, "tie from the odd 0x3F81 rounds up to even"},
		{0xBF808000, 0xBF80, "negative tie to even"},
		{0xBF818000, 0xBF82, "negative tie from odd, away from zero"},
		{0x7F7F7FFF, 0x7F7F, "just below the largest finite bf16's rounding boundary"},
		{0x7F7F8000, 0x7F80, "tie above the largest finite bf16 overflows to +Inf"},
		{0x7F7FFFFF, 0x7F80, "the largest float32 overflows to +Inf"},
		{0xFF7FFFFF, 0xFF80, "and to -Inf"},
		{0x00010000, 0x0001, "the smallest bf16 subnormal is exact"},
		{0x00008000, 0x0000, "half the smallest subnormal: tie to even zero"},
		{0x00008001, 0x0001, "just above half the smallest subnormal"},
		{0x00018000, 0x0002, "subnormal tie from odd rounds up"},
		{0x807FFFFF, 0x8080, "the largest negative float32 subnormal rounds to -2^-126"},
		{0x80000000, 0x8000, "-0 keeps its sign"},
		{0x7F800000, 0x7F80, "+Inf"},
		{0xFF800000, 0xFF80, "-Inf"},
		{0x7FC00000, 0x7FC0, "quiet NaN"},
		{0x7F800001, 0x7FC0, "signalling NaN with a low payload stays NaN (not Inf)"},
		{0xFFA00000, 0xFFE0, "negative NaN keeps its sign and payload top, quiet bit set"},
	} {
		if got := BF16FromFloat32(math.Float32frombits(c.in)); got != c.want {
			t.Errorf("%s: bf16(%#08x) = %#04x, want %#04x", c.what, c.in, got, c.want)
		}
	}
	// From float64: one rounding, not two. 1 + 2^-8 + 2^-30 rounds to float32 1 + 2^-8 (a bf16
	// tie that would round down to even); the exact value is above the tie.
	for _, c := range []struct {
		v    float64
		want uint16
	}{
		{1 + 0x1p-8 + 0x1p-30, 0x3F81},
		{1 + 0x1p-8 - 0x1p-30, 0x3F80},
		{1 + 0x1p-8, 0x3F80},
		{-(1 + 3*0x1p-8), 0xBF82},
		{0.1, 0x3DCD},
		{1e39, 0x7F80},
		{-1e39, 0xFF80},
		{math.NaN(), 0x7FC0},
	} {
		if got := BF16FromFloat64(c.v); got != c.want {
			t.Errorf("BF16FromFloat64(%g) = %#04x, want %#04x", c.v, got, c.want)
		}
	}
	if got := RoundBF16(3.14159265); got != 3.140625 {
		t.Errorf("RoundBF16(pi) = %v, want 3.140625", got)
	}
	if d, ok := ParseDType("bf16"); !ok || d != BF16 || !d.IsFloat() || d.Bits() != 16 || d.String() != "bf16" {
		t.Errorf("ParseDType(bf16) = %v %v", d, ok)
	}
	a := DenseFloats(BF16, []int64{3}, []float64{1, -2.5, 1 + 0x1p-8 + 0x1p-30})
	for i, want := range []float64{1, -2.5, 1 + 0x1p-7} {
		if got := elemFloat(a.Type.DType, a.Data, i); got != want {
			t.Errorf("DenseFloats bf16 element %d = %v, want %v", i, got, want)
		}
	}
}
