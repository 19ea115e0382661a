package graph

import "fmt"

// WeightFormat says how a checkpoint tensor is stored in the graph.
type WeightFormat uint8

const (
	Dense     WeightFormat = iota + 1 // a float constant (f16 or f32)
	Blockwise                         // int data + scales through coreai.blockwise_shift_scale
	Palette                           // k-means indices + LUT through coreai.lut_to_dense
)

func (f WeightFormat) String() string {
	switch f {
	case Dense:
		return "dense"
	case Blockwise:
		return "blockwise"
	case Palette:
		return "lut"
	}
	return fmt.Sprintf("WeightFormat(%d)", uint8(f))
}

// Weight is the graph form of one checkpoint tensor: its resources and their types. Shape is the
// tensor's logical shape (a Linear weight is [out, in]).
type Weight struct {
	Name   string // canonical checkpoint name
	Format WeightFormat
	Shape  []int64

	Data     *Resource // dense values, quantized ints, or packed LUT indices
	DataType DType     // f16/f32 (dense), si8/si4 (blockwise), ui8/ui4 (palette)

	Scale      *Resource // blockwise: scales of shape ScaleShape, dtype FloatType
	ScaleShape []int64

	LUT      *Resource // palette: [groups, 1, 2^bits, 1] entries of dtype FloatType
	LUTShape []int64

	FloatType DType // the dtype the weight dequantizes to (dense: DataType)
}
