package quant

import (
	"fmt"
	"math"

	"github.com/x448/float16"
)

// Scheme selects how a linear scale is chosen.
type Scheme uint8

const (
	// Absmax takes the scale from max|w|: nothing saturates.
	Absmax Scheme = iota
	// Clip takes the scale from the clip threshold on the candidate grid that
	// minimises the squared error; weights beyond it saturate.
	Clip
)

func (s Scheme) String() string {
	switch s {
	case Absmax:
		return "absmax"
	case Clip:
		return "clip"
	}
	return fmt.Sprintf("Scheme(%d)", uint8(s))
}

// Granularity is the set of weights sharing one scale: a block of that many
// consecutive weights along the input axis, one output row, or the whole tensor.
type Granularity int

const (
	PerTensor  Granularity = -2
	PerChannel Granularity = -1
	Block8     Granularity = 8
	Block16    Granularity = 16
	Block32    Granularity = 32
)

func (g Granularity) String() string {
	switch g {
	case PerTensor:
		return "pertensor"
	case PerChannel:
		return "perchan"
	case Block8, Block16, Block32:
		return fmt.Sprintf("block%d", int(g))
	}
	return fmt.Sprintf("Granularity(%d)", int(g))
}

// Linear is a linear quantization scheme: q = clamp(rne(w/scale)), deq = q*scale.
type Linear struct {
	Bits        int // 8 or 4
	Scheme      Scheme
	Granularity Granularity
}

func (l Linear) String() string {
	return fmt.Sprintf("int%d-%s-%s", l.Bits, l.Granularity, l.Scheme)
}

// Qmax is the largest quantized magnitude: 127 for int8, 7 for int4.
func (l Linear) Qmax() int {
	if l.Bits == 4 {
		return 7
	}
	return 127
}

// Validate reports a spec qconv does not offer.
func (l Linear) Validate() error {
	if l.Bits != 8 && l.Bits != 4 {
		return fmt.Errorf("quant: %d-bit linear quantization is not supported (int8 or int4)", l.Bits)
	}
	if l.Scheme != Absmax && l.Scheme != Clip {
		return fmt.Errorf("quant: unknown scheme %v", l.Scheme)
	}
	switch l.Granularity {
	case PerTensor, PerChannel, Block8, Block16, Block32:
		return nil
	}
	return fmt.Errorf("quant: unknown granularity %d (block 8, 16, 32, per-channel or per-tensor)", int(l.Granularity))
}

// Check reports why a [rows, cols] weight cannot take this spec ("" if it can).
// The only shape reason is an input dimension that is not a multiple of the
// block size: such a tensor is kept unquantized, never padded.
func (l Linear) Check(rows, cols int) string {
	if rows <= 0 || cols <= 0 {
		return fmt.Sprintf("empty weight [%d, %d]", rows, cols)
	}
	if b := int(l.Granularity); b > 0 && cols%b != 0 {
		return fmt.Sprintf("input dimension %d is not a multiple of the block size %d", cols, b)
	}
	return ""
}

// blockLen is the number of consecutive weights of a row sharing one scale.
func (l Linear) blockLen(cols int) int {
	if l.Granularity > 0 {
		return int(l.Granularity)
	}
	return cols
}

// ScaleCount is the number of scales of a [rows, cols] weight.
func (l Linear) ScaleCount(rows, cols int) int {
	switch l.Granularity {
	case PerTensor:
		return 1
	case PerChannel:
		return rows
	}
	return rows * (cols / int(l.Granularity))
}

// WeightError is a weight that cannot be quantized, at its position in the
// [out, in] weight (Row is the output row, Col the input column). Row functions
// report Row 0; the drivers set the real row. Callers add the tensor name. A
// LUT centroid that overflows fp16 has Col -1 and Row the group's first row.
type WeightError struct {
	Row, Col int
	Value    float32 // the offending weight, or the centroid for a LUT overflow
	Reason   string
}

func (e *WeightError) Error() string {
	if e.Col < 0 { // a LUT centroid: no single weight is at fault
		return fmt.Sprintf("palette rows from %d: %s (%v)", e.Row, e.Reason, e.Value)
	}
	return fmt.Sprintf("row %d, column %d: %s (%v)", e.Row, e.Col, e.Reason, e.Value)
}

const (
	reasonNonFinite     = "weight is not finite"
	reasonScaleOverflow = "scale max|w|/qmax overflows fp16 (>= 65520)"
	reasonLUTOverflow   = "k-means centroid overflows fp16"
)

const (
	absMask     = 0x7fffffff
	f32InfBits  = 0x7f800000
	f16InfBits  = 0x7c00
	rneMagic    = 12582912.0 // 1.5*2^23: x+rneMagic rounds x (|x| < 2^22) to an integer, ties to even
	rneMagicInt = 0x4B400000 // float32 bit pattern of rneMagic
)

var posInf32 = float32(math.Inf(1))

// f16 rounds x to fp16, round-half-even (overflow gives Inf).
func f16(x float32) uint16 { return float16.Fromfloat32(x).Bits() }

// F16ToFloat32 converts fp16 bits to float32 (exact).
func F16ToFloat32(h uint16) float32 { return float16.Frombits(h).Float32() }

// ScaleFor returns fp16(c/qmax) with c/qmax computed in float32; ok is false when
// the scale overflows fp16 (or c is not finite).
func ScaleFor(c float32, qmax int) (scale uint16, ok bool) {
	h := f16(c / float32(qmax))
	return h, h&0x7fff < f16InfBits
}

// divisor is the float32 the weights are divided by: the scale itself, or +Inf
// for a zero scale so that every quotient is ±0 and every q is 0.
func divisor(scale uint16) float32 {
	if scale&0x7fff == 0 {
		return posInf32
	}
	return F16ToFloat32(scale)
}

// QuantizeWithScale writes q[i] = clamp(rne(w[i]/scale), -qmax, qmax), the
// division in float32 by the fp16 scale, for any scale; a zero scale gives
// q = 0. The weights must be finite.
func QuantizeWithScale(w []float32, scale uint16, qmax int, q []int8) {
	div, qf := divisor(scale), float32(qmax)
	q = q[:len(w)]
	for i, v := range w {
		// Clamping before rounding gives the same integer (qmax is one) and
		// keeps the quotient in the range where rneMagic rounds exactly.
		x := v / div
		if x > qf {
			x = qf
		} else if x < -qf {
			x = -qf
		}
		q[i] = int8(int32(math.Float32bits(x+rneMagic)) - rneMagicInt)
	}
}

// quantizeDiv is QuantizeWithScale for quotients known to satisfy
// |w/div| < 2^22: true for every scale ScaleFor derives from a c >= max|w|/2,
// since the fp16 rounding shrinks a scale by at most a factor 1.5 (subnormal).
func quantizeDiv(w []float32, div float32, qmax int32, q []int8) {
	q = q[:len(w)]
	for i, v := range w {
		// Adding rneMagic rounds the quotient to an integer (ties to even) and
		// leaves that integer in the low mantissa bits.
		n := int32(math.Float32bits(v/div+rneMagic)) - rneMagicInt
		q[i] = int8(min(max(n, -qmax), qmax))
	}
}

// absMaxBits returns the largest |w| as a float32 bit pattern (integer compare
// of the sign-cleared patterns); a value >= f32InfBits means a NaN or Inf.
func absMaxBits(w []float32) uint32 {
	var m0, m1, m2, m3 uint32 // independent chains
	i := 0
	for ; i+4 <= len(w); i += 4 {
		v := w[i : i+4 : i+4]
		m0 = max(m0, math.Float32bits(v[0])&absMask)
		m1 = max(m1, math.Float32bits(v[1])&absMask)
		m2 = max(m2, math.Float32bits(v[2])&absMask)
		m3 = max(m3, math.Float32bits(v[3])&absMask)
	}
	for ; i < len(w); i++ {
		m0 = max(m0, math.Float32bits(w[i])&absMask)
	}
	return max(m0, m1, m2, m3)
}

// nonFinite returns the error for the first NaN/Inf in w (col0 is w[0]'s column).
func nonFinite(w []float32, col0 int) error {
	for i, v := range w {
		if math.Float32bits(v)&absMask >= f32InfBits {
			return &WeightError{Col: col0 + i, Value: v, Reason: reasonNonFinite}
		}
	}
	return nil
}

// overflow returns the scale-overflow error naming the first largest weight.
func overflow(w []float32, col0 int, m uint32) error {
	for i, v := range w {
		if math.Float32bits(v)&absMask == m {
			return &WeightError{Col: col0 + i, Value: v, Reason: reasonScaleOverflow}
		}
	}
	return &WeightError{Col: col0, Value: math.Float32frombits(m), Reason: reasonScaleOverflow}
}

// QuantizeBlock quantizes one set of weights sharing a scale (a block, a row,
// or, with the tensor's max, a tensor) and returns the fp16 scale bits. col0 is
// w[0]'s column, used in errors.
func QuantizeBlock(w []float32, qmax int, scheme Scheme, q []int8, col0 int) (uint16, error) {
	m := absMaxBits(w)
	if m >= f32InfBits {
		return 0, nonFinite(w, col0)
	}
	if scheme == Clip {
		return clipBlock(w, math.Float32frombits(m), qmax, q, col0, m)
	}
	h, ok := ScaleFor(math.Float32frombits(m), qmax)
	if !ok {
		return 0, overflow(w, col0, m)
	}
	quantizeDiv(w, divisor(h), int32(qmax), q)
	return h, nil
}

// Clip candidate grid: c_i = float32(m * (clipDen-i)/clipDen) for i in [0, clipCount).
const (
	clipDen   = 32
	clipCount = 17 // 1.0 down to 0.5 of max|w|
)

// ClipCandidate returns the i-th clip threshold for a block whose max|w| is m.
func ClipCandidate(m float32, i int) float32 {
	return m * (float32(clipDen-i) / clipDen)
}

// clipBlock picks the candidate with the smallest squared error, quantizing into
// q as it goes: q holds the best candidate's values at the end. Ties keep the
// earlier (larger) threshold.
func clipBlock(w []float32, m float32, qmax int, q []int8, col0 int, mbits uint32) (uint16, error) {
	h0, ok := ScaleFor(m, qmax)
	if !ok {
		return 0, overflow(w, col0, mbits)
	}
	q = q[:len(w)]
	best, bestErr := h0, math.Inf(1)
	prev := uint16(0xffff)
	for i := range clipCount {
		h := h0
		if i > 0 {
			h, _ = ScaleFor(ClipCandidate(m, i), qmax)
		}
		if h == prev {
			continue // same scale, same q, same error
		}
		prev = h
		e := clipError(w, divisor(h), F16ToFloat32(h), int32(qmax))
		if e < bestErr {
			best, bestErr = h, e
		}
	}
	quantizeDiv(w, divisor(best), int32(qmax), q)
	return best, nil
}

// clipError is the squared error of quantizing w with divisor div and stored
// scale s, summed in index order in float64 (each difference is exact).
func clipError(w []float32, div, s float32, qmax int32) float64 {
	var e float64
	for _, v := range w {
		n := int32(math.Float32bits(v/div+rneMagic)) - rneMagicInt
		n = min(max(n, -qmax), qmax)
		d := float64(v) - float64(float32(n)*s)
		e += float64(d * d) // rounded product: no FMA on any build
	}
	return e
}

// SquaredError returns sum((float64(w[i]) - float64(q[i]*scale))^2) in index
// order: the measure Clip minimises.
func SquaredError(w []float32, q []int8, scale uint16) float64 {
	s := F16ToFloat32(scale)
	var e float64
	for i, v := range w {
		d := float64(v) - float64(float32(q[i])*s)
		e += float64(d * d)
	}
	return e
}

// QuantizeRow quantizes one row (len(row) = in) for a block or per-channel
// spec: q gets len(row) values in [-qmax, qmax], scales one fp16 scale per block
// (len(row)/block of them) or one per row. Errors are *WeightError with Row 0.
func (l Linear) QuantizeRow(row []float32, q []int8, scales []uint16) error {
	if l.Granularity == PerTensor {
		return fmt.Errorf("quant: per-tensor scales need the whole tensor: use QuantizeLinear or QuantizeWithScale")
	}
	bl := l.blockLen(len(row))
	if len(row)%bl != 0 {
		return fmt.Errorf("quant: row length %d is not a multiple of the block size %d", len(row), bl)
	}
	if len(q) < len(row) || len(scales) < len(row)/bl {
		return fmt.Errorf("quant: output too short for a row of %d", len(row))
	}
	if l.Granularity == Block32 && l.Scheme == Absmax && useAsm {
		if rowAbsmax32F32(row, float32(l.Qmax()), q, scales) {
			return nil
		}
		// A NaN/Inf or an overflowing scale: the Go path names it.
	}
	qmax := l.Qmax()
	for b := 0; b < len(row); b += bl {
		h, err := QuantizeBlock(row[b:b+bl], qmax, l.Scheme, q[b:b+bl], b)
		if err != nil {
			return err
		}
		scales[b/bl] = h
	}
	return nil
}

// QuantizeRowBF16 is QuantizeRow for a row of little-endian bf16 values
// (2*in bytes) and a block spec; the block-32 absmax path reads the bf16 bits
// directly, the others convert one block at a time on the stack.
func (l Linear) QuantizeRowBF16(row []byte, q []int8, scales []uint16) error {
	if l.Granularity <= 0 {
		return fmt.Errorf("quant: QuantizeRowBF16 takes block granularities, not %v", l.Granularity)
	}
	if len(row)%2 != 0 {
		return fmt.Errorf("quant: bf16 row of odd byte length %d", len(row))
	}
	n := len(row) / 2
	bl := int(l.Granularity)
	if n%bl != 0 {
		return fmt.Errorf("quant: row length %d is not a multiple of the block size %d", n, bl)
	}
	if len(q) < n || len(scales) < n/bl {
		return fmt.Errorf("quant: output too short for a row of %d", n)
	}
	if l.Granularity == Block32 && l.Scheme == Absmax && useAsm {
		if rowAbsmax32BF16(row, float32(l.Qmax()), q, scales) {
			return nil
		}
	}
	var buf [32]float32
	qmax := l.Qmax()
	for b := 0; b < n; b += bl {
		blk := buf[:bl]
		bf16ToF32(blk, row[2*b:2*(b+bl)])
		h, err := QuantizeBlock(blk, qmax, l.Scheme, q[b:b+bl], b)
		if err != nil {
			return err
		}
		scales[b/bl] = h
	}
	return nil
}

// bf16ToF32 widens little-endian bf16 bytes into dst (len(src) = 2*len(dst)).
func bf16ToF32(dst []float32, src []byte) {
	src = src[:2*len(dst)]
	for i := range dst {
		dst[i] = math.Float32frombits(uint32(src[2*i])<<16 | uint32(src[2*i+1])<<24)
	}
}

// Dequantize writes dst[i] = q[i] * scale, with scales[i/block] the fp16 scale
// of element i (block = the number of consecutive values per scale).
func Dequantize(dst []float32, q []int8, scales []uint16, block int) {
	dst = dst[:len(q)]
	for b := 0; b < len(q); b += block {
		s := F16ToFloat32(scales[b/block])
		e := min(b+block, len(q))
		for i := b; i < e; i++ {
			dst[i] = float32(q[i]) * s
		}
	}
}
