package lower

import (
	"fmt"
	"math"

	"qconv/graph"
	"qconv/hf"
)

// Options choose the contract and the numerics of a lowering.
type Options struct {
	Contract      graph.Contract
	Compute       graph.DType // activation dtype: F16 on device (BF16 on macos-stock), F32 for the validation form
	StateDType    graph.DType // gated-delta state: graph.RecurrenceDType (F32 on GPU, F16 on the ANE, BF16 on macos-stock)
	NormDType     graph.DType // dtype RMSNorm statistics are computed in
	Context       int         // static context of the host-cache contracts
	PrefillTokens int         // tokens per HostPrefill pass (16)
	GreedyHead    bool        // also output next_token = argmax(logits) (host-cache contracts)
	// UntieHead projects with "lm_head.weight" even when the checkpoint ties it to the embedding
	// (the weight source then serves a separately quantized copy of the embedding).
	UntieHead bool
	// UnscaledF16Norm keeps fp16 norm statistics in the form earlier releases shipped (x² taken
	// unscaled, overflowing above 256); tests use it to show what the safe form fixes.
	UnscaledF16Norm bool
	// AppleComposites (Stock contract only) writes the RMSNorms and attention as invokes of Apple's
	// rms_norm and scaled_dot_product_attention composites (stock_apple.go): the form Apple's own
	// exporter writes, for tests of `qconv verify` on such bundles. No target sets it.
	AppleComposites bool
	Weights         WeightSource
}

// Lower builds the module holding @main for one contract. Weights come from opt.Weights; their
// resources are registered in the module in first-use order.
func Lower(cfg *hf.Config, opt Options) (*graph.Module, error) {
	// bf16 only where Apple's contract computes in it: the stock lowering (lower/stock.go).
	bf16 := opt.Contract == graph.Stock
	if opt.Compute != graph.F16 && opt.Compute != graph.F32 && !(bf16 && opt.Compute == graph.BF16) {
		return nil, fmt.Errorf("lowering: compute dtype must be f16 or f32 (or bf16 on the stock contract), not %s", opt.Compute)
	}
	if opt.StateDType != graph.F16 && opt.StateDType != graph.F32 && !(bf16 && opt.StateDType == graph.BF16) {
		return nil, fmt.Errorf("lowering: state dtype must be f16 or f32 (or bf16 on the stock contract), not %s", opt.StateDType)
	}
	if opt.NormDType == 0 {
		opt.NormDType = graph.F32
	}
	if opt.Weights == nil {
		return nil, fmt.Errorf("lowering: no weight source")
	}
	switch opt.Contract {
	case graph.Pipelined:
	case graph.Stock:
		return lowerStock(cfg, opt)
	case graph.HostDecode, graph.HostPrefill:
		if opt.Context <= 0 {
			return nil, fmt.Errorf("lowering: the %s contract needs a positive static context, got %d", opt.Contract, opt.Context)
		}
		if opt.Contract == graph.HostPrefill && opt.PrefillTokens <= 0 {
			return nil, fmt.Errorf("lowering: the prefill contract needs a positive token count, got %d", opt.PrefillTokens)
		}
	default:
		return nil, fmt.Errorf("lowering: unknown contract %d", opt.Contract)
	}
	m := &graph.Module{}
	f := graph.NewFunc("main")
	m.Funcs = append(m.Funcs, f)
	l := &lowering{cfg: cfg, opt: opt, b: graph.NewBuilder(m, f), m: m, weights: map[string]*graph.Value{}, specs: map[string]hf.TensorSpec{}}
	for _, s := range cfg.ExpectedTensors() {
		l.specs[s.Name] = s
	}
	if _, ok := l.specs["lm_head.weight"]; !ok {
		l.specs["lm_head.weight"] = hf.TensorSpec{Name: "lm_head.weight", Shape: []int{cfg.VocabSize, cfg.HiddenSize}, Kind: hf.KindHead, Layer: -1}
	}
	if err := l.build(); err != nil {
		return nil, err
	}
	if err := l.b.Err(); err != nil {
		return nil, err
	}
	return m, nil
}

type lowering struct {
	cfg     *hf.Config
	opt     Options
	b       *graph.Builder
	m       *graph.Module
	err     error
	weights map[string]*graph.Value // dequantized weight value per canonical name
	specs   map[string]hf.TensorSpec

	q int // tokens per call (1, or PrefillTokens)

	// per call
	cos, sin *graph.Value // [q, 1, r] rotary tables in compute dtype
}

func (l *lowering) fail(err error) {
	if l.err == nil {
		l.err = err
	}
}

// weight returns the named tensor as a graph value of its float dtype ([out,in] for a Linear):
// a dense constant, or the dequantizing op over the quantized constants.
func (l *lowering) weight(name string) *graph.Value {
	if v, ok := l.weights[name]; ok {
		return v
	}
	spec, ok := l.specs[name]
	if !ok {
		l.fail(fmt.Errorf("lowering: no tensor %s in this config", name))
		return l.b.Placeholder(graph.Type{})
	}
	w, err := l.opt.Weights.Weight(spec)
	if err != nil {
		l.fail(fmt.Errorf("lowering: %w", err))
		return l.b.Placeholder(graph.Type{})
	}
	b := l.b
	add := func(r *graph.Resource) *graph.Resource {
		if r == nil {
			l.fail(fmt.Errorf("lowering: tensor %s has no resource", name))
			return nil
		}
		if l.m.Resource(r.Key) == r {
			return r // registered by another function of the module
		}
		if _, err := l.m.AddResource(r); err != nil {
			l.fail(err)
		}
		return r
	}
	var v *graph.Value
	switch w.Format {
	case graph.Dense:
		v = b.Resource(graph.Tensor(w.DataType, w.Shape...), add(w.Data))
	case graph.Blockwise:
		data := b.Resource(graph.Tensor(w.DataType, w.Shape...), add(w.Data))
		scale := b.Resource(graph.Tensor(w.FloatType, w.ScaleShape...), add(w.Scale))
		// Zero offsets: backends fuse the dequantization into the matmul only when both are zero.
		off1 := b.SplatInt(w.DataType, 0, w.ScaleShape...)
		off2 := b.Splat(w.FloatType, 0, w.ScaleShape...)
		v = b.Op(graph.OpBlockwise, data, scale, off1, off2)
	case graph.Palette:
		idx := b.Resource(graph.Tensor(w.DataType, w.Shape...), add(w.Data))
		lut := b.Resource(graph.Tensor(w.FloatType, w.LUTShape...), add(w.LUT))
		v = b.Op(graph.OpLUTToDense, idx, lut, b.Const(graph.DenseInts(graph.SI16, nil, []int64{0})))
	default:
		l.fail(fmt.Errorf("lowering: tensor %s has unknown format %s", name, w.Format))
		return b.Placeholder(graph.Type{})
	}
	l.weights[name] = v
	return v
}

// param returns a small parameter (norm weight, conv kernel, A_log, dt_bias) in dtype dt.
func (l *lowering) param(name string, dt graph.DType) *graph.Value {
	return l.b.Cast(l.weight(name), dt)
}

// linear is x [..., in] times the weight [out, in] transposed: matmul(x, transpose(W)).
func (l *lowering) linear(x *graph.Value, name string) *graph.Value {
	w := l.weight(name)
	if w.Type.DType != l.opt.Compute {
		l.fail(fmt.Errorf("lowering: weight %s dequantizes to %s but the graph computes in %s", name, w.Type.DType, l.opt.Compute))
		return x
	}
	return l.b.Matmul(x, l.b.Transpose(w, 1, 0))
}

// rmsnorm is the zero-centred RMSNorm over the last axis: x/rms(x) * (1+w), with the statistics in
// NormDType and the result in x's dtype (docs/model-math.md#3-norms).
func (l *lowering) rmsnorm(x *graph.Value, name string) *graph.Value {
	if l.opt.AppleComposites {
		return l.appleRMSNorm(x, name)
	}
	b, nd := l.b, l.opt.NormDType
	xf := b.Cast(x, nd)
	last := int64(x.Type.Rank() - 1)
	n := l.normScale(xf, last, l.cfg.RMSNormEps, true) // overflow-safe in fp16 (norm_safe.go)
	w := b.Add(b.Scalar(nd, 1), l.param(name, nd))
	return b.Cast(b.Mul(n, w), x.Type.DType)
}

func (l *lowering) build() error {
	cfg, opt, b := l.cfg, l.opt, l.b
	f := b.F
	cd, dt := opt.Compute, opt.StateDType
	K := int64(cfg.ConvKernel)
	Lf, Ll := int64(cfg.NumLayersOf(hf.FullAttention)), int64(cfg.NumLayersOf(hf.LinearAttention))
	Hkv, D := int64(cfg.NumKVHeads), int64(cfg.HeadDim)
	convDim := int64(cfg.ConvDim())
	nv, dk, dv := int64(cfg.LinearNumValueHeads), int64(cfg.LinearKeyHeadDim), int64(cfg.LinearValueHeadDim)
	convT := graph.Tensor(cd, Ll, 1, convDim, K-1)
	recT := graph.Tensor(dt, Ll, 1, nv, dk, dv)

	l.q = 1
	if opt.Contract == graph.HostPrefill {
		l.q = opt.PrefillTokens
	}
	q := int64(l.q)

	st := &layerState{}
	switch opt.Contract {
	case graph.Pipelined:
		ids := f.AddArg(graph.InInputIDs, graph.Tensor(graph.SI32, 1, 1))
		pos := f.AddArg(graph.InPositionIDs, graph.Tensor(graph.SI32, 1, graph.Dyn))
		kh := f.AddState(graph.StateKey, graph.Tensor(cd, Lf, 1, Hkv, graph.Dyn, D))
		vh := f.AddState(graph.StateValue, graph.Tensor(cd, Lf, 1, Hkv, graph.Dyn, D))
		ch := f.AddState(graph.StateConv, convT)
		rh := f.AddState(graph.StateRec, recT)
		tok := b.Op(graph.OpCreateToken)
		st.kAll, tok = b.ReadState(kh, tok)
		st.vAll, tok = b.ReadState(vh, tok)
		st.conv, tok = b.ReadState(ch, tok)
		st.rec, tok = b.ReadState(rh, tok)
		// The KV write index comes from position_ids' SHAPE, never its values (docs/constraints.md, constraint 2).
		shape := b.Op(graph.OpGetShape, pos)
		st.seqU = b.Slice(shape, []int64{1}, []int64{2}) // ui32[1] = P
		l.pipelined(ids, st)
		logits := l.head(st.x)
		tok = b.WriteState(kh, st.kAll, tok)
		f.AddResult(graph.StateKey, tok)
		tok = b.WriteState(vh, st.vAll, tok)
		f.AddResult(graph.StateValue, tok)
		// One fused full-state write per fixed-shape state (fuse_states.go); the KV pair keeps its
		// per-layer shape-derived slice_updates.
		tok = b.WriteState(ch, graph.FuseLayerSlices(b, st.convCur, st.conv), tok)
		f.AddResult(graph.StateConv, tok)
		tok = b.WriteState(rh, graph.FuseLayerSlices(b, st.recCur, st.rec), tok)
		f.AddResult(graph.StateRec, tok)
		f.AddResult(graph.OutLogits, logits)
	case graph.HostDecode, graph.HostPrefill:
		ctx := int64(opt.Context)
		ids := f.AddArg(graph.InInputIDs, graph.Tensor(graph.SI32, 1, q))
		pos := f.AddArg(graph.InPositionIDs, graph.Tensor(graph.SI32, 1, q))
		mask := f.AddArg(graph.InCausalMask, graph.Tensor(cd, 1, 1, q, ctx+q))
		st.pastK = f.AddArg(graph.InPastK, graph.Tensor(cd, Lf, 1, Hkv, ctx, D))
		st.pastV = f.AddArg(graph.InPastV, graph.Tensor(cd, Lf, 1, Hkv, ctx, D))
		st.conv = f.AddArg(graph.InConvState, convT)
		st.rec = f.AddArg(graph.InRecState, recT)
		st.mask = mask
		l.hostCache(ids, pos, st)
		logits := l.head(l.lastRow(st.x))
		f.AddResult(graph.OutLogits, logits)
		if opt.GreedyHead {
			am := b.Op(graph.OpArgmax, logits, b.I32(2))    // ui32 [1,1,1]
			next := b.Cast(b.Reshape(am, 1, 1), graph.SI32) // si32 [1,1]
			f.AddResult(graph.OutNextToken, next)
		}
		f.AddResult(graph.OutKCur, b.Concat(0, st.kCur...))
		f.AddResult(graph.OutVCur, b.Concat(0, st.vCur...))
		f.AddResult(graph.OutConvCur, graph.FuseLayerSlices(b, st.convCur, st.conv))
		f.AddResult(graph.OutRecCur, graph.FuseLayerSlices(b, st.recCur, st.rec))
	}
	return l.err
}

// layerState carries what the layers read and update.
type layerState struct {
	x *graph.Value // residual stream [1, q, h]

	// pipelined: whole state tensors as read; the KV pair is updated in place with slice_update,
	// conv and rec are written whole from convCur/recCur
	kAll, vAll, conv, rec *graph.Value
	seqU                  *graph.Value // ui32[1]: P, the number of positions including this one

	// host cache
	pastK, pastV, mask *graph.Value
	kCur, vCur         []*graph.Value // per full layer [1,1,Hkv,q,D]
	convCur, recCur    []*graph.Value // per linear layer [1,1,...]: the new conv/rec slices (both contracts)
}

// embed gathers the token embeddings: ids si32 [1,q] -> [1,q,h] in compute dtype.
func (l *lowering) embed(ids *graph.Value) *graph.Value {
	b := l.b
	q := int64(l.q)
	table := l.weight("embed_tokens.weight")
	x := b.Op(graph.OpGatherND, table, b.Reshape(ids, 1, q, 1))
	return b.Cast(x, l.opt.Compute)
}

// head is the final norm and the output projection: x [1,1,h] -> logits [1,1,V].
func (l *lowering) head(x *graph.Value) *graph.Value {
	name := "lm_head.weight"
	if l.cfg.TieWordEmbeddings && !l.opt.UntieHead {
		name = "embed_tokens.weight"
	}
	return l.linear(l.rmsnorm(x, "norm.weight"), name)
}

// lastRow is x[:, q-1:q, :].
func (l *lowering) lastRow(x *graph.Value) *graph.Value {
	if l.q == 1 {
		return x
	}
	h := x.Type.Shape[2]
	return l.b.Slice(x, []int64{0, int64(l.q) - 1, 0}, []int64{1, int64(l.q), h})
}

// rotary computes the cos/sin tables [q, 1, r] for positions pos (f32 [q, 1]), in fp32 as
// transformers does, then casts them to the compute dtype.
func (l *lowering) rotary(pos *graph.Value) {
	b, cfg := l.b, l.cfg
	r := cfg.RotaryDim()
	half := r / 2
	inv := make([]float64, half)
	for j := range inv {
		// inv_freq_j = theta^(-2j/r), computed in fp32 like transformers' float tensor ops.
		inv[j] = float64(float32(1.0 / math.Pow(cfg.RopeTheta, float64(2*j)/float64(r))))
	}
	invC := b.Const(graph.DenseFloats(graph.F32, []int64{1, int64(half)}, inv))
	freqs := b.Mul(pos, invC)                     // [q, half]
	emb := b.Concat(1, freqs, freqs)              // [q, r]
	emb = b.Reshape(emb, int64(l.q), 1, int64(r)) // [q, 1, r]
	l.cos = b.Cast(b.Op(graph.OpCos, emb), l.opt.Compute)
	l.sin = b.Cast(b.Op(graph.OpSin, emb), l.opt.Compute)
}

// rope applies partial NeoX RoPE to x [q, heads, D] on the first r dims.
func (l *lowering) rope(x *graph.Value) *graph.Value {
	b := l.b
	q, H, D := x.Type.Shape[0], x.Type.Shape[1], x.Type.Shape[2]
	r := int64(l.cfg.RotaryDim())
	half := r / 2
	xr := b.Slice(x, []int64{0, 0, 0}, []int64{q, H, r})
	x1 := b.Slice(xr, []int64{0, 0, 0}, []int64{q, H, half})
	x2 := b.Slice(xr, []int64{0, 0, half}, []int64{q, H, r})
	neg := b.Mul(x2, b.Scalar(x.Type.DType, -1))
	rot := b.Concat(2, neg, x1)
	out := b.Add(b.Mul(xr, l.cos), b.Mul(rot, l.sin))
	if r == D {
		return out
	}
	return b.Concat(2, out, b.Slice(x, []int64{0, 0, r}, []int64{q, H, D}))
}

// pipelined builds the one-token body of the Pipelined contract.
func (l *lowering) pipelined(ids *graph.Value, st *layerState) {
	b := l.b
	// P-1, the position of this token, as si32[1] (for the KV write) and f32 [1,1] (for RoPE).
	seq := b.Cast(st.seqU, graph.SI32)
	posI := b.Sub(seq, b.I32s(1))
	l.rotary(b.Reshape(b.Cast(posI, graph.F32), 1, 1))
	st.x = l.embed(ids)
	fi, li := 0, 0
	for i, lt := range l.cfg.LayerTypes {
		if lt == hf.FullAttention {
			l.fullLayerPipelined(i, fi, st, posI, seq)
			fi++
		} else {
			l.linearLayerPipelined(i, li, st)
			li++
		}
		l.mlp(i, st)
	}
}

// hostCache builds the body of the host-cache contracts.
func (l *lowering) hostCache(ids, pos *graph.Value, st *layerState) {
	b := l.b
	q := int64(l.q)
	// RoPE positions come from position_ids' values: a static graph cannot carry them in a shape.
	// They feed only cos/sin, never a write index.
	l.rotary(b.Reshape(b.Cast(pos, graph.F32), q, 1))
	st.x = l.embed(ids)
	fi, li := 0, 0
	for i, lt := range l.cfg.LayerTypes {
		if lt == hf.FullAttention {
			l.fullLayerHost(i, fi, st)
			fi++
		} else {
			l.linearLayerHost(i, li, st)
			li++
		}
		l.mlp(i, st)
	}
}

func lname(i int, s string) string { return fmt.Sprintf("layers.%d.%s", i, s) }

func (l *lowering) mlp(i int, st *layerState) {
	b := l.b
	xn := l.rmsnorm(st.x, lname(i, "post_attention_layernorm.weight"))
	g := l.linear(xn, lname(i, "mlp.gate_proj.weight"))
	u := l.linear(xn, lname(i, "mlp.up_proj.weight"))
	st.x = b.Add(st.x, l.linear(b.Mul(b.Op(graph.OpSilu, g), u), lname(i, "mlp.down_proj.weight")))
}

// qkvAttention projects and normalises q, gate, k, v for a full-attention layer with q tokens:
// q, gate [q, H, D] (q rotated), k [q, Hkv, D] (rotated), v [q, Hkv, D].
func (l *lowering) qkvAttention(i int, xn *graph.Value) (qh, gate, k, v *graph.Value) {
	b, cfg := l.b, l.cfg
	q := int64(l.q)
	H, Hkv, D := int64(cfg.NumHeads), int64(cfg.NumKVHeads), int64(cfg.HeadDim)
	// q_proj rows interleave per head: [q_n (D rows), gate_n (D rows)] for n = 0..H-1.
	qg := b.Reshape(l.linear(xn, lname(i, "self_attn.q_proj.weight")), q, H, 2*D)
	qh = b.Slice(qg, []int64{0, 0, 0}, []int64{q, H, D})
	gate = b.Slice(qg, []int64{0, 0, D}, []int64{q, H, 2 * D})
	qh = l.rmsnorm(qh, lname(i, "self_attn.q_norm.weight"))
	k = b.Reshape(l.linear(xn, lname(i, "self_attn.k_proj.weight")), q, Hkv, D)
	k = l.rmsnorm(k, lname(i, "self_attn.k_norm.weight"))
	v = b.Reshape(l.linear(xn, lname(i, "self_attn.v_proj.weight")), q, Hkv, D)
	return l.rope(qh), gate, l.rope(k), v
}

// attend computes softmax(q kᵀ/√D + mask) v for q [q, H, D] against keys/values [Hkv, T, D],
// returning [1, q, H*D]. mask is nil or broadcastable to [Hkv, g, q, T].
func (l *lowering) attend(qh, keys, vals, mask *graph.Value) *graph.Value {
	b, cfg := l.b, l.cfg
	q := int64(l.q)
	H, Hkv, D := int64(cfg.NumHeads), int64(cfg.NumKVHeads), int64(cfg.HeadDim)
	g := H / Hkv
	cd := l.opt.Compute
	// [q, H, D] -> [H, q, D] -> [Hkv, g*q, D]: query head n uses KV head n / g (GQA).
	qt := b.Reshape(b.Transpose(qh, 1, 0, 2), Hkv, g*q, D)
	kt := b.Transpose(keys, 0, 2, 1) // [Hkv, D, T]
	s := b.Mul(b.Matmul(qt, kt), b.Scalar(cd, 1/math.Sqrt(float64(D))))
	T := keys.Type.Shape[1]
	if mask != nil {
		s = b.Add(b.Typed(graph.OpReshape, graph.Tensor(cd, Hkv, g, q, T), s, b.U32s(Hkv, g, q, T)), mask)
		s = b.Typed(graph.OpReshape, graph.Tensor(cd, Hkv, g*q, T), s, b.U32s(Hkv, g*q, T))
	}
	// Eager attention runs the softmax in fp32 and casts back.
	p := b.Cast(b.Op(graph.OpSoftmax, b.Cast(s, graph.F32), b.I32(2)), cd)
	o := b.Matmul(p, vals)                          // [Hkv, g*q, D]
	o = b.Transpose(b.Reshape(o, H, q, D), 1, 0, 2) // [q, H, D]
	return b.Reshape(o, 1, q, H*D)
}

// gatedOut applies the sigmoid output gate and o_proj: o [1,q,H*D], gate [q,H,D].
func (l *lowering) gatedOut(i int, o, gate *graph.Value) *graph.Value {
	b := l.b
	q := int64(l.q)
	hd := int64(l.cfg.NumHeads * l.cfg.HeadDim)
	o = b.Mul(o, b.Op(graph.OpSigmoid, b.Reshape(gate, 1, q, hd)))
	return l.linear(o, lname(i, "self_attn.o_proj.weight"))
}

func (l *lowering) fullLayerPipelined(i, fi int, st *layerState, posI, seq *graph.Value) {
	b, cfg := l.b, l.cfg
	Hkv, D := int64(cfg.NumKVHeads), int64(cfg.HeadDim)
	fl := int64(fi)
	xn := l.rmsnorm(st.x, lname(i, "input_layernorm.weight"))
	qh, gate, k, v := l.qkvAttention(i, xn)
	// Write this token's K/V at [fl, 0, 0, P-1, 0], an index derived from position_ids' shape.
	begin := b.Concat(0, b.I32s(fl, 0, 0), posI, b.I32s(0))
	end := b.Concat(0, b.I32s(fl+1, 1, Hkv), seq, b.I32s(D))
	ones := b.I32s(1, 1, 1, 1, 1)
	k5 := b.Reshape(b.Transpose(k, 1, 0, 2), 1, 1, Hkv, 1, D)
	v5 := b.Reshape(b.Transpose(v, 1, 0, 2), 1, 1, Hkv, 1, D)
	st.kAll = b.Op(graph.OpSliceUpdate, st.kAll, k5, begin, end, ones)
	st.vAll = b.Op(graph.OpSliceUpdate, st.vAll, v5, begin, end, ones)
	// Attend over positions [0, P) of this layer.
	rb := b.I32s(fl, 0, 0, 0, 0)
	re := b.Concat(0, b.I32s(fl+1, 1, Hkv), seq, b.I32s(D))
	kl := b.Typed(graph.OpSlice, graph.Tensor(l.opt.Compute, 1, 1, Hkv, graph.Dyn, D), st.kAll, rb, re, ones)
	vl := b.Typed(graph.OpSlice, graph.Tensor(l.opt.Compute, 1, 1, Hkv, graph.Dyn, D), st.vAll, rb, re, ones)
	kl = b.Op(graph.OpShrinkDims, kl, b.I32s(0, 1)) // [Hkv, P, D]
	vl = b.Op(graph.OpShrinkDims, vl, b.I32s(0, 1))
	o := l.attend(qh, kl, vl, nil)
	st.x = b.Add(st.x, l.gatedOut(i, o, gate))
}

func (l *lowering) fullLayerHost(i, fi int, st *layerState) {
	b, cfg := l.b, l.cfg
	q := int64(l.q)
	Hkv, D := int64(cfg.NumKVHeads), int64(cfg.HeadDim)
	ctx := int64(l.opt.Context)
	fl := int64(fi)
	xn := l.rmsnorm(st.x, lname(i, "input_layernorm.weight"))
	qh, gate, k, v := l.qkvAttention(i, xn)
	kc := b.Transpose(k, 1, 0, 2) // [Hkv, q, D]
	vc := b.Transpose(v, 1, 0, 2)
	st.kCur = append(st.kCur, b.Reshape(kc, 1, 1, Hkv, q, D))
	st.vCur = append(st.vCur, b.Reshape(vc, 1, 1, Hkv, q, D))
	pk := b.Reshape(b.Slice(st.pastK, []int64{fl, 0, 0, 0, 0}, []int64{fl + 1, 1, Hkv, ctx, D}), Hkv, ctx, D)
	pv := b.Reshape(b.Slice(st.pastV, []int64{fl, 0, 0, 0, 0}, []int64{fl + 1, 1, Hkv, ctx, D}), Hkv, ctx, D)
	keys := b.Concat(1, pk, kc) // [Hkv, ctx+q, D]: the host's past, then this block
	vals := b.Concat(1, pv, vc)
	o := l.attend(qh, keys, vals, st.mask)
	st.x = b.Add(st.x, l.gatedOut(i, o, gate))
}

// deltaInputs computes, for q tokens, the conv input qkv [convDim, q] and z [q, nv, dv],
// beta and the log-decay g (both [q, nv] in the state dtype).
func (l *lowering) deltaInputs(i int, xn *graph.Value) (qkv, z, beta, g *graph.Value) {
	b, cfg := l.b, l.cfg
	q := int64(l.q)
	nv, dv := int64(cfg.LinearNumValueHeads), int64(cfg.LinearValueHeadDim)
	dt := l.opt.StateDType
	qkv = l.linear(xn, lname(i, "linear_attn.in_proj_qkv.weight"))                   // [1,q,convDim]
	qkv = b.Transpose(b.Reshape(qkv, q, int64(cfg.ConvDim())), 1, 0)                 // [convDim, q]
	z = b.Reshape(l.linear(xn, lname(i, "linear_attn.in_proj_z.weight")), q, nv, dv) // [q,nv,dv]
	bb := b.Reshape(l.linear(xn, lname(i, "linear_attn.in_proj_b.weight")), q, nv)   // [q,nv]
	a := b.Reshape(l.linear(xn, lname(i, "linear_attn.in_proj_a.weight")), q, nv)
	beta = b.Cast(b.Op(graph.OpSigmoid, bb), dt)
	// g = -exp(A_log) * softplus(a + dt_bias), in fp32 as transformers computes it (also on the
	// ANE: the decay is a handful of scalars). softplus(x) = max(x,0) + log(1 + exp(-|x|)) is
	// exact algebra, overflow-free, and equals torch's threshold-20 branch to within rounding.
	af := b.Add(b.Cast(a, graph.F32), l.param(lname(i, "linear_attn.dt_bias"), graph.F32))
	negAbs := b.Mul(b.Op(graph.OpMax, af, b.Mul(af, b.Scalar(graph.F32, -1))), b.Scalar(graph.F32, -1))
	sp := b.Add(b.Op(graph.OpMax, af, b.Scalar(graph.F32, 0)), b.Op(graph.OpLog, b.Add(b.Scalar(graph.F32, 1), b.Op(graph.OpExp, negAbs))))
	decayRate := b.Mul(b.Op(graph.OpExp, l.param(lname(i, "linear_attn.A_log"), graph.F32)), b.Scalar(graph.F32, -1))
	g = b.Cast(b.Mul(sp, decayRate), dt) // [q, nv]
	return qkv, z, beta, g
}

// convolve runs the causal depthwise conv + SiLU over window [convDim, K-1+q]; output [convDim, q].
func (l *lowering) convolve(i int, window *graph.Value) *graph.Value {
	b := l.b
	K := int64(l.cfg.ConvKernel)
	C := int64(l.cfg.ConvDim())
	q := int64(l.q)
	w := b.Reshape(l.param(lname(i, "linear_attn.conv1d.weight"), l.opt.Compute), C, K) // tap K-1 = newest
	if q == 1 {
		return b.Op(graph.OpSilu, b.ReduceSum(b.Mul(window, w), 1))
	}
	var acc *graph.Value
	for k := int64(0); k < K; k++ {
		term := b.Mul(b.Slice(window, []int64{0, k}, []int64{C, k + q}), b.Slice(w, []int64{0, k}, []int64{C, k + 1}))
		if acc == nil {
			acc = term
		} else {
			acc = b.Add(acc, term)
		}
	}
	return b.Op(graph.OpSilu, acc)
}

// deltaStep is one explicit gated-delta step (no loop): for token t of the block, with state S
// [nv, dk, dv] in the state dtype, returns the new state and the output [nv, dv].
func (l *lowering) deltaStep(S, qt, kt, vt, betat, gt *graph.Value) (*graph.Value, *graph.Value) {
	b, cfg := l.b, l.cfg
	nv, dk, dv := int64(cfg.LinearNumValueHeads), int64(cfg.LinearKeyHeadDim), int64(cfg.LinearValueHeadDim)
	S = b.Mul(S, b.Reshape(b.Op(graph.OpExp, gt), nv, 1, 1))
	k3 := b.Reshape(kt, nv, dk, 1)
	m := b.ReduceSum(b.Mul(S, k3), 1)                                              // [nv,1,dv] = Sᵀk
	delta := b.Mul(b.Sub(b.Reshape(vt, nv, 1, dv), m), b.Reshape(betat, nv, 1, 1)) // β(v − Sᵀk)
	S = b.Add(S, b.Mul(k3, delta))                                                 // S + k δᵀ
	o := b.ReduceSum(b.Mul(S, b.Reshape(qt, nv, dk, 1)), 1)                        // Sᵀq
	return S, b.Reshape(o, nv, dv)
}

// deltaHeads splits the conv output [convDim, q] into per-token q̂, k̂ [q, nv, dk] (l2-normalised,
// q scaled by dk^-1/2, key heads repeated onto value heads) and v [q, nv, dv], in the state dtype.
func (l *lowering) deltaHeads(u *graph.Value) (qh, kh, vh *graph.Value) {
	b, cfg := l.b, l.cfg
	q := int64(l.q)
	nk, nv := int64(cfg.LinearNumKeyHeads), int64(cfg.LinearNumValueHeads)
	dk, dv := int64(cfg.LinearKeyHeadDim), int64(cfg.LinearValueHeadDim)
	kd := nk * dk
	dt := l.opt.StateDType
	ut := b.Cast(b.Transpose(u, 1, 0), dt) // [q, convDim]
	qh = b.Reshape(b.Slice(ut, []int64{0, 0}, []int64{q, kd}), q, nk, dk)
	kh = b.Reshape(b.Slice(ut, []int64{0, kd}, []int64{q, 2 * kd}), q, nk, dk)
	vh = b.Reshape(b.Slice(ut, []int64{0, 2 * kd}, []int64{q, 2*kd + nv*dv}), q, nv, dv)
	l2 := func(x *graph.Value) *graph.Value { return l.normScale(x, 2, 1e-6, false) }
	qh = b.Mul(l2(qh), b.Scalar(dt, 1/math.Sqrt(float64(dk))))
	kh = l2(kh)
	if r := nv / nk; r > 1 {
		// Value head j uses key head j / r (repeat_interleave): broadcast over a new axis.
		ones := b.Splat(dt, 1, nk, r, dk)
		qh = b.Reshape(b.Mul(b.Reshape(qh, q, nk, 1, dk), ones), q, nv, dk)
		kh = b.Reshape(b.Mul(b.Reshape(kh, q, nk, 1, dk), ones), q, nv, dk)
	}
	return qh, kh, vh
}

// deltaOutput applies the gated RMSNorm (per value head, norm in fp32 before the gate, weight
// as is) and out_proj: o [q, nv, dv] in the state dtype, z [q, nv, dv].
func (l *lowering) deltaOutput(i int, o, z *graph.Value) *graph.Value {
	b, cfg := l.b, l.cfg
	q := int64(l.q)
	cd := l.opt.Compute
	nd := l.opt.NormDType
	// transformers casts the recurrence output to the activation dtype before the norm.
	of := b.Cast(b.Cast(o, cd), nd)
	n := l.normScale(of, 2, cfg.RMSNormEps, true)
	n = b.Mul(b.Cast(n, cd), l.param(lname(i, "linear_attn.norm.weight"), cd))
	y := b.Cast(b.Mul(b.Cast(n, nd), b.Op(graph.OpSilu, b.Cast(z, nd))), cd)
	return l.linear(b.Reshape(y, 1, q, int64(cfg.ValueDim())), lname(i, "linear_attn.out_proj.weight"))
}

// deltaScan runs the q explicit steps from state S0 [nv,dk,dv]; returns the final state and the
// outputs [q, nv, dv].
func (l *lowering) deltaScan(S, qh, kh, vh, beta, g *graph.Value) (*graph.Value, *graph.Value) {
	b, cfg := l.b, l.cfg
	q := int64(l.q)
	nv, dk, dv := int64(cfg.LinearNumValueHeads), int64(cfg.LinearKeyHeadDim), int64(cfg.LinearValueHeadDim)
	row := func(x *graph.Value, t int64, inner ...int64) *graph.Value {
		begin := make([]int64, len(inner)+1)
		end := append([]int64{t + 1}, inner...)
		begin[0] = t
		return b.Reshape(b.Slice(x, begin, end), inner...)
	}
	var outs []*graph.Value
	for t := int64(0); t < q; t++ {
		var o *graph.Value
		S, o = l.deltaStep(S, row(qh, t, nv, dk), row(kh, t, nv, dk), row(vh, t, nv, dv), row(beta, t, nv), row(g, t, nv))
		outs = append(outs, b.Reshape(o, 1, nv, dv))
	}
	if len(outs) == 1 {
		return S, outs[0]
	}
	return S, b.Concat(0, outs...)
}

func (l *lowering) linearLayerPipelined(i, li int, st *layerState) {
	b, cfg := l.b, l.cfg
	C, K := int64(cfg.ConvDim()), int64(cfg.ConvKernel)
	nv, dk, dv := int64(cfg.LinearNumValueHeads), int64(cfg.LinearKeyHeadDim), int64(cfg.LinearValueHeadDim)
	ll := int64(li)
	xn := l.rmsnorm(st.x, lname(i, "input_layernorm.weight"))
	qkv, z, beta, g := l.deltaInputs(i, xn)
	cs := b.Reshape(b.Slice(st.conv, []int64{ll, 0, 0, 0}, []int64{ll + 1, 1, C, K - 1}), C, K-1)
	window := b.Concat(1, cs, qkv) // [C, K]: the state's K-1 columns, then this token
	u := l.convolve(i, window)
	// This layer's new conv and recurrence slices join the one fused write of each state.
	st.convCur = append(st.convCur, b.Reshape(b.Slice(window, []int64{0, 1}, []int64{C, K}), 1, 1, C, K-1))
	qh, kh, vh := l.deltaHeads(u)
	S := b.Reshape(b.Slice(st.rec, []int64{ll, 0, 0, 0, 0}, []int64{ll + 1, 1, nv, dk, dv}), nv, dk, dv)
	S, o := l.deltaScan(S, qh, kh, vh, beta, g)
	st.recCur = append(st.recCur, b.Reshape(S, 1, 1, nv, dk, dv))
	st.x = b.Add(st.x, l.deltaOutput(i, o, z))
}

func (l *lowering) linearLayerHost(i, li int, st *layerState) {
	b, cfg := l.b, l.cfg
	C, K := int64(cfg.ConvDim()), int64(cfg.ConvKernel)
	q := int64(l.q)
	nv, dk, dv := int64(cfg.LinearNumValueHeads), int64(cfg.LinearKeyHeadDim), int64(cfg.LinearValueHeadDim)
	ll := int64(li)
	xn := l.rmsnorm(st.x, lname(i, "input_layernorm.weight"))
	qkv, z, beta, g := l.deltaInputs(i, xn)
	cs := b.Reshape(b.Slice(st.conv, []int64{ll, 0, 0, 0}, []int64{ll + 1, 1, C, K - 1}), C, K-1)
	window := b.Concat(1, cs, qkv) // [C, K-1+q]
	u := l.convolve(i, window)
	st.convCur = append(st.convCur, b.Reshape(b.Slice(window, []int64{0, q}, []int64{C, q + K - 1}), 1, 1, C, K-1))
	qh, kh, vh := l.deltaHeads(u)
	S := b.Reshape(b.Slice(st.rec, []int64{ll, 0, 0, 0, 0}, []int64{ll + 1, 1, nv, dk, dv}), nv, dk, dv)
	S, o := l.deltaScan(S, qh, kh, vh, beta, g)
	st.recCur = append(st.recCur, b.Reshape(S, 1, 1, nv, dk, dv))
	st.x = b.Add(st.x, l.deltaOutput(i, o, z))
}
