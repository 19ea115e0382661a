package kernels

import (
	"encoding/binary"
	"math"
)

// Plain-Go kernels: the only path off amd64 (or without AVX2/FMA/F16C), and
// the reference the assembly is tested against. They read little-endian
// bytes explicitly so they are right on any byte order.

func dotGo(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

func axpyGo(y []float32, a float32, x []float32) {
	x = x[:len(y)]
	for i := range y {
		y[i] += a * x[i]
	}
}

func bf16Bits(b []byte, i int) float32 {
	return math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*i:])) << 16)
}

func f32At(b []byte, i int) float32 {
	return math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
}

// f16ToF32 widens an IEEE half exactly. Finite values are rebiased by one
// multiplication: the half's exponent and mantissa placed at the bottom of a
// float32 are the value times 2^-112, subnormals included.
func f16ToF32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	bits := uint32(h&0x7fff) << 13
	if h&0x7c00 == 0x7c00 { // Inf or NaN
		bits |= 0x7f800000
		if h&0x03ff != 0 {
			bits |= 0x00400000 // NaN: set the quiet bit, as the hardware does
		}
		return math.Float32frombits(sign | bits)
	}
	return math.Float32frombits(sign | math.Float32bits(math.Float32frombits(bits)*0x1p112))
}

// f32ToF16 narrows to an IEEE half, rounding to nearest even.
func f32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	man := b & 0x7fffff
	if exp == 0xff {
		if man == 0 {
			return sign | 0x7c00
		}
		return sign | 0x7e00 | uint16(man>>13)
	}
	e := exp - 127 + 15 // biased half exponent
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// Half subnormal (or zero): count units of 2^-24.
		if e < -10 {
			return sign // below 2^-25: rounds to zero
		}
		m := man | 0x800000
		shift := uint32(14 - e)
		h := m >> shift
		rem := m & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || rem == half && h&1 == 1 {
			h++
		}
		return sign | uint16(h)
	}
	h := uint32(e)<<10 | man>>13
	rem := man & 0x1fff
	if rem > 0x1000 || rem == 0x1000 && h&1 == 1 {
		h++ // a carry into the exponent is right, up to Inf
	}
	return sign | uint16(h)
}

func f16At(b []byte, i int) float32 {
	return f16ToF32(binary.LittleEndian.Uint16(b[2*i:]))
}

func bf16ToF32Go(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = bf16Bits(src, i)
	}
}

func f16ToF32Go(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = f16At(src, i)
	}
}

func f32ToF16Go(dst []byte, src []float32) {
	for i, v := range src {
		binary.LittleEndian.PutUint16(dst[2*i:], f32ToF16(v))
	}
}

func roundF16Go(x []float32) {
	for i, v := range x {
		x[i] = f16ToF32(f32ToF16(v))
	}
}

func decodeF32Go(dst []float32, w []byte) {
	for i := range dst {
		dst[i] = f32At(w, i)
	}
}

// The gemv loops below walk a row and x in resliced chunks so the compiler
// drops the per-element bounds checks.

// gemvF32Go sets dst[r] = W[r,:]·x for the len(dst) rows stored in w.
func gemvF32Go(dst []float32, w []byte, x []float32, cols int) {
	x = x[:cols]
	for r := range dst {
		row, xs := w[r*cols*4:(r+1)*cols*4], x
		var s0, s1, s2, s3 float32
		for len(row) >= 16 && len(xs) >= 4 {
			s0 += math.Float32frombits(binary.LittleEndian.Uint32(row[0:4])) * xs[0]
			s1 += math.Float32frombits(binary.LittleEndian.Uint32(row[4:8])) * xs[1]
			s2 += math.Float32frombits(binary.LittleEndian.Uint32(row[8:12])) * xs[2]
			s3 += math.Float32frombits(binary.LittleEndian.Uint32(row[12:16])) * xs[3]
			row, xs = row[16:], xs[4:]
		}
		for i, xv := range xs {
			s0 += f32At(row, i) * xv
		}
		dst[r] = (s0 + s1) + (s2 + s3)
	}
}

func gemvBF16Go(dst []float32, w []byte, x []float32, cols int) {
	x = x[:cols]
	for r := range dst {
		row, xs := w[r*cols*2:(r+1)*cols*2], x
		var s0, s1, s2, s3 float32
		for len(row) >= 8 && len(xs) >= 4 {
			s0 += math.Float32frombits(uint32(binary.LittleEndian.Uint16(row[0:2]))<<16) * xs[0]
			s1 += math.Float32frombits(uint32(binary.LittleEndian.Uint16(row[2:4]))<<16) * xs[1]
			s2 += math.Float32frombits(uint32(binary.LittleEndian.Uint16(row[4:6]))<<16) * xs[2]
			s3 += math.Float32frombits(uint32(binary.LittleEndian.Uint16(row[6:8]))<<16) * xs[3]
			row, xs = row[8:], xs[4:]
		}
		for i, xv := range xs {
			s0 += bf16Bits(row, i) * xv
		}
		dst[r] = (s0 + s1) + (s2 + s3)
	}
}

func gemvF16Go(dst []float32, w []byte, x []float32, cols int) {
	x = x[:cols]
	for r := range dst {
		row, xs := w[r*cols*2:(r+1)*cols*2], x
		var s0, s1, s2, s3 float32
		for len(row) >= 8 && len(xs) >= 4 {
			s0 += f16ToF32(binary.LittleEndian.Uint16(row[0:2])) * xs[0]
			s1 += f16ToF32(binary.LittleEndian.Uint16(row[2:4])) * xs[1]
			s2 += f16ToF32(binary.LittleEndian.Uint16(row[4:6])) * xs[2]
			s3 += f16ToF32(binary.LittleEndian.Uint16(row[6:8])) * xs[3]
			row, xs = row[8:], xs[4:]
		}
		for i, xv := range xs {
			s0 += f16At(row, i) * xv
		}
		dst[r] = (s0 + s1) + (s2 + s3)
	}
}

// gemvQ8Go: row r's block scales start at byte r*scaleStride of scales.
func gemvQ8Go(dst []float32, q, scales []byte, x []float32, cols, blockCols, scaleStride int) {
	x = x[:cols]
	for r := range dst {
		row := q[r*cols : (r+1)*cols]
		rowScales := scales[r*scaleStride:]
		var s0, s1, s2, s3 float32
		for b := 0; b*blockCols < cols; b++ {
			s := f16At(rowScales, b)
			bq, xs := row[b*blockCols:(b+1)*blockCols], x[b*blockCols:(b+1)*blockCols]
			for len(bq) >= 4 && len(xs) >= 4 {
				s0 += float32(int8(bq[0])) * s * xs[0]
				s1 += float32(int8(bq[1])) * s * xs[1]
				s2 += float32(int8(bq[2])) * s * xs[2]
				s3 += float32(int8(bq[3])) * s * xs[3]
				bq, xs = bq[4:], xs[4:]
			}
			for i, xv := range xs {
				s0 += float32(int8(bq[i])) * s * xv
			}
		}
		dst[r] = (s0 + s1) + (s2 + s3)
	}
}

func decodeQ8Go(dst []float32, q, scales []byte, blockCols int) {
	q = q[:len(dst)]
	for b := 0; b*blockCols < len(dst); b++ {
		s := f16At(scales, b)
		bq := q[b*blockCols : (b+1)*blockCols]
		for i, v := range bq {
			dst[b*blockCols+i] = float32(int8(v)) * s
		}
	}
}

// nibble returns the 4-bit field k of a packed array: byte k/2, low nibble
// for even k.
func nibble(p []byte, k int) uint8 {
	return p[k>>1] >> (4 * uint(k&1)) & 0xf
}

// decodeQ4Go decodes len(dst) signed nibbles starting at nibble k0 of q.
func decodeQ4Go(dst []float32, q []byte, k0 int, scales []byte, blockCols int) {
	for b := 0; b*blockCols < len(dst); b++ {
		s := f16At(scales, b)
		c0, c1 := b*blockCols, (b+1)*blockCols
		if (k0+c0)%2 == 0 && blockCols%2 == 0 { // whole bytes
			bq := q[(k0+c0)/2 : (k0+c1)/2]
			d := dst[c0:c1]
			for i, v := range bq {
				d[2*i] = float32(int8(v<<4)>>4) * s
				d[2*i+1] = float32(int8(v)>>4) * s
			}
			continue
		}
		for c := c0; c < c1; c++ {
			v := int8(nibble(q, k0+c)<<4) >> 4
			dst[c] = float32(v) * s
		}
	}
}

func gemvLUT8Go(dst []float32, idx []byte, lut *[256]float32, x []float32, cols int) {
	x = x[:cols]
	for r := range dst {
		row, xs := idx[r*cols:(r+1)*cols], x
		var s0, s1, s2, s3 float32
		for len(row) >= 4 && len(xs) >= 4 {
			s0 += lut[row[0]] * xs[0]
			s1 += lut[row[1]] * xs[1]
			s2 += lut[row[2]] * xs[2]
			s3 += lut[row[3]] * xs[3]
			row, xs = row[4:], xs[4:]
		}
		for i, xv := range xs {
			s0 += lut[row[i]] * xv
		}
		dst[r] = (s0 + s1) + (s2 + s3)
	}
}

func decodeLUT8Go(dst []float32, idx []byte, lut *[256]float32) {
	idx = idx[:len(dst)]
	for c, i := range idx {
		dst[c] = lut[i]
	}
}

// decodeLUT4Go decodes len(dst) unsigned nibbles starting at nibble k0.
func decodeLUT4Go(dst []float32, idx []byte, k0 int, lut *[16]float32) {
	if k0%2 == 0 && len(dst)%2 == 0 { // whole bytes
		for i, v := range idx[k0/2 : k0/2+len(dst)/2] {
			dst[2*i] = lut[v&0xf]
			dst[2*i+1] = lut[v>>4]
		}
		return
	}
	for c := range dst {
		dst[c] = lut[nibble(idx, k0+c)]
	}
}
