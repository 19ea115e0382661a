package lower

import (
	"fmt"
	"math"

	"qconv/graph"
)

// Apple's op forms for the stock contract (Options.AppleComposites): the RMSNorms as invokes of
// the rms_norm composite (scale = 1 + w, as Apple's RMSNormPlusOne passes it) and attention as an
// invoke of the causal scaled_dot_product_attention composite, each a private noinline graph with
// Apple's declaration (graph/composite_apple.go). qconv's macos-stock target does not emit them
// (docs/verify-foreign.md: the gate would check the declared op, not the kernel a runtime runs
// instead, and an fp16 rms_norm kernel is exposed to constraint 12 of docs/constraints.md); they
// exist so that tests can build a bundle in the form Apple's exporter writes and gate it with
// `qconv verify`.

// compositeFunc returns the name of the module's composite graph with declaration decl and
// argument types args, building it with body (placed before the entrypoints) when absent.
func (l *lowering) compositeFunc(prefix, decl string, args []graph.Type, names []string, outName string, body func(b *graph.Builder, in []*graph.Value) *graph.Value) string {
	n := 0
	for _, f := range l.m.Funcs {
		if f.Composite != decl || len(f.Args) != len(args) {
			if f.Composite == decl {
				n++
			}
			continue
		}
		same := true
		for i, a := range f.Args {
			same = same && a.Value.Type.Equal(args[i])
		}
		if same {
			return f.Name
		}
		n++
	}
	f := graph.NewFunc(fmt.Sprintf("%s_%d", prefix, n))
	f.Private, f.NoInline, f.Composite = true, true, decl
	b := graph.NewBuilder(l.m, f)
	var in []*graph.Value
	for i, t := range args {
		in = append(in, f.AddArg(names[i], t))
	}
	f.AddResult(outName, body(b, in))
	if err := b.Err(); err != nil {
		l.fail(fmt.Errorf("lowering: composite @%s: %w", f.Name, err))
	}
	l.m.Funcs = append([]*graph.Func{f}, l.m.Funcs...)
	return f.Name
}

// appleRMSNorm is rmsnorm as an invoke of the rms_norm composite: x · rsqrt(mean(x²) + eps) · (1+w),
// in x's dtype.
func (l *lowering) appleRMSNorm(x *graph.Value, name string) *graph.Value {
	b := l.b
	dt := x.Type.DType
	scale := b.Add(b.Scalar(dt, 1), l.param(name, dt))
	eps := l.cfg.RMSNormEps
	fn := l.compositeFunc("rms_norm", graph.RMSNormDecl(eps), []graph.Type{x.Type, scale.Type}, []string{"input", "scale"}, "output",
		func(cb *graph.Builder, in []*graph.Value) *graph.Value {
			last := int64(in[0].Type.Rank() - 1)
			ms := cb.ReduceMean(cb.Mul(in[0], in[0]), last)
			return cb.Mul(cb.Mul(in[0], cb.Op(graph.OpRsqrt, cb.Add(ms, cb.Scalar(dt, float64(float32(eps)))))), in[1])
		})
	return b.OpN(graph.OpInvoke, map[string]graph.Attr{"callee": graph.SymbolRefAttr{Name: fn}}, x, scale)[0]
}

// appleSDPA is attention as an invoke of the causal scaled_dot_product_attention composite:
// q [q,H,D], the layer's populated cache rows kl, vl [1,1,Hkv,P,D] -> [H,q,D].
func (l *stockLowering) appleSDPA(qh, kl, vl *graph.Value) *graph.Value {
	b, cfg := l.b, l.cfg
	cd := l.opt.Compute
	H, Hkv, D := int64(cfg.NumHeads), int64(cfg.NumKVHeads), int64(cfg.HeadDim)
	q4 := b.Op(graph.OpExpandDims, b.Transpose(qh, 1, 0, 2), b.I32s(0)) // [1,H,q,D]
	k4 := b.Op(graph.OpShrinkDims, kl, b.I32s(0))                       // [1,Hkv,P,D]
	v4 := b.Op(graph.OpShrinkDims, vl, b.I32s(0))
	ctx := int64(max(cfg.MaxPositionEmbeddings, 1))
	fn := l.compositeFunc("sdpa", graph.SDPADecl(true, 0), []graph.Type{q4.Type, k4.Type, v4.Type}, []string{"query", "key", "value"}, "output",
		func(cb *graph.Builder, in []*graph.Value) *graph.Value {
			return sdpaBody(cb, in[0], in[1], in[2], H, Hkv, D, ctx, cd)
		})
	o := b.OpN(graph.OpInvoke, map[string]graph.Attr{"callee": graph.SymbolRefAttr{Name: fn}}, q4, k4, v4)[0]
	return b.Typed(graph.OpReshape, graph.Tensor(cd, H, graph.Dyn, D), o, b.Concat(0, b.U32s(H), l.qU, b.U32s(D)))
}

// sdpaBody is the composite's decomposition: the lower-right causal mask from the shapes (query i
// of Tq sees key j of Tk when j ≤ i + Tk - Tq; positions from a [ctx] index table), scores in the
// compute dtype, an fp32 softmax, query head n reading kv head n / (H/Hkv).
func sdpaBody(b *graph.Builder, q, k, v *graph.Value, H, Hkv, D, ctx int64, cd graph.DType) *graph.Value {
	g := H / Hkv
	tq := b.Slice(b.Op(graph.OpGetShape, q), []int64{2}, []int64{3}) // ui32[1]
	tk := b.Slice(b.Op(graph.OpGetShape, k), []int64{2}, []int64{3})
	tqS, tkS := b.Cast(tq, graph.SI32), b.Cast(tk, graph.SI32)
	idx := make([]float64, ctx)
	for i := range idx {
		idx[i] = float64(i)
	}
	table := b.Const(graph.DenseFloats(graph.F32, []int64{ctx}, idx))
	kpos := b.Typed(graph.OpSlice, graph.Tensor(graph.F32, graph.Dyn), table, b.I32s(0), tkS, b.I32s(1))
	qpos := b.Typed(graph.OpSlice, graph.Tensor(graph.F32, graph.Dyn), table, b.Sub(tkS, tqS), tkS, b.I32s(1))
	diff := b.Sub(b.Op(graph.OpExpandDims, kpos, b.I32s(0)), b.Op(graph.OpExpandDims, qpos, b.I32s(1))) // [Tq,Tk]
	visible := b.Op(graph.OpMax, b.Sub(b.Scalar(graph.F32, 1), b.Op(graph.OpMax, diff, b.Scalar(graph.F32, 0))), b.Scalar(graph.F32, 0))
	mask := b.Mul(b.Sub(visible, b.Scalar(graph.F32, 1)), b.Scalar(graph.F32, -stockMask))

	q5 := b.Typed(graph.OpReshape, graph.Tensor(cd, Hkv, g, graph.Dyn, D), q, b.Concat(0, b.U32s(Hkv, g), tq, b.U32s(D)))
	kt := b.Op(graph.OpExpandDims, b.Transpose(b.Op(graph.OpShrinkDims, k, b.I32s(0)), 0, 2, 1), b.I32s(1)) // [Hkv,1,D,Tk]
	vt := b.Op(graph.OpExpandDims, b.Op(graph.OpShrinkDims, v, b.I32s(0)), b.I32s(1))                       // [Hkv,1,Tk,D]
	s := b.Mul(b.Matmul(q5, kt), b.Scalar(cd, 1/math.Sqrt(float64(D))))
	p := b.Cast(b.Op(graph.OpSoftmax, b.Add(b.Cast(s, graph.F32), mask), b.I32(3)), cd)
	o := b.Matmul(p, vt) // [Hkv,g,Tq,D]
	return b.Typed(graph.OpReshape, graph.Tensor(cd, 1, H, graph.Dyn, D), o, b.Concat(0, b.U32s(1, H), tq, b.U32s(D)))
}
