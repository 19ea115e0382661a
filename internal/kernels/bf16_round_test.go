package kernels

import (
	"math"
	"math/rand"
	"testing"
)

// RoundBF16 on hand-checked bit patterns (ties to even, overflow, subnormals, NaNs whose payload
// would carry into the sign under the plain increment) and on random patterns, the assembly and
// the Go loop alike, at lengths that exercise the vector body and the scalar tail.
func TestRoundBF16(t *testing.T) {
	cases := [][2]uint32{
		{0x3F808000, 0x3F800000}, {0x3F818000, 0x3F820000}, {0x3F808001, 0x3F810000}, {0xBF818000, 0xBF820000},
		{0x7F7F8000, 0x7F800000}, {0x7F7F7FFF, 0x7F7F0000}, {0x00008000, 0x00000000}, {0x00018000, 0x00020000},
		{0x807FFFFF, 0x80800000}, {0x80000000, 0x80000000}, {0x7F800000, 0x7F800000}, {0xFF800000, 0xFF800000},
		{0x7F800001, 0x7FC00000}, {0x7FFFFFFF, 0x7FFF0000}, {0xFFFFE000, 0xFFFF0000}, {0xFFA00000, 0xFFE00000},
	}
	implementations(t, func(t *testing.T) {
		for _, n := range []int{1, 7, 8, 9, 16, 23} {
			x := make([]float32, n)
			for i := range x {
				x[i] = math.Float32frombits(cases[i%len(cases)][0])
			}
			RoundBF16(x)
			for i, v := range x {
				if got, want := math.Float32bits(v), cases[i%len(cases)][1]; got != want {
					t.Fatalf("n=%d: bf16(%#08x) = %#08x, want %#08x", n, cases[i%len(cases)][0], got, want)
				}
			}
		}
		r := rand.New(rand.NewSource(3))
		x := make([]float32, 1<<16+5)
		want := make([]uint32, len(x))
		for i := range x {
			u := r.Uint32()
			x[i] = math.Float32frombits(u)
			want[i] = roundRef(u)
		}
		RoundBF16(x)
		for i, v := range x {
			if math.Float32bits(v) != want[i] {
				t.Fatalf("element %d: %#08x, want %#08x", i, math.Float32bits(v), want[i])
			}
		}
	})
}

// roundRef is the rule spelled out per case.
func roundRef(u uint32) uint32 {
	switch {
	case u&0x7fffffff > 0x7f800000:
		return (u | 0x00400000) &^ 0xffff
	default:
		return (u + 0x7fff + (u>>16)&1) &^ 0xffff
	}
}
