package interp

import (
	"math"
)

// execGatedDelta runs an invoke of the gated_delta_update composite. At query length 1 it runs
// the composite's graph body, the shipped decomposition, which is exact there; for longer calls,
// and for a body the interpreter cannot run (another tool's loop, composite_apple.go), it runs
// the op by its declaration, as the Core AI runtime does for a composite it recognises
// (gatedDeltaDeclared).
func execGatedDelta(fr *interpFrame, st *interpStep) error {
	in := make([]*Array, 6)
	for i := range in {
		in[i] = fr.vals[st.in[i]]
		if !in[i].DType.IsFloat() {
			return st.errorf("gated_delta_update operand %d is %s, want float", i, in[i])
		}
	}
	q, k, v, g, beta, s0 := in[0], in[1], in[2], in[3], in[4], in[5]
	if q.Shape == nil || len(q.Shape) != 4 || len(v.Shape) != 4 || len(g.Shape) != 3 || len(beta.Shape) != 3 || len(s0.Shape) != 4 {
		return st.errorf("gated_delta_update operands of ranks %d,%d,%d,%d,%d,%d, want 4,4,4,3,3,4", len(q.Shape), len(k.Shape), len(v.Shape), len(g.Shape), len(beta.Shape), len(s0.Shape))
	}
	B, H, S, dk := q.Shape[0], q.Shape[1], q.Shape[2], q.Shape[3]
	dv := v.Shape[3]
	same := func(a *Array, want ...int64) bool {
		if len(a.Shape) != len(want) {
			return false
		}
		for i := range want {
			if a.Shape[i] != want[i] {
				return false
			}
		}
		return true
	}
	if !same(k, B, H, S, dk) || !same(v, B, H, S, dv) || !same(g, B, H, S) || !same(beta, B, H, S) || !same(s0, B, H, dk, dv) {
		return st.errorf("gated_delta_update operand shapes %v %v %v %v %v %v disagree", q.Shape, k.Shape, v.Shape, g.Shape, beta.Shape, s0.Shape)
	}
	if S == 1 && st.callee != nil {
		return execInvoke(fr, st)
	}
	out := fr.alloc(st.out[0], q.DType, []int64{B, S, H, dv})
	state := fr.alloc(st.out[1], s0.DType, []int64{B, H, dk, dv})
	gatedDeltaDeclared(q, k, v, g, beta, s0, out, state)
	return nil
}

// gatedDeltaDeclared is the declared op: query, key [B,H,S,dk], value [B,H,S,dv], g, beta [B,H,S],
// initial_state [B,H,dk,dv] -> out [B,S,H,dv], state [B,H,dk,dv] (shapes already checked). q and
// k are l2-normalised (x·rsqrt(Σx² + 1e-6)), q is scaled by dk^-1/2, and for each token t in
// order: S ← S·exp(g_t); S ← S + k_t ⊗ β_t(v_t − Sᵀk_t); o_t = Sᵀq_t, all in fp32 (the op's
// reference, coreai-torch's GatedDeltaUpdate, loops over t with a while loop); the outputs take
// the inputs' dtype.
func gatedDeltaDeclared(q, k, v, g, beta, s0, out, state *Array) {
	B, H, S, dk := q.Shape[0], q.Shape[1], q.Shape[2], q.Shape[3]
	dv := v.Shape[3]
	copy(state.F, s0.F)
	scale := float32(1 / math.Sqrt(float64(dk)))
	qn := make([]float32, dk)
	kn := make([]float32, dk)
	mem := make([]float32, dv)
	l2 := func(dst, src []float32) {
		var ss float32
		for _, x := range src {
			ss += x * x
		}
		r := float32(1 / math.Sqrt(float64(ss+1e-6)))
		for i, x := range src {
			dst[i] = x * r
		}
	}
	for bi := int64(0); bi < B; bi++ {
		for h := int64(0); h < H; h++ {
			Sm := state.F[(bi*H+h)*dk*dv:][:dk*dv]
			for t := int64(0); t < S; t++ {
				row := (bi*H+h)*S + t
				l2(qn, q.F[row*dk:][:dk])
				for i := range qn {
					qn[i] *= scale
				}
				l2(kn, k.F[row*dk:][:dk])
				vt := v.F[row*dv:][:dv]
				decay := float32(math.Exp(float64(g.F[row])))
				bt := beta.F[row]
				for i := range Sm {
					Sm[i] *= decay
				}
				for j := range mem {
					mem[j] = 0
				}
				for i := int64(0); i < dk; i++ {
					ki := kn[i]
					for j, s := range Sm[i*dv : (i+1)*dv] {
						mem[j] += s * ki
					}
				}
				for j := range mem {
					mem[j] = (vt[j] - mem[j]) * bt
				}
				for i := int64(0); i < dk; i++ {
					ki := kn[i]
					r := Sm[i*dv : (i+1)*dv]
					for j := range r {
						r[j] += ki * mem[j]
					}
				}
				o := out.F[((bi*S+t)*H+h)*dv:][:dv]
				for j := range o {
					o[j] = 0
				}
				for i := int64(0); i < dk; i++ {
					qi := qn[i]
					for j, s := range Sm[i*dv : (i+1)*dv] {
						o[j] += s * qi
					}
				}
			}
		}
	}
	roundResult(out)
	roundResult(state)
}
