package oracle

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"

	"qconv/internal/kernels"
)

// chunkTokens bounds how many prompt tokens go through the stack together: each weight row is
// read once per chunk (the n-vector kernel), and the activations stay a few MB at 0.8B size.
const chunkTokens = 32

// Prefill feeds ids (the prompt, or any continuation of s) and returns the logits that follow
// the last of them.
func (m *Model) Prefill(s *State, ids []int) ([]float32, error) {
	logits := make([]float32, m.vocab)
	return logits, m.forward(s, ids, logits, false)
}

// PrefillAll is Prefill returning the logits of every position, [len(ids), V] row-major.
func (m *Model) PrefillAll(s *State, ids []int) ([]float32, error) {
	logits := make([]float32, len(ids)*m.vocab)
	return logits, m.forward(s, ids, logits, true)
}

// Decode feeds one token and returns the logits of the next.
func (m *Model) Decode(s *State, id int) ([]float32, error) {
	logits := make([]float32, m.vocab)
	return logits, m.DecodeInto(logits, s, id)
}

// DecodeInto is Decode writing the logits into dst (V values), allocation-free once the state's
// scratch and caches have grown.
func (m *Model) DecodeInto(dst []float32, s *State, id int) error {
	if len(dst) != m.vocab {
		return fmt.Errorf("oracle: logits buffer holds %d values, want %d", len(dst), m.vocab)
	}
	ids := [1]int{id}
	return m.forward(s, ids[:], dst, false)
}

// CheckIDs reports the first id outside the vocabulary.
func (m *Model) CheckIDs(ids []int) error {
	for i, id := range ids {
		if id < 0 || id >= m.vocab {
			return fmt.Errorf("token id %d (position %d) is outside the vocabulary [0, %d)", id, i, m.vocab)
		}
	}
	return nil
}

// forward runs ids through the model in chunks, writing the last position's logits into logits
// (V values), or every position's when every is set (len(ids)·V values).
func (m *Model) forward(s *State, ids []int, logits []float32, every bool) error {
	if s == nil || s.model != m {
		return errors.New("oracle: state belongs to another model (use Model.NewState)")
	}
	if len(ids) == 0 {
		return errors.New("oracle: no tokens to feed")
	}
	if err := m.CheckIDs(ids); err != nil {
		return fmt.Errorf("oracle: %w", err)
	}
	h, V := m.h, m.vocab
	ws := s.workspace(min(len(ids), chunkTokens))
	for c0 := 0; c0 < len(ids); c0 += chunkTokens {
		chunk := ids[c0:min(c0+chunkTokens, len(ids))]
		n := len(chunk)
		for t, id := range chunk {
			m.embed.Row(id, ws.x[t*h:(t+1)*h])
		}
		for i := range m.layers {
			m.layerForward(&m.layers[i], &s.Layers[i], ws, n, s.Len)
		}
		s.Len += n
		switch {
		case every:
			for t := range n {
				rmsNorm(ws.xn[t*h:(t+1)*h], ws.x[t*h:(t+1)*h], m.norm, m.eps)
			}
			kernels.MatVec(m.head, logits[c0*V:(c0+n)*V], ws.xn[:n*h], n)
		case c0+n == len(ids):
			last := ws.x[(n-1)*h : n*h]
			rmsNorm(ws.xn[:h], last, m.norm, m.eps)
			kernels.MatVec(m.head, logits[:V], ws.xn[:h], 1)
		}
	}
	return nil
}

// layerForward runs one pre-norm decoder layer on the n tokens in ws.x, at positions pos0...
func (m *Model) layerForward(l *layer, st *LayerState, ws *workspace, n, pos0 int) {
	h := m.h
	for t := range n {
		rmsNorm(ws.xn[t*h:(t+1)*h], ws.x[t*h:(t+1)*h], l.inNorm, m.eps)
	}
	if l.q != nil {
		m.attention(l, st, ws, n, pos0)
	} else {
		m.gatedDelta(l, st, ws, n)
	}
	addTo(ws.x[:n*h], ws.res[:n*h])

	for t := range n {
		rmsNorm(ws.xn[t*h:(t+1)*h], ws.x[t*h:(t+1)*h], l.postNorm, m.eps)
	}
	xn, I := ws.xn[:n*h], m.inter
	kernels.MatVecs([]kernels.Product{{M: l.gate, Dst: ws.gate[:n*I]}, {M: l.up, Dst: ws.up[:n*I]}}, xn, n)
	act := ws.gate[:n*I]
	for i, u := range ws.up[:n*I] {
		act[i] = silu(act[i]) * u
	}
	kernels.MatVec(l.down, ws.res[:n*h], act, n)
	addTo(ws.x[:n*h], ws.res[:n*h])
}

// gatedDelta is the linear-attention mixer (docs/model-math.md#4-gated-deltanet-layer-linear-attention), recurrent form, writing the
// out_proj result into ws.res.
func (m *Model) gatedDelta(l *layer, st *LayerState, ws *workspace, n int) {
	xn := ws.xn[:n*m.h]
	vd := m.nv * m.dv
	kernels.MatVecs([]kernels.Product{{M: l.qkv, Dst: ws.qkv[:n*m.convDim]}, {M: l.z, Dst: ws.z[:n*vd]},
		{M: l.b, Dst: ws.b[:n*m.nv]}, {M: l.a, Dst: ws.a[:n*m.nv]}}, xn, n)
	for t := range n {
		m.deltaToken(l, st, ws, t)
	}
	kernels.MatVec(l.out, ws.res[:n*m.h], ws.mix[:n*vd], n)
}

// deltaToken advances one layer's conv and recurrent state by token t of the chunk and writes
// the gated-normed head outputs into ws.mix row t.
func (m *Model) deltaToken(l *layer, st *LayerState, ws *workspace, t int) {
	K, cd, kd := m.kern, m.convDim, m.keyDim
	vd := m.nv * m.dv

	// Causal depthwise conv: shift the new qkv column into the state (newest at K-1) and apply
	// the taps, w[c, K-1] on the current token; then SiLU.
	col := ws.qkv[t*cd : (t+1)*cd]
	u := ws.conv[:cd]
	for c := range cd {
		s := st.Conv[c*K : (c+1)*K]
		copy(s, s[1:])
		s[K-1] = col[c]
		w := l.conv[c*K : (c+1)*K]
		var acc float32
		for k := range K {
			acc += w[k] * s[k]
		}
		u[c] = silu(acc)
	}

	// q, k, v are head-major slices of u; q and k are l2-normalised per key head (eps 1e-6,
	// not rms_norm_eps) and q is scaled by dk^-1/2.
	q, k, v := u[:kd], u[kd:2*kd], u[2*kd:]
	qScale := float32(1 / math.Sqrt(float64(m.dk)))
	for hk := range m.nk {
		qh := q[hk*m.dk : (hk+1)*m.dk]
		l2Norm(qh)
		for i := range qh {
			qh[i] *= qScale
		}
		l2Norm(k[hk*m.dk : (hk+1)*m.dk])
	}

	group := m.nv / m.nk // value head j reads key head j/group (repeat_interleave)
	zRow := ws.z[t*vd : (t+1)*vd]
	out := ws.mix[t*vd : (t+1)*vd]
	dk, dv := m.dk, m.dv
	heads := func(j0, j1 int) {
		for j := j0; j < j1; j++ {
			beta := sigmoid(ws.b[t*m.nv+j])
			g := l.negExpA[j] * softplus(ws.a[t*m.nv+j]+l.dtBias[j])
			hk := j / group
			o := out[j*dv : (j+1)*dv]
			deltaRule(st.Recurrent[j*dk*dv:(j+1)*dk*dv], k[hk*dk:(hk+1)*dk], q[hk*dk:(hk+1)*dk], v[j*dv:(j+1)*dv],
				beta, exp32(g), ws.mem[j*dv:(j+1)*dv], ws.delta[j*dv:(j+1)*dv], o)
			gatedRMSNorm(o, zRow[j*dv:(j+1)*dv], l.gnorm, m.eps)
		}
	}
	// The heads are independent; at 0.8B size (16 heads of 128×128) they are worth spreading
	// over the cores, at fixture size they are not.
	workers := min(runtime.GOMAXPROCS(0), m.nv)
	if workers < 2 || m.nv*dk*dv < parallelStateMin {
		heads(0, m.nv)
		return
	}
	var wg sync.WaitGroup
	for w := 1; w < workers; w++ {
		wg.Go(func() { heads(m.nv*w/workers, m.nv*(w+1)/workers) })
	}
	heads(0, m.nv/workers)
	wg.Wait()
}

// parallelStateMin is the state size (values per layer) from which deltaToken splits the value
// heads across goroutines (a variable so the test can force the parallel path at fixture size).
var parallelStateMin = 1 << 16

// deltaRule is one step of the gated delta rule on a head's state S [dk, dv]:
// S ← decay·S; mem = Sᵀk; δ = β(v − mem); S ← S + k δᵀ; o = Sᵀq.
func deltaRule(S, k, q, v []float32, beta, decay float32, mem, delta, o []float32) {
	dv := len(v)
	clear(mem)
	for i, ki := range k {
		row := S[i*dv : (i+1)*dv]
		for j := range row {
			row[j] *= decay
		}
		kernels.Axpy(mem, ki, row)
	}
	for j := range delta {
		delta[j] = (v[j] - mem[j]) * beta
	}
	clear(o)
	for i, ki := range k {
		row := S[i*dv : (i+1)*dv]
		kernels.Axpy(row, ki, delta)
		kernels.Axpy(o, q[i], row)
	}
}

// attention is the gated full-attention mixer (docs/model-math.md#5-gated-full-attention), writing the o_proj result
// into ws.res.
func (m *Model) attention(l *layer, st *LayerState, ws *workspace, n, pos0 int) {
	D, H, Hkv := m.hd, m.nH, m.nKV
	xn := ws.xn[:n*m.h]
	kernels.MatVecs([]kernels.Product{{M: l.q, Dst: ws.q[:n*2*H*D]}, {M: l.k, Dst: ws.k[:n*Hkv*D]}, {M: l.v, Dst: ws.v[:n*Hkv*D]}}, xn, n)

	// Append the chunk's keys (k_norm, then RoPE at their position) and values to the cache.
	for t := range n {
		for g := range Hkv {
			kh := ws.k[(t*Hkv+g)*D : (t*Hkv+g+1)*D]
			rmsNorm(kh, kh, l.kNorm, m.eps)
			m.rope(kh, pos0+t)
			st.Keys[g] = append(st.Keys[g], kh...)
			st.Values[g] = append(st.Values[g], ws.v[(t*Hkv+g)*D:(t*Hkv+g+1)*D]...)
		}
	}

	scale := float32(1 / math.Sqrt(float64(D)))
	group := H / Hkv // query head hq reads KV head hq/group
	qh := ws.heads[:D]
	for t := range n {
		T := pos0 + t + 1 // causal: keys at positions ≤ pos0+t
		if cap(ws.scores) < T {
			ws.scores = make([]float32, 2*T)
		}
		scores := ws.scores[:T]
		row := ws.q[t*2*H*D : (t+1)*2*H*D]
		for hq := range H {
			// q_proj rows interleave per head: [query_h | gate_h], D each.
			copy(qh, row[2*hq*D:(2*hq+1)*D])
			gate := row[(2*hq+1)*D : (2*hq+2)*D]
			rmsNorm(qh, qh, l.qNorm, m.eps)
			m.rope(qh, pos0+t)
			keys, values := st.Keys[hq/group], st.Values[hq/group]
			for tau := range T {
				scores[tau] = kernels.Dot(qh, keys[tau*D:(tau+1)*D]) * scale
			}
			softmax(scores)
			o := ws.mix[(t*H+hq)*D : (t*H+hq+1)*D]
			clear(o)
			for tau, a := range scores {
				kernels.Axpy(o, a, values[tau*D:(tau+1)*D])
			}
			for i := range o {
				o[i] *= sigmoid(gate[i])
			}
		}
	}
	kernels.MatVec(l.o, ws.res[:n*m.h], ws.mix[:n*H*D], n)
}

// rope rotates the first rot dims of one head vector at position pos, NeoX style: dim j pairs
// with dim j+rot/2 and turns by pos·inv_freq_j. For text the interleaved MRoPE sections all see
// the same position, so this is the whole of it.
func (m *Model) rope(x []float32, pos int) {
	half := m.rot / 2
	for j := range half {
		phi := float64(float32(pos) * m.invFreq[j])
		c, s := float32(math.Cos(phi)), float32(math.Sin(phi))
		x1, x2 := x[j], x[j+half]
		x[j] = x1*c - x2*s
		x[j+half] = x2*c + x1*s
	}
}
