package lower

import (
	"math"

	"qconv/graph"
)

// Overflow-safe normalisation statistics in fp16 (docs/numerics.md).
//
// Real residual streams carry a few channels with |x| in the hundreds to thousands. In fp16 the
// square of anything above 256 overflows (65504 is the largest finite value), so an RMSNorm whose
// statistics run in fp16 turns such a token into inf/NaN or zeros. The safe form divides x by its
// largest magnitude m before squaring, which is exact in the math:
//
//	x / sqrt(mean(x²) + eps) = (x/m) / sqrt(mean((x/m)²) + (√eps/m)²)
//
// |x/m| ≤ 1, so no square overflows, and the mean is at least 1/n. m is floored at 2^-6 so the eps
// term (√eps/m)² stays finite and normal; any positive m keeps the identity. Every fp16 norm of
// the lowering (RMSNorm, the gated output norm, the l2 norm of q and k) goes through normScale;
// fp32 graphs keep the plain form, op for op.

// normFloor is the smallest scale a fp16 norm divides by.
const normFloor = 1.0 / 64

// normScale returns x · rsqrt(stat(x²) + eps) over axis, in x's dtype, where stat is the mean
// (mean=true) or the sum.
func (l *lowering) normScale(x *graph.Value, axis int64, eps float64, mean bool) *graph.Value {
	b, dt := l.b, x.Type.DType
	reduce := b.ReduceSum
	if mean {
		reduce = b.ReduceMean
	}
	if dt != graph.F16 || l.opt.UnscaledF16Norm {
		return b.Mul(x, b.Op(graph.OpRsqrt, b.Add(reduce(b.Mul(x, x), axis), b.Scalar(dt, eps))))
	}
	abs := b.Op(graph.OpMax, x, b.Mul(x, b.Scalar(dt, -1)))
	m := b.Op(graph.OpMax, b.Op(graph.OpReduceMax, abs, b.I32s(axis)), b.Scalar(dt, normFloor))
	xs := b.Div(x, m)
	e := b.Div(b.Scalar(dt, math.Sqrt(eps)), m)
	return b.Mul(xs, b.Op(graph.OpRsqrt, b.Add(reduce(b.Mul(xs, xs), axis), b.Mul(e, e))))
}
