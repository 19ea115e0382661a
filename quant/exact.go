package quant

import (
	"math"
	"math/bits"
)

// wide is a 320-bit two's-complement fixed-point number in units of 2^-149 (the
// smallest float32 subnormal). Any float32 times a count below 2^39, and any sum
// of such terms below 2^39 elements in all, fits exactly (|sum| < 2^168 = 2^317
// units), so centroid sums do not depend on the order of summation.
type wide [5]uint64

// maxExactCount bounds the number of weights summed into one wide.
const maxExactCount = 1 << 39

// addTerm adds n*v exactly (n < 2^39).
func (w *wide) addTerm(v float32, n uint64) {
	b := math.Float32bits(v)
	m := uint64(b & 0x7fffff)
	var shift uint
	if e := b >> 23 & 0xff; e != 0 {
		m |= 1 << 23
		shift = uint(e - 1) // v = m * 2^(e-150) = m * 2^(e-1) units
	}
	w.addShifted(m*n, shift, b>>31 == 1)
}

// addShifted adds (or subtracts) mag*2^s, mag < 2^63, s <= 253.
func (w *wide) addShifted(mag uint64, s uint, neg bool) {
	i, sh := s>>6, s&63
	lo := mag << sh
	hi := mag >> (64 - sh) // Go: a shift by 64 gives 0
	var c uint64
	if !neg {
		w[i], c = bits.Add64(w[i], lo, 0)
		for j := i + 1; j < uint(len(w)); j++ {
			w[j], c = bits.Add64(w[j], hi, c)
			hi = 0
		}
		return
	}
	w[i], c = bits.Sub64(w[i], lo, 0)
	for j := i + 1; j < uint(len(w)); j++ {
		w[j], c = bits.Sub64(w[j], hi, c)
		hi = 0
	}
}

func (w *wide) sub(a, b *wide) {
	var c uint64
	for i := range w {
		w[i], c = bits.Sub64(a[i], b[i], c)
	}
}

// float64 returns the value rounded to the nearest float64, ties to even.
func (w *wide) float64() float64 {
	a := *w
	neg := a[4]>>63 == 1
	if neg {
		var c uint64 = 1
		for i := range a {
			a[i], c = bits.Add64(^a[i], 0, c)
		}
	}
	top := len(a) - 1
	for top >= 0 && a[top] == 0 {
		top--
	}
	if top < 0 {
		return 0
	}
	msb := top*64 + 63 - bits.LeadingZeros64(a[top])
	// t = the 64 bits whose top bit is msb; sticky = any bit below them.
	var t uint64
	sticky := false
	if o := msb - 63; o <= 0 {
		t = a[0] << uint(-o)
	} else {
		i, sh := o>>6, uint(o&63)
		t = a[i] >> sh
		if sh != 0 {
			t |= a[i+1] << (64 - sh)
			sticky = a[i]<<(64-sh) != 0
		}
		for j := 0; j < i && !sticky; j++ {
			sticky = a[j] != 0
		}
	}
	r, t53 := t&0x7ff, t>>11
	if r > 0x400 || r == 0x400 && (sticky || t53&1 == 1) {
		t53++
	}
	f := math.Ldexp(float64(t53), msb-52-149)
	if neg {
		f = -f
	}
	return f
}
