package lower

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/x448/float16"

	"qconv/graph"
	"qconv/hf"
	"qconv/internal/exitcode"
)

// WeightSource supplies the graph form of each checkpoint tensor the lowering needs.
type WeightSource interface {
	Weight(spec hf.TensorSpec) (*graph.Weight, error)
}

// DenseWeights serves every tensor as a dense constant of one float dtype, converted lazily
// from the checkpoint: the unquantized form used to check lowering against the reference.
type DenseWeights struct {
	Checkpoint *hf.Checkpoint
	DType      graph.DType // F32, F16 or BF16
}

// Weight implements WeightSource.
func (d DenseWeights) Weight(spec hf.TensorSpec) (*graph.Weight, error) {
	t, err := d.Checkpoint.Tensor(spec.Name)
	if err != nil {
		return nil, err
	}
	return DenseWeight(t, d.DType)
}

// DenseWeight makes a dense f32/f16/bf16 weight whose bytes are converted from t on demand.
func DenseWeight(t *hf.Tensor, dt graph.DType) (*graph.Weight, error) {
	if dt != graph.F32 && dt != graph.F16 && dt != graph.BF16 {
		return nil, fmt.Errorf("tensor %s: dense weights are f16, bf16 or f32, not %s", t.Name, dt)
	}
	shape := make([]int64, len(t.Shape))
	for i, d := range t.Shape {
		shape[i] = int64(d)
	}
	n := t.NumElements()
	res := &graph.Resource{
		Key:  graph.SanitizeKey(t.Name),
		Size: int64(n * dt.Bits() / 8),
		Fill: func(dst []byte) error { return fillDense(dst, t, dt) },
	}
	return &graph.Weight{Name: t.Name, Format: graph.Dense, Shape: shape, Data: res, DataType: dt, FloatType: dt}, nil
}

// fillDense converts t row by row into little-endian f32/f16/bf16 bytes (bf16 keeps f32's range,
// so only fp16 can overflow).
func fillDense(dst []byte, t *hf.Tensor, dt graph.DType) error {
	row := make([]float32, t.Cols())
	es := dt.Bits() / 8
	for r := 0; r < t.Rows(); r++ {
		if err := t.FiniteRow(r, row); err != nil {
			return err
		}
		out := dst[r*len(row)*es:]
		for i, v := range row {
			if dt == graph.F32 {
				binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
				continue
			}
			if dt == graph.BF16 {
				binary.LittleEndian.PutUint16(out[2*i:], graph.BF16FromFloat32(v))
				continue
			}
			h := float16.Fromfloat32(v)
			if h.IsInf(0) && !math.IsInf(float64(v), 0) {
				return exitcode.Badf("tensor %s: value %g at row %d, column %d overflows fp16 (largest finite 65504); export it with --compute fp32", t.StoredName, v, r, i)
			}
			binary.LittleEndian.PutUint16(out[2*i:], h.Bits())
		}
	}
	return nil
}
