package interp

import (
	"fmt"

	"qconv/graph"
	"qconv/internal/kernels"
)

// Numerics selects how the interpreter models the device's arithmetic.
//
// Exact (the default) emulates fp16 as the graph states it: every op computes in float32 and
// rounds its result to fp16 once, so a matmul accumulates in float32. F16Accumulate is a stress
// mode for graphs with dynamic shapes: on device, fp16 matmuls of a dynamic-shape graph were
// measured to lose about 1.3% relative accuracy, consistent with fp16 accumulation; in this mode
// every fp16 matmul accumulates in fp16 (the running sum is rounded to fp16 after every term). fp32 matmuls and static graphs are not affected
// (docs/numerics.md).
type Numerics uint8

const (
	Exact Numerics = iota
	F16Accumulate
)

func (n Numerics) String() string {
	switch n {
	case Exact:
		return "exact"
	case F16Accumulate:
		return "fp16-accumulate"
	}
	return fmt.Sprintf("Numerics(%d)", uint8(n))
}

// NewNumerics plans fn of m under numerics n. F16Accumulate applies only when m is
// dynamic; on a static graph it is Exact.
func NewNumerics(m *graph.Module, fn string, n Numerics) (*Interpreter, error) {
	return newInterpreter(m, fn, interpOptions{f16Acc: n == F16Accumulate && m.Dynamic()})
}

// markF16Accumulate routes every fp16 matmul step (fused weight products included) through the
// fp16-accumulating kernels.
func markF16Accumulate(steps []*interpStep) {
	for _, st := range steps {
		if st.op.Name != graph.OpMatmul || st.op.Results[0].Type.DType != graph.F16 {
			continue
		}
		if st.w != nil {
			st.exec = execFusedMatmulF16Acc
		} else {
			st.exec = execMatmulF16Acc
		}
	}
}

// accumulateF16 sets acc[:B] = Σ_k x[k]·bt[k*B:(k+1)*B], rounding the running sum to fp16 after
// every term.
func accumulateF16(acc, x, bt []float32, B int) {
	clear(acc)
	for k, xv := range x {
		kernels.Axpy(acc, xv, bt[k*B:(k+1)*B])
		kernels.RoundF16(acc)
	}
}

// f16AccDefaultFloats is the weight size up to which the stress gate runs by default (2^26
// matrix values, 64 MB as int8): there it costs seconds. Past it the fp16-accumulate products
// run from the stored weights too (kernels.MatVecF16Acc), but the stress gate costs about 2.3
// times the exact gate (Qwen3.5-0.8B: 116 s against 50 s on 2 cores, docs/numerics.md), so
// qconv export's default records a "not run" note instead.
const f16AccDefaultFloats = 1 << 26

// F16AccumulateCached reports whether every matrix constant of m's @main together is at most
// f16AccDefaultFloats values: the models the stress gate runs on by default (export/stress.go).
// The name is the rule's history: those weights once had to fit a cache of transposed copies.
func F16AccumulateCached(m *graph.Module) bool {
	f := m.Func("main")
	if f == nil {
		return true
	}
	var n int64
	for _, op := range f.Body {
		if op.Name == graph.OpConstant && len(op.Results) == 1 && op.Results[0].Type.Rank() == 2 {
			n += op.Results[0].Type.NumElements()
		}
	}
	return n <= f16AccDefaultFloats
}

// execFusedMatmulF16Acc is execFusedMatmul with an fp16 accumulator, straight from the weight's
// stored encoding: kernels.MatVecF16Acc decodes and transposes tiles of rows as it goes, and its
// sums equal accumulateF16 over a transposed copy bit for bit.
func execFusedMatmulF16Acc(fr *interpFrame, st *interpStep) error {
	x, w, out, err := fusedMatmulOperands(fr, st)
	if err != nil {
		return err
	}
	if n := len(x.F) / w.cols; n > 0 {
		kernels.MatVecF16Acc(w.m, out.F, x.F, n)
	}
	return nil
}

// execMatmulF16Acc is execMatmul with an fp16 accumulator: acc = fp16(acc + a·b) per term (the
// product and sum in float32, then rounded to fp16).
func execMatmulF16Acc(fr *interpFrame, st *interpStep) error {
	a, b := fr.vals[st.in[0]], fr.vals[st.in[1]]
	if a.DType != graph.F16 || b.DType != graph.F16 {
		return st.errorf("operands %s and %s: the fp16-accumulate mode runs fp16 matmuls only", a, b)
	}
	ra, rb := len(a.Shape), len(b.Shape)
	if ra < 2 || rb < 2 {
		return st.errorf("operands %s and %s: rank < 2", a, b)
	}
	M, K := int(a.Shape[ra-2]), int(a.Shape[ra-1])
	K2, N := int(b.Shape[rb-2]), int(b.Shape[rb-1])
	if st.transB {
		N, K2 = K2, N // b holds [..., N, K]
	}
	if K != K2 {
		return st.errorf("contraction dims differ: %s x %s", a, b)
	}
	bc := makeBcast(a.Shape[:ra-2], b.Shape[:rb-2])
	if bc.incompat || bc.rankTooBig || bc.outRank+2 > interpMaxRank {
		return st.errorf("batch dims of %s and %s do not broadcast", a, b)
	}
	shape := append(bc.outShape[:bc.outRank:bc.outRank], int64(M), int64(N))
	out := fr.alloc(st.out[0], graph.F16, shape)
	dst, af, bf := out.F, a.F, b.F
	mk, kn, mn := M*K, K*N, M*N
	var bt []float32
	if st.transB {
		bt = fr.scratchF(kn)
	}
	bc.each(func(o, ao, bo, n, sa, sb int) {
		for i := 0; i < n; i++ {
			d, x, y := dst[(o+i)*mn:(o+i+1)*mn], af[(ao+i*sa)*mk:(ao+i*sa+1)*mk], bf[(bo+i*sb)*kn:(bo+i*sb+1)*kn]
			if st.transB {
				for c := 0; c < N; c++ {
					for k := 0; k < K; k++ {
						bt[k*N+c] = y[c*K+k]
					}
				}
				y = bt
			}
			for r := 0; r < M; r++ {
				accumulateF16(d[r*N:(r+1)*N], x[r*K:(r+1)*K], y, N)
			}
		}
	})
	return nil
}
