package interp

import (
	"qconv/graph"
	"qconv/internal/kernels"
)

// bf16 in the interpreter. A bf16 tensor holds bf16-representable float32 values: every op whose
// result dtype is bf16 rounds its result with graph.RoundBF16 (round to nearest even on the
// binary32 bits, overflow to ±Inf, subnormals kept, NaN kept), exactly as f16 results are rounded
// to fp16. Accumulations (matmuls, reductions, softmax) run in float32 and round once.
//
// Fused weights. A weight whose graph dtype is bf16 and whose stored form is not bf16 (a
// blockwise int8/int4 dequantization with bf16 scales, a LUT) is rounded to bf16 element by
// element before the product, as the dequantization op's bf16 result type says. Unlike the f16
// case (interp.go's header), the difference matters: q·scale of an int8 weight has up to 15
// significant bits, bf16 keeps 8, so skipping the rounding would gate numbers better than the
// graph's.

// roundFloats rounds x to the precision of dt (f16 or bf16; f32 and integer dtypes are left as is).
func roundFloats(dt graph.DType, x []float32) {
	switch dt {
	case graph.F16:
		kernels.RoundF16(x)
	case graph.BF16:
		roundBF16(x)
	}
}

// roundBF16 applies graph.RoundBF16 to every element, with the vector kernel of the same rule
// (TestKernelRoundBF16 holds the two equal; they were compared on all 2^32 bit patterns).
func roundBF16(x []float32) { kernels.RoundBF16(x) }

// bf16Matrix presents a dequantizing matrix's rows rounded to bf16.
type bf16Matrix struct{ m kernels.Matrix }

func (b bf16Matrix) Rows() int { return b.m.Rows() }
func (b bf16Matrix) Cols() int { return b.m.Cols() }

func (b bf16Matrix) Row(r int, dst []float32) {
	b.m.Row(r, dst)
	roundBF16(dst[:b.m.Cols()])
}

func (b bf16Matrix) MulRows(dst, x []float32, n, r0, r1 int) {
	R, C := b.m.Rows(), b.m.Cols()
	if n < 1 || r0 < 0 || r1 > R || r0 > r1 || len(x) < n*C || (r1 > r0 && len(dst) < (n-1)*R+r1) {
		panic("interp: bf16Matrix.MulRows: range or lengths out of bounds")
	}
	row := make([]float32, C)
	for r := r0; r < r1; r++ {
		b.Row(r, row)
		for v := 0; v < n; v++ {
			dst[v*R+r] = kernels.Dot(row, x[v*C:(v+1)*C])
		}
	}
}
