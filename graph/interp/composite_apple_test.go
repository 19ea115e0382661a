package interp

import (
	"math"
	"strings"
	"testing"

	"qconv/graph"
)

// compositeModule declares name (decl) with args and a body built by body, plus @probe, which
// invokes it: New(m, name) runs the body, New(m, "probe") the declared op.
func compositeModule(t *testing.T, name, decl string, args []graph.Type, body func(b *graph.Builder, a []*graph.Value) *graph.Value) *graph.Module {
	t.Helper()
	m := &graph.Module{}
	f := graph.NewFunc(name)
	f.Private, f.NoInline, f.Composite = true, true, decl
	b := graph.NewBuilder(m, f)
	var in []*graph.Value
	for i, at := range args {
		in = append(in, f.AddArg("arg"+string(rune('0'+i)), at))
	}
	f.AddResult("output", body(b, in))
	m.Funcs = append(m.Funcs, f)
	probe := graph.NewFunc("probe")
	pb := graph.NewBuilder(m, probe)
	var pin []*graph.Value
	for i, at := range args {
		pin = append(pin, probe.AddArg("arg"+string(rune('0'+i)), at))
	}
	out := pb.OpN(graph.OpInvoke, map[string]graph.Attr{"callee": graph.SymbolRefAttr{Name: name}}, pin...)
	probe.AddResult("output", out[0])
	m.Funcs = append(m.Funcs, probe)
	if err := firstErr(b.Err(), pb.Err()); err != nil {
		t.Fatal(err)
	}
	return m
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func randArray(seed uint64, dt graph.DType, shape ...int64) *Array {
	a := NewArray(dt, shape...)
	for i := range a.F {
		seed = seed*6364136223846793005 + 1442695040888963407
		a.F[i] = 4 * (float32(seed>>40)/float32(1<<24) - 0.5)
	}
	roundResult(a)
	return a
}

func run(t *testing.T, m *graph.Module, fn string, in map[string]*Array) *Array {
	t.Helper()
	it, err := New(m, fn)
	if err != nil {
		t.Fatal(err)
	}
	out, err := it.Run(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out["output"]
}

// rms_norm by its declaration equals x/sqrt(mean(x²)+eps)·scale computed here in float64, for a
// per-channel scale and Apple's fused q/k-norm scale [heads, 1, dim]; and a body written with
// plain ops (the decomposition a converter would ship) equals the declared op.
func TestRMSNormComposite(t *testing.T) {
	const eps = 1e-6
	for _, tc := range []struct {
		x, w []int64
	}{{[]int64{1, 3, 40}, []int64{40}}, {[]int64{1, 5, 3, 16}, []int64{5, 1, 16}}} {
		xt, wt := graph.Tensor(graph.F32, tc.x...), graph.Tensor(graph.F32, tc.w...)
		m := compositeModule(t, "rms_norm_0", graph.RMSNormDecl(eps), []graph.Type{xt, wt}, func(b *graph.Builder, a []*graph.Value) *graph.Value {
			last := int64(len(tc.x) - 1)
			ms := b.ReduceMean(b.Mul(a[0], a[0]), last)
			return b.Mul(b.Mul(a[0], b.Op(graph.OpRsqrt, b.Add(ms, b.Scalar(graph.F32, float64(float32(eps)))))), a[1])
		})
		in := map[string]*Array{"arg0": randArray(1, graph.F32, tc.x...), "arg1": randArray(2, graph.F32, tc.w...)}
		decl := run(t, m, "probe", in)
		body := run(t, m, "rms_norm_0", in)
		x, w := in["arg0"], in["arg1"]
		n := int(tc.x[len(tc.x)-1])
		idx, _ := broadcastIndex(tc.w, tc.x)
		var worstRef, worstBody float64
		for r := 0; r*n < len(x.F); r++ {
			var ss float64
			for _, v := range x.F[r*n : (r+1)*n] {
				ss += float64(v) * float64(v)
			}
			inv := 1 / math.Sqrt(ss/float64(n)+float64(float32(eps)))
			for i := r * n; i < (r+1)*n; i++ {
				want := float64(x.F[i]) * inv * float64(w.F[idx(i)])
				worstRef = max(worstRef, math.Abs(float64(decl.F[i])-want))
				worstBody = max(worstBody, math.Abs(float64(decl.F[i]-body.F[i])))
			}
		}
		if worstRef > 1e-5 || worstBody > 1e-5 {
			t.Errorf("x %v scale %v: declared op differs from the direct computation by %.3g, from the body by %.3g", tc.x, tc.w, worstRef, worstBody)
		}
		if len(decl.F) != len(x.F) || decl.Shape[len(decl.Shape)-1] != int64(n) {
			t.Fatalf("output %v", decl)
		}
	}
}

// scaled_dot_product_attention by its declaration equals softmax(q·kᵀ/√D + mask)·v computed here in
// float64 with an explicit mask matrix: grouped-query heads, fewer queries than keys (the queries
// are the last tokens), causal or not, with and without a sliding window; and a plain-op body
// (additive lower-right mask, fp32 softmax) equals the declared op.
func TestSDPAComposite(t *testing.T) {
	const B, Nq, Nkv, Tq, Tk, D, Dv = 1, 4, 2, 3, 7, 8, 5
	qt, kt, vt := graph.Tensor(graph.F32, B, Nq, Tq, D), graph.Tensor(graph.F32, B, Nkv, Tk, D), graph.Tensor(graph.F32, B, Nkv, Tk, Dv)
	in := map[string]*Array{"arg0": randArray(3, graph.F32, B, Nq, Tq, D), "arg1": randArray(4, graph.F32, B, Nkv, Tk, D), "arg2": randArray(5, graph.F32, B, Nkv, Tk, Dv)}
	visible := func(causal bool, w, i, j int) bool {
		off := Tk - Tq
		ok := !causal || j <= i+off
		if w > 0 {
			ok = ok && j > i+off-w && (causal || j < i+off+w)
		}
		return ok
	}
	for _, tc := range []struct {
		causal bool
		window int
	}{{true, 0}, {false, 0}, {true, 2}, {false, 2}} {
		// The body: MHA on kv heads repeated onto the query heads, a constant additive mask.
		mask := make([]float64, Tq*Tk)
		for i := 0; i < Tq; i++ {
			for j := 0; j < Tk; j++ {
				if !visible(tc.causal, tc.window, i, j) {
					mask[i*Tk+j] = -1e9
				}
			}
		}
		m := compositeModule(t, "sdpa_0", graph.SDPADecl(tc.causal, int64(tc.window)), []graph.Type{qt, kt, vt}, func(b *graph.Builder, a []*graph.Value) *graph.Value {
			rep := func(x *graph.Value, d int64) *graph.Value { // [1,Nkv,Tk,d] -> [1,Nq,Tk,d], head n reads n/(Nq/Nkv)
				e := b.Mul(b.Op(graph.OpExpandDims, x, b.I32s(2)), b.Splat(graph.F32, 1, 1, Nkv, Nq/Nkv, Tk, d))
				return b.Reshape(e, B, Nq, Tk, d)
			}
			s := b.Mul(b.Matmul(a[0], b.Transpose(rep(a[1], D), 0, 1, 3, 2)), b.Scalar(graph.F32, 1/math.Sqrt(D)))
			s = b.Add(s, b.Const(graph.DenseFloats(graph.F32, []int64{Tq, Tk}, mask)))
			return b.Matmul(b.Op(graph.OpSoftmax, s, b.I32(3)), rep(a[2], Dv))
		})
		decl := run(t, m, "probe", in)
		body := run(t, m, "sdpa_0", in)
		q, k, v := in["arg0"], in["arg1"], in["arg2"]
		var worstRef, worstBody float64
		for n := 0; n < Nq; n++ {
			kv := n / (Nq / Nkv)
			for i := 0; i < Tq; i++ {
				var p [Tk]float64
				var sum float64
				for j := 0; j < Tk; j++ {
					if !visible(tc.causal, tc.window, i, j) {
						continue
					}
					var s float64
					for d := 0; d < D; d++ {
						s += float64(q.F[(n*Tq+i)*D+d]) * float64(k.F[(kv*Tk+j)*D+d])
					}
					p[j] = math.Exp(s / math.Sqrt(D))
					sum += p[j]
				}
				for d := 0; d < Dv; d++ {
					var want float64
					for j := 0; j < Tk; j++ {
						want += p[j] / sum * float64(v.F[(kv*Tk+j)*Dv+d])
					}
					got := decl.F[(n*Tq+i)*Dv+d]
					worstRef = max(worstRef, math.Abs(float64(got)-want))
					worstBody = max(worstBody, math.Abs(float64(got-body.F[(n*Tq+i)*Dv+d])))
				}
			}
		}
		if worstRef > 1e-5 || worstBody > 1e-5 {
			t.Errorf("causal %v window %d: declared op differs from the direct computation by %.3g, from the body by %.3g", tc.causal, tc.window, worstRef, worstBody)
		}
	}
}

// A composite qconv implements but with a declaration it does not (another reduction axis, an
// attention mask input, the non-normalised recurrence) is refused at plan time, naming the op and
// what is unsupported; a composite qconv does not know runs its body.
func TestCompositeDeclarationsRefused(t *testing.T) {
	x := graph.Tensor(graph.F32, 2, 4)
	id := func(b *graph.Builder, a []*graph.Value) *graph.Value { return b.Add(a[0], a[1]) }
	for _, tc := range []struct {
		decl, want string
	}{
		{strings.Replace(graph.RMSNormDecl(1e-6), "axes = -1", "axes = 0", 1), "rms_norm over axes \"0\""},
		{strings.Replace(graph.RMSNormDecl(1e-6), "eps = ", "eps = x", 1), "op_attrs.eps"},
		{`#coreai.composite_declaration<"scaled_dot_product_attention" = {input_names = ["query", "key"], op_attrs = {is_causal = true, version = 1 : si64}, output_names = ["output"]}>`, "qconv implements query, key, value"},
		{`#coreai.composite_declaration<"rms_norm" = {input_names = ["input", "scale"], op_attrs = {axes = -1 : si64`, "no closing"},
	} {
		m := compositeModule(t, "c_0", tc.decl, []graph.Type{x, x}, id)
		_, err := New(m, "probe")
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "@c_0") {
			t.Errorf("declaration %s: error %v, want one naming @c_0 and %q", tc.decl, err, tc.want)
		}
	}
	other := `#coreai.composite_declaration<"log_softmax" = {input_names = ["input"], op_attrs = {axis = 1 : si64, version = 1 : si64}, output_names = ["output"]}>`
	m := compositeModule(t, "c_0", other, []graph.Type{x, x}, id)
	in := map[string]*Array{"arg0": randArray(1, graph.F32, 2, 4), "arg1": randArray(2, graph.F32, 2, 4)}
	if got := run(t, m, "probe", in); got.F[3] != in["arg0"].F[3]+in["arg1"].F[3] {
		t.Errorf("an unknown composite did not run its body")
	}
}
