package hf

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/x448/float16"
)

// Tensor is a lazy handle on one stored tensor: its bytes stay in the file mapping until a row is
// asked for, and then only that row is converted.
type Tensor struct {
	Name       string // canonical text-stack name, e.g. "layers.3.self_attn.q_proj.weight"
	StoredName string // the name in the safetensors header
	File       string // base name of the shard holding it
	DType      DType
	Shape      []int
	data       []byte
	rows       []rowRef // a fused tensor's rows (fused.go); data is nil then
}

// NumElements is the product of the shape.
func (t *Tensor) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Rows is the leading dimension (1 for a vector or scalar).
func (t *Tensor) Rows() int {
	if len(t.Shape) < 2 {
		return 1
	}
	return t.Shape[0]
}

// Cols is the product of all but the leading dimension (the length of a vector).
func (t *Tensor) Cols() int {
	if len(t.Shape) == 0 {
		return 1
	}
	n := 1
	for _, d := range t.Shape[1:] {
		n *= d
	}
	if len(t.Shape) == 1 {
		n = t.Shape[0]
	}
	return n
}

// Bytes returns the stored little-endian bytes without copying. They alias a read-only mapping:
// writing to them faults.
// A fused tensor (fused.go) has no stored bytes of its own: Bytes assembles a copy of its rows.
func (t *Tensor) Bytes() []byte {
	if t.rows == nil {
		return t.data
	}
	es := t.DType.Size()
	n := t.Cols() * es
	out := make([]byte, 0, len(t.rows)*n)
	for _, ref := range t.rows {
		out = append(out, ref.t.data[ref.r*n:(ref.r+1)*n]...)
	}
	return out
}

// Row converts row r (of Rows() x Cols()) to float32 into dst, which must hold Cols() values.
func (t *Tensor) Row(r int, dst []float32) error {
	cols := t.Cols()
	if r < 0 || r >= t.Rows() {
		return fmt.Errorf("tensor %s: row %d out of range [0, %d)", t.StoredName, r, t.Rows())
	}
	if len(dst) != cols {
		return fmt.Errorf("tensor %s: row buffer holds %d values, want %d", t.StoredName, len(dst), cols)
	}
	if t.rows != nil {
		return t.rows[r].t.Row(t.rows[r].r, dst)
	}
	es := t.DType.Size()
	decode(dst, t.DType, t.data[r*cols*es:(r+1)*cols*es])
	return nil
}

// Float32 converts the whole tensor into dst (NumElements values).
func (t *Tensor) Float32(dst []float32) error {
	if len(dst) != t.NumElements() {
		return fmt.Errorf("tensor %s: buffer holds %d values, want %d", t.StoredName, len(dst), t.NumElements())
	}
	decode(dst, t.DType, t.Bytes())
	return nil
}

// Values converts the whole tensor into a new slice.
func (t *Tensor) Values() []float32 {
	dst := make([]float32, t.NumElements())
	decode(dst, t.DType, t.Bytes())
	return dst
}

// decode converts little-endian src of dtype d into dst. bf16 is the top half of an f32, so a
// shift is exact; fp16 needs a real conversion.
func decode(dst []float32, d DType, src []byte) {
	switch d {
	case BF16:
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(src[2*i:])) << 16)
		}
	case F16:
		for i := range dst {
			dst[i] = float16.Frombits(binary.LittleEndian.Uint16(src[2*i:])).Float32()
		}
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	}
}
