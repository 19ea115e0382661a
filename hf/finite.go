package hf

import (
	"encoding/binary"
	"fmt"
	"math"

	"qconv/internal/exitcode"
)

// NonFiniteError names a NaN or infinite weight: a checkpoint holding one cannot be exported or
// run (every logit it reaches turns NaN), so every command that reads weights refuses it with
// exit 2 before any graph runs. Row and column index the tensor viewed as [Rows(), Cols()].
type NonFiniteError struct {
	Tensor   string // the name in the safetensors header
	File     string
	Row, Col int
	Value    float32
}

func (e *NonFiniteError) Error() string {
	return fmt.Sprintf("tensor %s (%s): row %d, column %d is %v; a checkpoint with non-finite weights cannot be exported or run", e.Tensor, e.File, e.Row, e.Col, e.Value)
}

func (t *Tensor) nonFinite(i int, v float32) error {
	cols := t.Cols()
	return exitcode.Bad(&NonFiniteError{Tensor: t.StoredName, File: t.File, Row: i / cols, Col: i % cols, Value: v})
}

// CheckFinite scans the stored bytes for the first NaN or Inf (exponent bits all ones) and
// returns a *NonFiniteError (exit 2) naming it, or nil.
func (t *Tensor) CheckFinite() error {
	if t.rows != nil { // a fused tensor: its parts name the stored tensor
		seen := map[*Tensor]bool{}
		for _, ref := range t.rows {
			if !seen[ref.t] {
				seen[ref.t] = true
				if err := ref.t.CheckFinite(); err != nil {
					return err
				}
			}
		}
		return nil
	}
	n := t.NumElements()
	switch t.DType {
	case BF16:
		for i := 0; i < n; i++ {
			if b := binary.LittleEndian.Uint16(t.data[2*i:]); b&0x7f80 == 0x7f80 {
				return t.nonFinite(i, math.Float32frombits(uint32(b)<<16))
			}
		}
	case F16:
		for i := 0; i < n; i++ {
			if b := binary.LittleEndian.Uint16(t.data[2*i:]); b&0x7c00 == 0x7c00 {
				v := float32(math.Inf(1))
				if b&0x3ff != 0 {
					v = float32(math.NaN())
				} else if b&0x8000 != 0 {
					v = float32(math.Inf(-1))
				}
				return t.nonFinite(i, v)
			}
		}
	case F32:
		for i := 0; i < n; i++ {
			if b := binary.LittleEndian.Uint32(t.data[4*i:]); b&0x7f800000 == 0x7f800000 {
				return t.nonFinite(i, math.Float32frombits(b))
			}
		}
	}
	return nil
}

// FiniteRow is Row followed by the same check on the converted values.
func (t *Tensor) FiniteRow(r int, dst []float32) error {
	if err := t.Row(r, dst); err != nil {
		return err
	}
	for c, v := range dst {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return t.nonFinite(r*len(dst)+c, v)
		}
	}
	return nil
}
