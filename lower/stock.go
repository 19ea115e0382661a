package lower

import (
	"math"

	"qconv/graph"
	"qconv/hf"
	"qconv/internal/exitcode"
)

// The Stock contract: Apple's own Qwen3.5 export (docs/apple-qwen35-contract.md). One module
// holds the composite gated-delta graph and two entrypoints with the same inputs and states:
//
//	@main    (input_ids si32 [1,q], position_ids si32 [1,P]; q and P dynamic, P = tokens so far
//	          including these q) -> logits f16 [1,q,V]
//	@prefill (the same) -> nothing but the state tokens
//
// States, each sized by the layers of its own type: keyCache/valueCache [Lf,1,Hkv,S,D] (S dynamic),
// convStates [Ll,1,K,convDim] (channels-last, the last K tokens of the conv input),
// recurrentStates [Ll,1,nv,dk,dv]. The fixed-shape states are written once per call with the
// concatenation of every layer's new row (docs/constraints.md, constraint 10); the growing KV pair takes one
// slice_update per layer at the rows [P-q, P), an index derived from the inputs' shapes
// (constraint 2). The recurrence is a coreai.invoke of the gated_delta_update composite.

// GatedDeltaFunc is the private graph declaring the composite.
const GatedDeltaFunc = "gated_delta_update_0"

// stockMask is the additive causal mask value (f32; exp underflows to exactly 0).
const stockMask = -1e9

// memoWeights hands out each tensor once, so the two entrypoints share its resources.
type memoWeights struct {
	src WeightSource
	got map[string]*graph.Weight
}

func (m *memoWeights) Weight(spec hf.TensorSpec) (*graph.Weight, error) {
	if w, ok := m.got[spec.Name]; ok {
		return w, nil
	}
	w, err := m.src.Weight(spec)
	if err == nil {
		m.got[spec.Name] = w
	}
	return w, err
}

func lowerStock(cfg *hf.Config, opt Options) (*graph.Module, error) {
	Lf, Ll := cfg.NumLayersOf(hf.FullAttention), cfg.NumLayersOf(hf.LinearAttention)
	if Lf == 0 || Ll == 0 {
		return nil, exitcode.Badf("config.json: layer_types has %d full_attention and %d linear_attention layers; the stock contract's four states need both", Lf, Ll)
	}
	m := &graph.Module{}
	opt.Weights = &memoWeights{src: opt.Weights, got: map[string]*graph.Weight{}}
	specs := map[string]hf.TensorSpec{}
	for _, s := range cfg.ExpectedTensors() {
		specs[s.Name] = s
	}
	for _, s := range cfg.FusedTensors() { // Apple's fused projections (hf/fused.go)
		specs[s.Name] = s
	}
	if _, ok := specs["lm_head.weight"]; !ok {
		specs["lm_head.weight"] = hf.TensorSpec{Name: "lm_head.weight", Shape: []int{cfg.VocabSize, cfg.HiddenSize}, Kind: hf.KindHead, Layer: -1}
	}
	newLowering := func(f *graph.Func) *lowering {
		return &lowering{cfg: cfg, opt: opt, b: graph.NewBuilder(m, f), m: m, weights: map[string]*graph.Value{}, specs: specs, q: -1}
	}
	gdu := graph.NewFunc(GatedDeltaFunc)
	gdu.Private, gdu.NoInline, gdu.Composite = true, true, graph.GatedDeltaDecl
	m.Funcs = append(m.Funcs, gdu)
	gl := newLowering(gdu)
	stockGatedDeltaBody(gl)
	if gl.err != nil || gl.b.Err() != nil {
		return nil, firstErr(gl.err, gl.b.Err())
	}
	for _, fn := range []struct {
		name string
		head bool
	}{{graph.FuncMain, true}, {graph.FuncPrefill, false}} {
		f := graph.NewFunc(fn.name)
		m.Funcs = append(m.Funcs, f)
		l := newLowering(f)
		sl := &stockLowering{lowering: l}
		sl.build(fn.head)
		if err := firstErr(l.err, l.b.Err()); err != nil {
			return nil, err
		}
		if !fn.head || opt.AppleComposites { // Apple's forms leave the plain-op mask unused
			pruneDead(f)
		}
	}
	return m, nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// stockGatedDeltaBody builds the composite's reference body: the declared op (l2-normalised q and
// k, q scaled by dk^-1/2, then state = state·exp(g) + k⊗β(v − stateᵀk), output stateᵀq) for ONE
// token. It is exact at query length 1 only. qconv's interpreter runs this body for one-token
// calls and the declared op for longer ones, as a runtime that recognises the composite does
// (graph/interp/interp_composite.go). The operands and results are in the state dtype; the
// arithmetic runs in graph.RecurrenceMathDType of it (fp32 for a bf16 state: the declaration
// casts in, updates in fp32 and casts out).
func stockGatedDeltaBody(l *lowering) {
	b, cfg := l.b, l.cfg
	f := b.F
	sd := l.opt.StateDType
	md := graph.RecurrenceMathDType(sd)
	nv, dk, dv := int64(cfg.LinearNumValueHeads), int64(cfg.LinearKeyHeadDim), int64(cfg.LinearValueHeadDim)
	q := f.AddArg("query", graph.Tensor(sd, 1, nv, graph.Dyn, dk))
	k := f.AddArg("key", graph.Tensor(sd, 1, nv, graph.Dyn, dk))
	v := f.AddArg("value", graph.Tensor(sd, 1, nv, graph.Dyn, dv))
	g := f.AddArg("g", graph.Tensor(sd, 1, nv, graph.Dyn))
	beta := f.AddArg("beta", graph.Tensor(sd, 1, nv, graph.Dyn))
	s0 := f.AddArg("initial_state", graph.Tensor(sd, 1, nv, dk, dv))
	in := func(x *graph.Value, dims ...int64) *graph.Value { return b.Cast(b.Reshape(x, dims...), md) }
	l2 := func(x *graph.Value) *graph.Value {
		ss := b.ReduceSum(b.Mul(x, x), 1)
		return b.Mul(x, b.Op(graph.OpRsqrt, b.Add(ss, b.Scalar(md, 1e-6))))
	}
	qt := b.Mul(l2(in(q, nv, dk)), b.Scalar(md, 1/math.Sqrt(float64(dk))))
	kt := l2(in(k, nv, dk))
	S, o := l.deltaStep(in(s0, nv, dk, dv), qt, kt, in(v, nv, dv), in(beta, nv), in(g, nv))
	f.AddResult("output_0", b.Typed(graph.OpReshape, graph.Tensor(sd, 1, graph.Dyn, nv, dv), b.Cast(o, sd), b.U32s(1, 1, nv, dv)))
	f.AddResult("output_1", b.Reshape(b.Cast(S, sd), 1, nv, dk, dv))
}

// stockLowering builds one entrypoint with a dynamic query length q.
type stockLowering struct {
	*lowering
	qU         *graph.Value // ui32[1]: q
	qS, pS     *graph.Value // si32[1]: q and P
	offS       *graph.Value // si32[1]: P - q, the first new position
	posF       *graph.Value // f32 [q,1]: the positions of the new tokens
	mask       *graph.Value // f32 [q,P]: 0 where key j is visible to query i, stockMask elsewhere
	kAll, vAll *graph.Value
	conv, rec  *graph.Value
	convNew    []*graph.Value // per linear layer [1,1,K,C]
	recNew     []*graph.Value // per linear layer [1,1,nv,dk,dv]
	x          *graph.Value
}

// rs reshapes x to dims, where one Dyn stands for q.
func (l *stockLowering) rs(x *graph.Value, dims ...int64) *graph.Value {
	b := l.b
	var parts []*graph.Value
	var run []int64
	for _, d := range dims {
		if d == graph.Dyn {
			if len(run) > 0 {
				parts = append(parts, b.U32s(run...))
				run = nil
			}
			parts = append(parts, l.qU)
			continue
		}
		run = append(run, d)
	}
	if len(run) > 0 {
		parts = append(parts, b.U32s(run...))
	}
	shape := parts[0]
	if len(parts) > 1 {
		shape = b.Concat(0, parts...)
	}
	return b.Typed(graph.OpReshape, graph.Tensor(x.Type.DType, dims...), x, shape)
}

func (l *stockLowering) build(head bool) {
	b, cfg, opt := l.b, l.cfg, l.opt
	f := b.F
	cd, sd := opt.Compute, opt.StateDType
	K, C := int64(cfg.ConvKernel), int64(cfg.ConvDim())
	Lf, Ll := int64(cfg.NumLayersOf(hf.FullAttention)), int64(cfg.NumLayersOf(hf.LinearAttention))
	Hkv, D := int64(cfg.NumKVHeads), int64(cfg.HeadDim)
	nv, dk, dv := int64(cfg.LinearNumValueHeads), int64(cfg.LinearKeyHeadDim), int64(cfg.LinearValueHeadDim)

	ids := f.AddArg(graph.InInputIDs, graph.Tensor(graph.SI32, 1, graph.Dyn))
	pos := f.AddArg(graph.InPositionIDs, graph.Tensor(graph.SI32, 1, graph.Dyn))
	kh := f.AddState(graph.StateKey, graph.Tensor(cd, Lf, 1, Hkv, graph.Dyn, D))
	vh := f.AddState(graph.StateValue, graph.Tensor(cd, Lf, 1, Hkv, graph.Dyn, D))
	ch := f.AddState(graph.StateConvStates, graph.Tensor(cd, Ll, 1, K, C))
	rh := f.AddState(graph.StateRecurrentStates, graph.Tensor(sd, Ll, 1, nv, dk, dv))
	tok := b.Op(graph.OpCreateToken)
	l.kAll, tok = b.ReadState(kh, tok)
	l.vAll, tok = b.ReadState(vh, tok)
	l.conv, tok = b.ReadState(ch, tok)
	l.rec, tok = b.ReadState(rh, tok)

	// q and P from the inputs' shapes (write indices never come from values: docs/constraints.md, constraint 2).
	l.qU = b.Slice(b.Op(graph.OpGetShape, ids), []int64{1}, []int64{2})
	l.qS = b.Cast(l.qU, graph.SI32)
	l.pS = b.Cast(b.Slice(b.Op(graph.OpGetShape, pos), []int64{1}, []int64{2}), graph.SI32)
	l.offS = b.Sub(l.pS, l.qS)

	// RoPE positions and the causal mask come from position_ids' values, as Apple's graph reads
	// them (position_ids.narrow(-1, P-q, q)); they never index a write.
	newPos := b.Typed(graph.OpSlice, graph.Tensor(graph.SI32, 1, graph.Dyn), pos, b.Concat(0, b.I32s(0), l.offS), b.Concat(0, b.I32s(1), l.pS), b.I32s(1, 1))
	l.posF = b.Transpose(b.Cast(newPos, graph.F32), 1, 0) // [q,1]
	l.rotary()
	diff := b.Sub(b.Cast(pos, graph.F32), l.posF) // [q,P]: key position minus query position
	visible := b.Op(graph.OpMax, b.Sub(b.Scalar(graph.F32, 1), b.Op(graph.OpMax, diff, b.Scalar(graph.F32, 0))), b.Scalar(graph.F32, 0))
	l.mask = b.Mul(b.Sub(visible, b.Scalar(graph.F32, 1)), b.Scalar(graph.F32, -stockMask))

	table := l.weight("embed_tokens.weight")
	l.x = b.Cast(b.Op(graph.OpGatherND, table, b.Op(graph.OpExpandDims, ids, b.I32s(2))), cd) // [1,q,h]
	fi, li := 0, 0
	for i, lt := range cfg.LayerTypes {
		if lt == hf.FullAttention {
			l.fullLayer(i, fi)
			fi++
		} else {
			l.linearLayer(i, li)
			li++
		}
		st := &layerState{x: l.x}
		l.mlp(i, st)
		l.x = st.x
	}
	var logits *graph.Value
	if head {
		// In the compute dtype: f16 on device, as Apple's logits are; f32 in the validation form.
		// A bf16 graph casts them to fp16 at the end, as Apple's cast_logits_bfloat16_to_float16.
		logits = l.head(l.x)
		if cd == graph.BF16 {
			logits = b.Cast(logits, graph.F16)
		}
	}
	// One write per state per call: the fixed-shape states get every layer's new row at once.
	tok = b.WriteState(kh, l.kAll, tok)
	f.AddResult(graph.StateKey, tok)
	tok = b.WriteState(vh, l.vAll, tok)
	f.AddResult(graph.StateValue, tok)
	tok = b.WriteState(ch, b.Concat(0, l.convNew...), tok)
	f.AddResult(graph.StateConvStates, tok)
	tok = b.WriteState(rh, b.Concat(0, l.recNew...), tok)
	f.AddResult(graph.StateRecurrentStates, tok)
	if head {
		f.AddResult(graph.OutLogits, logits)
	}
}

// rotary sets the cos/sin tables [q,1,r] for the new positions.
func (l *stockLowering) rotary() {
	b, cfg := l.b, l.cfg
	r := cfg.RotaryDim()
	half := r / 2
	inv := make([]float64, half)
	for j := range inv {
		inv[j] = float64(float32(1.0 / math.Pow(cfg.RopeTheta, float64(2*j)/float64(r))))
	}
	freqs := b.Mul(l.posF, b.Const(graph.DenseFloats(graph.F32, []int64{1, int64(half)}, inv))) // [q,half]
	emb := b.Op(graph.OpExpandDims, b.Concat(1, freqs, freqs), b.I32s(1))                       // [q,1,r]
	l.cos = b.Cast(b.Op(graph.OpCos, emb), l.opt.Compute)
	l.sin = b.Cast(b.Op(graph.OpSin, emb), l.opt.Compute)
}

// rope applies partial NeoX RoPE to x [q,H,D] on the first r dims.
func (l *stockLowering) rope(x *graph.Value) *graph.Value {
	b := l.b
	H, D := x.Type.Shape[1], x.Type.Shape[2]
	r := int64(l.cfg.RotaryDim())
	half := r / 2
	xr := b.Slice(x, []int64{0, 0, 0}, []int64{graph.SliceEnd, H, r})
	x1 := b.Slice(xr, []int64{0, 0, 0}, []int64{graph.SliceEnd, H, half})
	x2 := b.Slice(xr, []int64{0, 0, half}, []int64{graph.SliceEnd, H, r})
	rot := b.Concat(2, b.Mul(x2, b.Scalar(x.Type.DType, -1)), x1)
	out := b.Add(b.Mul(xr, l.cos), b.Mul(rot, l.sin))
	if r == D {
		return out
	}
	return b.Concat(2, out, b.Slice(x, []int64{0, 0, r}, []int64{graph.SliceEnd, H, D}))
}

func (l *stockLowering) fullLayer(i, fi int) {
	b, cfg := l.b, l.cfg
	cd := l.opt.Compute
	H, Hkv, D := int64(cfg.NumHeads), int64(cfg.NumKVHeads), int64(cfg.HeadDim)
	g := H / Hkv
	fl := int64(fi)
	xn := l.rmsnorm(l.x, lname(i, "input_layernorm.weight"))
	// One int8 matmul by Apple's fused qkv_gate_proj, then its row blocks query | key | value | gate.
	parts := l.fused(xn, i, hf.FusedQKVGate)
	qh := l.rope(l.rmsnorm(l.rs(parts[0], graph.Dyn, H, D), lname(i, "self_attn.q_norm.weight")))
	gate := parts[3]
	k := l.rope(l.rmsnorm(l.rs(parts[1], graph.Dyn, Hkv, D), lname(i, "self_attn.k_norm.weight")))
	v := l.rs(parts[2], graph.Dyn, Hkv, D)

	// Write the q new rows at [fl, 0, 0, P-q, 0] .. [fl+1, 1, Hkv, P, D].
	ones := b.I32s(1, 1, 1, 1, 1)
	begin := b.Concat(0, b.I32s(fl, 0, 0), l.offS, b.I32s(0))
	end := b.Concat(0, b.I32s(fl+1, 1, Hkv), l.pS, b.I32s(D))
	k5 := b.Op(graph.OpExpandDims, b.Transpose(k, 1, 0, 2), b.I32s(0, 1)) // [1,1,Hkv,q,D]
	v5 := b.Op(graph.OpExpandDims, b.Transpose(v, 1, 0, 2), b.I32s(0, 1))
	l.kAll = b.Op(graph.OpSliceUpdate, l.kAll, k5, begin, end, ones)
	l.vAll = b.Op(graph.OpSliceUpdate, l.vAll, v5, begin, end, ones)
	rb := b.I32s(fl, 0, 0, 0, 0)
	kl := b.Typed(graph.OpSlice, graph.Tensor(cd, 1, 1, Hkv, graph.Dyn, D), l.kAll, rb, end, ones)
	vl := b.Typed(graph.OpSlice, graph.Tensor(cd, 1, 1, Hkv, graph.Dyn, D), l.vAll, rb, end, ones)
	var o *graph.Value
	if l.opt.AppleComposites {
		o = l.appleSDPA(qh, kl, vl) // [H,q,D] (stock_apple.go)
	} else {
		kt := b.Op(graph.OpExpandDims, b.Transpose(b.Op(graph.OpShrinkDims, kl, b.I32s(0, 1)), 0, 2, 1), b.I32s(1)) // [Hkv,1,D,P]
		vt := b.Op(graph.OpExpandDims, b.Op(graph.OpShrinkDims, vl, b.I32s(0, 1)), b.I32s(1))                       // [Hkv,1,P,D]

		// Query head n uses KV head n / g: [q,H,D] -> [H,q,D] -> [Hkv,g,q,D].
		q4 := b.Typed(graph.OpReshape, graph.Tensor(cd, Hkv, g, graph.Dyn, D), b.Transpose(qh, 1, 0, 2), b.Concat(0, b.U32s(Hkv, g), l.qU, b.U32s(D)))
		s := b.Mul(b.Matmul(q4, kt), b.Scalar(cd, 1/math.Sqrt(float64(D)))) // [Hkv,g,q,P]
		p := b.Cast(b.Op(graph.OpSoftmax, b.Add(b.Cast(s, graph.F32), l.mask), b.I32(3)), cd)
		o = b.Matmul(p, vt) // [Hkv,g,q,D]
		o = b.Typed(graph.OpReshape, graph.Tensor(cd, H, graph.Dyn, D), o, b.Concat(0, b.U32s(H), l.qU, b.U32s(D)))
	}
	o = l.rs(b.Transpose(o, 1, 0, 2), 1, graph.Dyn, H*D)
	o = b.Mul(o, b.Op(graph.OpSigmoid, gate))
	l.x = b.Add(l.x, l.linear(o, lname(i, "self_attn.o_proj.weight")))
}

func (l *stockLowering) linearLayer(i, li int) {
	b, cfg := l.b, l.cfg
	cd, sd := l.opt.Compute, l.opt.StateDType
	K, C := int64(cfg.ConvKernel), int64(cfg.ConvDim())
	nk, nv := int64(cfg.LinearNumKeyHeads), int64(cfg.LinearNumValueHeads)
	dk, dv := int64(cfg.LinearKeyHeadDim), int64(cfg.LinearValueHeadDim)
	kd := nk * dk
	ll := int64(li)
	xn := l.rmsnorm(l.x, lname(i, "input_layernorm.weight"))
	shrink := func(x *graph.Value) *graph.Value { return b.Op(graph.OpShrinkDims, x, b.I32s(0)) }
	// One int8 matmul by Apple's fused in_proj_all, then its row blocks qkv | z | b | a.
	parts := l.fused(xn, i, hf.FusedInProj)
	qkv := shrink(parts[0])                     // [q,C]
	z := l.rs(parts[1], graph.Dyn, nv, dv)      // [q,nv,dv]
	bb, a := shrink(parts[2]), shrink(parts[3]) // [q,nv]
	beta := b.Cast(b.Op(graph.OpSigmoid, bb), sd)
	af := b.Add(b.Cast(a, graph.F32), l.param(lname(i, "linear_attn.dt_bias"), graph.F32))
	negAbs := b.Mul(b.Op(graph.OpMax, af, b.Mul(af, b.Scalar(graph.F32, -1))), b.Scalar(graph.F32, -1))
	sp := b.Add(b.Op(graph.OpMax, af, b.Scalar(graph.F32, 0)), b.Op(graph.OpLog, b.Add(b.Scalar(graph.F32, 1), b.Op(graph.OpExp, negAbs))))
	g := b.Cast(b.Mul(sp, b.Mul(b.Op(graph.OpExp, l.param(lname(i, "linear_attn.A_log"), graph.F32)), b.Scalar(graph.F32, -1))), sd) // [q,nv]

	// Channels-last conv: the state's rows 1..K-1 are the history, then the q new rows.
	hist := b.Reshape(b.Slice(l.conv, []int64{ll, 0, 1, 0}, []int64{ll + 1, 1, K, C}), K-1, C)
	window := b.Concat(0, hist, qkv) // [K-1+q, C]
	last := b.Sub(l.qS, b.I32s(1))
	newRow := b.Typed(graph.OpSlice, graph.Tensor(cd, K, C), window, b.Concat(0, last, b.I32s(0)), b.Concat(0, b.Add(last, b.I32s(K)), b.I32s(C)), b.I32s(1, 1))
	l.convNew = append(l.convNew, b.Op(graph.OpExpandDims, newRow, b.I32s(0, 1)))
	w := b.Transpose(b.Reshape(l.param(lname(i, "linear_attn.conv1d.weight"), cd), C, K), 1, 0) // [K,C], row K-1 = newest
	var acc *graph.Value
	for tap := int64(0); tap < K; tap++ {
		rows := b.Typed(graph.OpSlice, graph.Tensor(cd, graph.Dyn, C), window, b.I32s(tap, 0), b.Concat(0, b.Add(l.qS, b.I32s(tap)), b.I32s(C)), b.I32s(1, 1))
		term := b.Mul(rows, b.Slice(w, []int64{tap, 0}, []int64{tap + 1, C}))
		if acc == nil {
			acc = term
		} else {
			acc = b.Add(acc, term)
		}
	}
	u := b.Cast(b.Op(graph.OpSilu, acc), sd) // [q,C]

	qh := l.rs(b.Slice(u, []int64{0, 0}, []int64{graph.SliceEnd, kd}), graph.Dyn, nk, dk)
	kh := l.rs(b.Slice(u, []int64{0, kd}, []int64{graph.SliceEnd, 2 * kd}), graph.Dyn, nk, dk)
	vh := l.rs(b.Slice(u, []int64{0, 2 * kd}, []int64{graph.SliceEnd, 2*kd + nv*dv}), graph.Dyn, nv, dv)
	if r := nv / nk; r > 1 {
		// Value head j uses key head j / r (repeat_interleave).
		ones := b.Splat(sd, 1, nk, r, dk)
		qh = l.rs(b.Mul(b.Op(graph.OpExpandDims, qh, b.I32s(2)), ones), graph.Dyn, nv, dk)
		kh = l.rs(b.Mul(b.Op(graph.OpExpandDims, kh, b.I32s(2)), ones), graph.Dyn, nv, dk)
	}
	heads := func(x *graph.Value) *graph.Value { return b.Op(graph.OpExpandDims, b.Transpose(x, 1, 0, 2), b.I32s(0)) } // [1,nv,q,d]
	steps := func(x *graph.Value) *graph.Value { return b.Op(graph.OpExpandDims, b.Transpose(x, 1, 0), b.I32s(0)) }    // [1,nv,q]
	s0 := b.Reshape(b.Slice(l.rec, []int64{ll, 0, 0, 0, 0}, []int64{ll + 1, 1, nv, dk, dv}), 1, nv, dk, dv)
	outs := b.OpN(graph.OpInvoke, map[string]graph.Attr{"callee": graph.SymbolRefAttr{Name: GatedDeltaFunc}}, heads(qh), heads(kh), heads(vh), steps(g), steps(beta), s0)
	l.recNew = append(l.recNew, b.Op(graph.OpExpandDims, outs[1], b.I32s(0)))
	o := b.Op(graph.OpShrinkDims, outs[0], b.I32s(0)) // [q,nv,dv]

	// Gated RMSNorm per value head (statistics in NormDType), then out_proj.
	nd := l.opt.NormDType
	of := b.Cast(b.Cast(o, cd), nd)
	ms := b.ReduceMean(b.Mul(of, of), 2)
	n := b.Mul(of, b.Op(graph.OpRsqrt, b.Add(ms, b.Scalar(nd, cfg.RMSNormEps))))
	n = b.Mul(b.Cast(n, cd), l.param(lname(i, "linear_attn.norm.weight"), cd))
	y := b.Cast(b.Mul(b.Cast(n, nd), b.Op(graph.OpSilu, b.Cast(z, nd))), cd)
	l.x = b.Add(l.x, l.linear(l.rs(y, 1, graph.Dyn, nv*dv), lname(i, "linear_attn.out_proj.weight")))
}

// fused multiplies x [1,q,h] by layer i's fused projection role (hf/fused.go) and returns its row
// blocks in order, each [1,q,rows].
func (l *stockLowering) fused(x *graph.Value, i int, role string) []*graph.Value {
	y := l.linear(x, lname(i, role))
	var out []*graph.Value
	for _, p := range l.cfg.FusedParts(role) {
		out = append(out, l.b.Slice(y, []int64{0, 0, int64(p.Offset)}, []int64{1, graph.SliceEnd, int64(p.Offset + p.Rows)}))
	}
	return out
}

// pruneDead removes the ops no result depends on (the prefill entrypoint's head and its last
// layer's tail, as Apple's trim of the LM head does).
func pruneDead(f *graph.Func) {
	live := map[*graph.Value]bool{}
	for _, r := range f.Results {
		live[r.Value] = true
	}
	keep := make([]bool, len(f.Body))
	for i := len(f.Body) - 1; i >= 0; i-- {
		op := f.Body[i]
		for _, r := range op.Results {
			if live[r] {
				keep[i] = true
				break
			}
		}
		if keep[i] {
			for _, v := range op.Operands {
				live[v] = true
			}
		}
	}
	body := f.Body[:0]
	for i, op := range f.Body {
		if keep[i] {
			body = append(body, op)
		}
	}
	f.Body = body
	f.Renumber()
}
