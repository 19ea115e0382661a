package interp

import (
	"fmt"
	"math"

	"qconv/graph"
)

// Composites run by their declaration, as the Core AI runtime runs a composite it recognises
// (docs/verify-foreign.md): gated_delta_update (interp_composite.go), and the two more Apple's
// macOS Qwen3.5 export emits, rms_norm and scaled_dot_product_attention (graph/composite_apple.go).
// Each reads its op_attrs once, at plan time.

// compositeStep is a planned invoke of a declared composite.
type compositeStep struct {
	name   string
	eps    float64 // rms_norm
	causal bool    // sdpa
	scale  float64 // sdpa; 0 = head_dim^-1/2
	window int64   // sdpa; 0 = none
}

// planComposite returns the executor of the composite callee declares, or nil when qconv runs
// its body instead (no declaration, or one qconv does not implement). An unusable declaration of
// an implemented op is an error naming it.
func planComposite(callee *graph.Func, st *interpStep) (opExec, error) {
	if callee.Composite == "" {
		return nil, nil
	}
	d, err := graph.ParseCompositeDecl(callee.Composite)
	if err != nil {
		return nil, fmt.Errorf("@%s: %v", callee.Name, err)
	}
	cs := &compositeStep{name: d.Name}
	want := func(ins, outs int) error {
		if len(callee.Args) != ins || len(callee.Results) != outs || len(d.Inputs) != ins || len(d.Outputs) != outs {
			return fmt.Errorf("@%s: composite %s takes %d inputs and returns %d; the graph has %d and %d, its declaration names %v and %v",
				callee.Name, d.Name, ins, outs, len(callee.Args), len(callee.Results), d.Inputs, d.Outputs)
		}
		return nil
	}
	switch d.Name {
	case graph.CompositeGatedDelta:
		if err := want(6, 2); err != nil {
			return nil, err
		}
		if l2, err := d.Bool("use_qk_l2_norm"); err != nil || !l2 {
			return nil, fmt.Errorf("@%s: gated_delta_update with use_qk_l2_norm = %q: qconv implements the l2-normalised form only", callee.Name, d.Attrs["use_qk_l2_norm"])
		}
		return execGatedDelta, nil
	case graph.CompositeRMSNorm:
		if err := want(2, 1); err != nil {
			return nil, err
		}
		if ax := d.Attrs["axes"]; ax != "-1" && ax != "[-1]" {
			return nil, fmt.Errorf("@%s: rms_norm over axes %q: qconv implements the last axis (-1) only", callee.Name, ax)
		}
		eps, ok, err := d.Float("eps")
		if err != nil || !ok {
			return nil, fmt.Errorf("@%s: rms_norm needs a numeric op_attrs.eps (%v)", callee.Name, err)
		}
		cs.eps = eps
		st.comp = cs
		return execRMSNorm, nil
	case graph.CompositeSDPA:
		if len(d.Inputs) != 3 || d.Inputs[0] != "query" || d.Inputs[1] != "key" || d.Inputs[2] != "value" {
			return nil, fmt.Errorf("@%s: scaled_dot_product_attention with inputs %v: qconv implements query, key, value (no attn_mask, no sinks)", callee.Name, d.Inputs)
		}
		if err := want(3, 1); err != nil {
			return nil, err
		}
		if cs.causal, err = d.Bool("is_causal"); err != nil {
			return nil, err
		}
		if s, ok, err := d.Float("scale"); err != nil {
			return nil, err
		} else if ok {
			cs.scale = s
		}
		if w, ok, err := d.Float("window_size"); err != nil {
			return nil, err
		} else if ok {
			if w < 0 || w != math.Trunc(w) {
				return nil, fmt.Errorf("@%s: scaled_dot_product_attention window_size %v", callee.Name, w)
			}
			cs.window = int64(w)
		}
		st.comp = cs
		return execSDPA, nil
	}
	return nil, nil
}

// execRMSNorm: output = input · rsqrt(mean(input², last axis) + eps) · scale, the statistic in
// fp32, scale broadcast against input (numpy rules), the result in input's dtype.
func execRMSNorm(fr *interpFrame, st *interpStep) error {
	x, w := fr.vals[st.in[0]], fr.vals[st.in[1]]
	if !x.DType.IsFloat() || !w.DType.IsFloat() || len(x.Shape) == 0 {
		return st.errorf("rms_norm of %s by %s: want float tensors", x, w)
	}
	idx, err := broadcastIndex(w.Shape, x.Shape)
	if err != nil {
		return st.errorf("rms_norm scale %s against input %s: %v", w, x, err)
	}
	out := fr.alloc(st.out[0], x.DType, x.Shape)
	n := int(x.Shape[len(x.Shape)-1])
	eps := st.comp.eps
	for r := 0; r*n < len(x.F); r++ {
		row := x.F[r*n : (r+1)*n]
		var ss float64
		for _, v := range row {
			ss += float64(v) * float64(v)
		}
		inv := float32(1 / math.Sqrt(ss/float64(n)+eps))
		for i, v := range row {
			out.F[r*n+i] = v * inv * w.F[idx(r*n+i)]
		}
	}
	roundResult(out)
	return nil
}

// broadcastIndex maps a flat index of shape to the flat index of from broadcast onto it.
func broadcastIndex(from, shape []int64) (func(int) int, error) {
	if len(from) > len(shape) {
		return nil, fmt.Errorf("rank %d does not broadcast to rank %d", len(from), len(shape))
	}
	off := len(shape) - len(from)
	strides := make([]int, len(shape)) // from's stride along each of shape's axes (0: broadcast)
	s := 1
	for i := len(from) - 1; i >= 0; i-- {
		switch from[i] {
		case shape[off+i]:
			strides[off+i] = s
		case 1:
		default:
			return nil, fmt.Errorf("dimension %d of %v does not broadcast to %v", i, from, shape)
		}
		s *= int(from[i])
	}
	return func(flat int) int {
		j := 0
		for a := len(shape) - 1; a >= 0; a-- {
			d := int(shape[a])
			j += (flat % d) * strides[a]
			flat /= d
		}
		return j
	}, nil
}

// execSDPA: query [B,Nq,Tq,D], key [B,Nkv,Tk,D], value [B,Nkv,Tk,Dv] -> [B,Nq,Tq,Dv]; query head
// n reads kv head n/(Nq/Nkv). Scores q·k·scale (head_dim^-1/2 unless declared), softmax in fp32
// over the visible keys: with is_causal the lower-right mask (query i sees key j ≤ i + Tk - Tq,
// the queries being the last Tq tokens), with window_size w only the w keys up to that diagonal
// (without is_causal, the keys within w of it on either side), as coreai-torch's SDPA defines them.
func execSDPA(fr *interpFrame, st *interpStep) error {
	q, k, v := fr.vals[st.in[0]], fr.vals[st.in[1]], fr.vals[st.in[2]]
	if !q.DType.IsFloat() || len(q.Shape) != 4 || len(k.Shape) != 4 || len(v.Shape) != 4 {
		return st.errorf("scaled_dot_product_attention of %s, %s, %s: want rank-4 float tensors", q, k, v)
	}
	B, Nq, Tq, D := q.Shape[0], q.Shape[1], q.Shape[2], q.Shape[3]
	Nkv, Tk, Dv := k.Shape[1], k.Shape[2], v.Shape[3]
	if k.Shape[0] != B || v.Shape[0] != B || k.Shape[3] != D || v.Shape[1] != Nkv || v.Shape[2] != Tk || Nkv == 0 || Nq%Nkv != 0 {
		return st.errorf("scaled_dot_product_attention shapes %v, %v, %v disagree", q.Shape, k.Shape, v.Shape)
	}
	cs := st.comp
	if cs.causal && Tk < Tq {
		return st.errorf("causal scaled_dot_product_attention with %d keys for %d queries", Tk, Tq)
	}
	scale := cs.scale
	if scale == 0 {
		scale = 1 / math.Sqrt(float64(D))
	}
	out := fr.alloc(st.out[0], q.DType, []int64{B, Nq, Tq, Dv})
	g := Nq / Nkv
	off := Tk - Tq
	p := make([]float64, Tk)
	acc := make([]float64, Dv)
	for b := int64(0); b < B; b++ {
		for n := int64(0); n < Nq; n++ {
			kv := b*Nkv + n/g
			for i := int64(0); i < Tq; i++ {
				qi := q.F[((b*Nq+n)*Tq+i)*D:][:D]
				lo, hi := int64(0), Tk-1 // visible keys [lo, hi]
				if cs.causal {
					hi = min(hi, i+off)
				}
				if cs.window > 0 {
					lo = max(lo, i+off-cs.window+1)
					if !cs.causal {
						hi = min(hi, i+off+cs.window-1)
					}
				}
				m := math.Inf(-1)
				for j := lo; j <= hi; j++ {
					kj := k.F[(kv*Tk+j)*D:][:D]
					var s float64
					for d := range qi {
						s += float64(qi[d]) * float64(kj[d])
					}
					p[j] = s * scale
					m = max(m, p[j])
				}
				var sum float64
				for j := lo; j <= hi; j++ {
					p[j] = math.Exp(p[j] - m)
					sum += p[j]
				}
				clear(acc)
				for j := lo; j <= hi; j++ {
					vj := v.F[(kv*Tk+j)*Dv:][:Dv]
					w := p[j] / sum
					for d := range acc {
						acc[d] += w * float64(vj[d])
					}
				}
				o := out.F[((b*Nq+n)*Tq+i)*Dv:][:Dv]
				for d := range o {
					o[d] = float32(acc[d]) // no visible key (hi < lo): zeros
				}
			}
		}
	}
	roundResult(out)
	return nil
}
