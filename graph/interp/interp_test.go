package interp

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/x448/float16"

	"qconv/graph"
)

// ---- helpers

func interpModule() (*graph.Module, *graph.Func, *graph.Builder) {
	m := &graph.Module{}
	f := graph.NewFunc("main")
	m.Funcs = append(m.Funcs, f)
	return m, f, graph.NewBuilder(m, f)
}

func farr(dt graph.DType, shape []int64, vals ...float64) *Array {
	a := NewArray(dt, shape...)
	if len(vals) != len(a.F) {
		panic("farr: wrong value count")
	}
	for i, v := range vals {
		a.F[i] = float32(v)
	}
	return a
}

func iarr(dt graph.DType, shape []int64, vals ...int64) *Array {
	a := NewArray(dt, shape...)
	if len(vals) != len(a.I) {
		panic("iarr: wrong value count")
	}
	copy(a.I, vals)
	return a
}

func mustRun(t *testing.T, m *graph.Module, inputs, states map[string]*Array) map[string]*Array {
	t.Helper()
	it, err := New(m, "main")
	if err != nil {
		t.Fatal(err)
	}
	out, err := it.Run(inputs, states)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func checkShape(t *testing.T, name string, a *Array, shape ...int64) {
	t.Helper()
	if len(a.Shape) != len(shape) {
		t.Fatalf("%s: shape %v, want %v", name, a.Shape, shape)
	}
	for i := range shape {
		if a.Shape[i] != shape[i] {
			t.Fatalf("%s: shape %v, want %v", name, a.Shape, shape)
		}
	}
}

// checkNear checks got against want within an absolute-plus-relative tolerance.
func checkNear(t *testing.T, name string, got []float32, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", name, len(got), len(want))
	}
	for i := range want {
		g, w := float64(got[i]), want[i]
		if math.IsNaN(w) != math.IsNaN(g) || math.IsInf(w, 0) && g != w ||
			!math.IsInf(w, 0) && !math.IsNaN(w) && math.Abs(g-w) > tol*(1+math.Abs(w)) {
			t.Fatalf("%s[%d] = %v, want %v (tol %g)", name, i, g, w, tol)
		}
	}
}

func sameInts(t *testing.T, name string, got, want []int64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %v, want %v", name, got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s: %v, want %v", name, got, want)
		}
	}
}

func f16round(v float64) float64 { return float64(float16.Fromfloat32(float32(v)).Float32()) }

// multiIndex/flatIndex convert between a flat row-major offset and a multi-index.
func multiIndex(i int, shape []int64) []int64 {
	idx := make([]int64, len(shape))
	for d := len(shape) - 1; d >= 0; d-- {
		idx[d] = int64(i) % shape[d]
		i /= int(shape[d])
	}
	return idx
}

func flatIndex(idx, shape []int64) int {
	o := 0
	for d := range shape {
		o = o*int(shape[d]) + int(idx[d])
	}
	return o
}

// bcastRef is numpy broadcasting in float64, written the obvious way.
func bcastRef(a []float64, as []int64, b []float64, bs []int64, out []int64, fn func(x, y float64) float64) []float64 {
	r := len(out)
	res := make([]float64, shapeElems(out))
	for i := range res {
		oi := multiIndex(i, out)
		pick := func(s []int64) []int64 {
			idx := make([]int64, len(s))
			for d := range s {
				if s[d] != 1 {
					idx[d] = oi[r-len(s)+d]
				}
			}
			return idx
		}
		res[i] = fn(a[flatIndex(pick(as), as)], b[flatIndex(pick(bs), bs)])
	}
	return res
}

func f64s(a []float32) []float64 {
	out := make([]float64, len(a))
	for i, v := range a {
		out[i] = float64(v)
	}
	return out
}

func randVals(rng *rand.Rand, n int, scale float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = (rng.Float64()*2 - 1) * scale
	}
	return v
}

// ---- elementwise

func TestInterpUnary(t *testing.T) {
	xs := []float64{-3.5, -1, -0.25, 0.5, 1, 2.75, 9}
	pos := []float64{0.25, 0.5, 1, 2, 3, 10, 1000}
	cases := []struct {
		op  string
		in  []float64
		ref func(float64) float64
	}{
		{graph.OpExp, xs, math.Exp},
		{graph.OpLog, pos, math.Log},
		{graph.OpSqrt, pos, math.Sqrt},
		{graph.OpRsqrt, pos, func(x float64) float64 { return 1 / math.Sqrt(x) }},
		{graph.OpSigmoid, xs, func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }},
		{graph.OpSilu, xs, func(x float64) float64 { return x / (1 + math.Exp(-x)) }},
		{graph.OpSin, xs, math.Sin},
		{graph.OpCos, xs, math.Cos},
	}
	for _, c := range cases {
		for _, dt := range []graph.DType{graph.F32, graph.F16} {
			m, f, b := interpModule()
			x := f.AddArg("x", graph.Tensor(dt, int64(len(c.in))))
			f.AddResult("y", b.Op(c.op, x))
			in := make([]float64, len(c.in))
			for i, v := range c.in {
				in[i] = v
				if dt == graph.F16 {
					in[i] = f16round(v)
				}
			}
			got := mustRun(t, m, map[string]*Array{"x": farr(dt, []int64{int64(len(in))}, in...)}, nil)["y"]
			want := make([]float64, len(in))
			for i, v := range in {
				want[i] = c.ref(v)
				if dt == graph.F16 {
					want[i] = f16round(want[i])
				}
			}
			tol := 1e-7
			if dt == graph.F16 {
				tol = 0 // f64 -> f32 -> f16 equals f64 -> f16 for these values
			}
			checkNear(t, c.op+"/"+dt.String(), got.F, want, tol)
		}
	}
}

func TestInterpBinaryBroadcast(t *testing.T) {
	ops := []struct {
		op string
		fn func(x, y float64) float64
	}{
		{graph.OpAdd, func(x, y float64) float64 { return x + y }},
		{graph.OpSub, func(x, y float64) float64 { return x - y }},
		{graph.OpMul, func(x, y float64) float64 { return x * y }},
		{graph.OpDiv, func(x, y float64) float64 { return x / y }},
		{graph.OpMax, math.Max},
	}
	shapes := []struct{ a, b, out []int64 }{
		{[]int64{2, 3}, []int64{2, 3}, []int64{2, 3}},
		{[]int64{2, 3}, []int64{3}, []int64{2, 3}},
		{[]int64{2, 3}, nil, []int64{2, 3}},
		{nil, []int64{4}, []int64{4}},
		{[]int64{2, 1, 3}, []int64{4, 1}, []int64{2, 4, 3}},
		{[]int64{1, 5, 1}, []int64{3, 1, 2}, []int64{3, 5, 2}},
		{[]int64{2, 3, 4}, []int64{2, 1, 4}, []int64{2, 3, 4}},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, o := range ops {
		for _, s := range shapes {
			for _, dt := range []graph.DType{graph.F32, graph.F16} {
				m, f, b := interpModule()
				x := f.AddArg("a", graph.Tensor(dt, s.a...))
				y := f.AddArg("b", graph.Tensor(dt, s.b...))
				f.AddResult("y", b.Op(o.op, x, y))
				av, bv := randVals(rng, shapeElems(s.a), 4), randVals(rng, shapeElems(s.b), 4)
				for i := range bv {
					if math.Abs(bv[i]) < 0.5 {
						bv[i] += 1
					}
				}
				if dt == graph.F16 {
					for i := range av {
						av[i] = f16round(av[i])
					}
					for i := range bv {
						bv[i] = f16round(bv[i])
					}
				}
				got := mustRun(t, m, map[string]*Array{"a": farr(dt, s.a, av...), "b": farr(dt, s.b, bv...)}, nil)["y"]
				checkShape(t, o.op, got, s.out...)
				want := bcastRef(av, s.a, bv, s.b, s.out, o.fn)
				tol := 1e-6
				if dt == graph.F16 {
					for i := range want {
						want[i] = f16round(want[i])
					}
					tol = 1e-3 // one f16 ulp where f32 arithmetic rounds differently from f64
				}
				checkNear(t, o.op, got.F, want, tol)
			}
		}
	}
}

func TestInterpIntArithmeticWraps(t *testing.T) {
	m, f, b := interpModule()
	x := f.AddArg("x", graph.Tensor(graph.SI32, 3))
	f.AddResult("y", b.Add(x, b.SplatInt(graph.SI32, 1, 3)))
	f.AddResult("z", b.Op(graph.OpMax, x, b.SplatInt(graph.SI32, 0, 3)))
	out := mustRun(t, m, map[string]*Array{"x": iarr(graph.SI32, []int64{3}, math.MaxInt32, -5, 7)}, nil)
	sameInts(t, "add", out["y"].I, []int64{math.MinInt32, -4, 8})
	sameInts(t, "max", out["z"].I, []int64{math.MaxInt32, 0, 7})
}

// ---- matmul

func matmulRef(a []float64, as []int64, b []float64, bs []int64) ([]float64, []int64) {
	ra, rb := len(as), len(bs)
	M, K, N := as[ra-2], as[ra-1], bs[rb-1]
	ab, bb := as[:ra-2], bs[:rb-2]
	r := max(len(ab), len(bb))
	batch := make([]int64, r)
	for d := range batch {
		x, y := int64(1), int64(1)
		if j := d - (r - len(ab)); j >= 0 {
			x = ab[j]
		}
		if j := d - (r - len(bb)); j >= 0 {
			y = bb[j]
		}
		batch[d] = max(x, y)
	}
	out := append(append([]int64{}, batch...), M, N)
	res := make([]float64, shapeElems(out))
	for i := range res {
		oi := multiIndex(i, out)
		pa := make([]int64, ra)
		pb := make([]int64, rb)
		for d := 0; d < len(ab); d++ {
			if ab[d] != 1 {
				pa[d] = oi[r-len(ab)+d]
			}
		}
		for d := 0; d < len(bb); d++ {
			if bb[d] != 1 {
				pb[d] = oi[r-len(bb)+d]
			}
		}
		var s float64
		for k := int64(0); k < K; k++ {
			pa[ra-2], pa[ra-1] = oi[r], k
			pb[rb-2], pb[rb-1] = k, oi[r+1]
			s += a[flatIndex(pa, as)] * b[flatIndex(pb, bs)]
		}
		res[i] = s
	}
	return res, out
}

func TestInterpMatmul(t *testing.T) {
	cases := []struct{ a, b []int64 }{
		{[]int64{3, 4}, []int64{4, 2}},
		{[]int64{2, 1, 3, 4}, []int64{5, 4, 2}},
		{[]int64{2, 3, 5}, []int64{5, 20}},   // axpy path
		{[]int64{4, 1, 7}, []int64{4, 7, 1}}, // N = 1
		{[]int64{1, 3, 2}, []int64{6, 2, 17}},
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, c := range cases {
		m, f, b := interpModule()
		x := f.AddArg("a", graph.Tensor(graph.F32, c.a...))
		y := f.AddArg("b", graph.Tensor(graph.F32, c.b...))
		f.AddResult("y", b.Matmul(x, y))
		av, bv := randVals(rng, shapeElems(c.a), 1), randVals(rng, shapeElems(c.b), 1)
		got := mustRun(t, m, map[string]*Array{"a": farr(graph.F32, c.a, av...), "b": farr(graph.F32, c.b, bv...)}, nil)["y"]
		want, shape := matmulRef(f64s(farr(graph.F32, c.a, av...).F), c.a, f64s(farr(graph.F32, c.b, bv...).F), c.b)
		checkShape(t, "matmul", got, shape...)
		checkNear(t, "matmul", got.F, want, 1e-5)
	}
	// f16: accumulated in f32, rounded once.
	m, f, b := interpModule()
	x := f.AddArg("a", graph.Tensor(graph.F16, 1, 3))
	y := f.AddArg("b", graph.Tensor(graph.F16, 3, 1))
	f.AddResult("y", b.Matmul(x, y))
	got := mustRun(t, m, map[string]*Array{"a": farr(graph.F16, []int64{1, 3}, 1, 1, 1), "b": farr(graph.F16, []int64{3, 1}, 2048, 1, 1)}, nil)["y"]
	checkNear(t, "f16 matmul", got.F, []float64{2050}, 0) // 2048+1 = 2049 (a tie) would round to 2048 if rounded per step
}

// ---- shape ops

func TestInterpShapeOps(t *testing.T) {
	m, f, b := interpModule()
	x := f.AddArg("x", graph.Tensor(graph.F32, 2, 3, graph.Dyn))
	tr := b.Transpose(x, 2, 0, 1)
	f.AddResult("tr", tr)
	// reshape to [n, 6] where n is computed at run time from get_shape
	sh := b.Op(graph.OpGetShape, x)
	last := b.Typed(graph.OpSlice, graph.Tensor(graph.UI32, 1), sh, b.I32s(2), b.I32s(3), b.I32s(1))
	f.AddResult("rs", b.Op(graph.OpReshape, x, b.Concat(0, last, b.U32s(6))))
	ex := b.Op(graph.OpExpandDims, x, b.I32s(-1, 0))
	f.AddResult("ex", ex)
	f.AddResult("sh", b.Op(graph.OpShrinkDims, ex, b.I32s(0, -1)))
	f.AddResult("shape", sh)
	if b.Err() != nil {
		t.Fatal(b.Err())
	}
	vals := make([]float64, 2*3*4)
	for i := range vals {
		vals[i] = float64(i)
	}
	out := mustRun(t, m, map[string]*Array{"x": farr(graph.F32, []int64{2, 3, 4}, vals...)}, nil)
	checkShape(t, "transpose", out["tr"], 4, 2, 3)
	want := make([]float64, 24)
	for i := range want {
		o := multiIndex(i, []int64{4, 2, 3}) // out[k,i,j] = x[i,j,k]
		want[i] = vals[flatIndex([]int64{o[1], o[2], o[0]}, []int64{2, 3, 4})]
	}
	checkNear(t, "transpose", out["tr"].F, want, 0)
	checkShape(t, "reshape", out["rs"], 4, 6)
	checkNear(t, "reshape", out["rs"].F, vals, 0)
	checkShape(t, "expand_dims", out["ex"], 1, 2, 3, 4, 1)
	checkShape(t, "shrink_dims", out["sh"], 2, 3, 4)
	sameInts(t, "get_shape", out["shape"].I, []int64{2, 3, 4})
	if out["shape"].DType != graph.UI32 {
		t.Errorf("get_shape dtype %s", out["shape"].DType)
	}
}

func TestInterpConcat(t *testing.T) {
	m, f, b := interpModule()
	x := f.AddArg("x", graph.Tensor(graph.F32, 2, 1))
	y := f.AddArg("y", graph.Tensor(graph.F32, 2, 2))
	f.AddResult("c1", b.Concat(-1, x, y, x))
	f.AddResult("c0", b.Concat(0, y, y))
	out := mustRun(t, m, map[string]*Array{"x": farr(graph.F32, []int64{2, 1}, 1, 2), "y": farr(graph.F32, []int64{2, 2}, 3, 4, 5, 6)}, nil)
	checkShape(t, "concat", out["c1"], 2, 4)
	checkNear(t, "concat -1", out["c1"].F, []float64{1, 3, 4, 1, 2, 5, 6, 2}, 0)
	checkNear(t, "concat 0", out["c0"].F, []float64{3, 4, 5, 6, 3, 4, 5, 6}, 0)
}

func TestInterpSlice(t *testing.T) {
	m, f, b := interpModule()
	x := f.AddArg("x", graph.Tensor(graph.F32, 3, graph.Dyn))
	// to the end, with stride 2 on axis 1
	f.AddResult("s1", b.Op(graph.OpSlice, x, b.I32s(1, 1), b.I32s(graph.SliceEnd, graph.SliceEnd), b.I32s(1, 2)))
	// the last column, begin computed from get_shape: [0, P-1] .. [3, P]
	p := b.Cast(b.Typed(graph.OpSlice, graph.Tensor(graph.UI32, 1), b.Op(graph.OpGetShape, x), b.I32s(1), b.I32s(2), b.I32s(1)), graph.SI32)
	pm1 := b.Sub(p, b.I32s(1))
	f.AddResult("s2", b.Op(graph.OpSlice, x, b.Concat(0, b.I32s(0), pm1), b.Concat(0, b.I32s(3), p), b.I32s(1, 1)))
	if b.Err() != nil {
		t.Fatal(b.Err())
	}
	vals := make([]float64, 15)
	for i := range vals {
		vals[i] = float64(i)
	}
	out := mustRun(t, m, map[string]*Array{"x": farr(graph.F32, []int64{3, 5}, vals...)}, nil)
	checkShape(t, "slice to end", out["s1"], 2, 2)
	checkNear(t, "slice to end", out["s1"].F, []float64{6, 8, 11, 13}, 0)
	checkShape(t, "dynamic slice", out["s2"], 3, 1)
	checkNear(t, "dynamic slice", out["s2"].F, []float64{4, 9, 14}, 0)

	// out of range
	m, f, b = interpModule()
	x = f.AddArg("x", graph.Tensor(graph.F32, 3, graph.Dyn))
	f.AddResult("s", b.Op(graph.OpSlice, x, b.I32s(0, 0), b.I32s(3, 4), b.I32s(1, 1)))
	it, err := New(m, "main")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := it.Run(map[string]*Array{"x": NewArray(graph.F32, 3, 2)}, nil); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("slice past the end: %v", err)
	}
}

func TestInterpSliceUpdate(t *testing.T) {
	// Write a [2,1] column at position P-2 of a [2, P] tensor with a dynamic P.
	m, f, b := interpModule()
	x := f.AddArg("x", graph.Tensor(graph.F32, 2, graph.Dyn))
	u := f.AddArg("u", graph.Tensor(graph.F32, 2, 1))
	p := b.Cast(b.Typed(graph.OpSlice, graph.Tensor(graph.UI32, 1), b.Op(graph.OpGetShape, x), b.I32s(1), b.I32s(2), b.I32s(1)), graph.SI32)
	begin := b.Concat(0, b.I32s(0), b.Sub(p, b.I32s(2)))
	end := b.Concat(0, b.I32s(2), b.Sub(p, b.I32s(1)))
	f.AddResult("y", b.Op(graph.OpSliceUpdate, x, u, begin, end, b.I32s(1, 1)))
	f.AddResult("x", x) // x is returned too, so it must not be overwritten
	if b.Err() != nil {
		t.Fatal(b.Err())
	}
	in := farr(graph.F32, []int64{2, 4}, 1, 2, 3, 4, 5, 6, 7, 8)
	out := mustRun(t, m, map[string]*Array{"x": in, "u": farr(graph.F32, []int64{2, 1}, -1, -2)}, nil)
	checkNear(t, "slice_update", out["y"].F, []float64{1, 2, -1, 4, 5, 6, -2, 8}, 0)
	checkNear(t, "input untouched", out["x"].F, []float64{1, 2, 3, 4, 5, 6, 7, 8}, 0)
	checkNear(t, "input untouched", in.F, []float64{1, 2, 3, 4, 5, 6, 7, 8}, 0)
}

func TestInterpGather(t *testing.T) {
	m, f, b := interpModule()
	tab := f.AddArg("t", graph.Tensor(graph.F32, 5, 3))
	idx := f.AddArg("i", graph.Tensor(graph.SI32, 2, 2, 1))
	f.AddResult("g", b.Op(graph.OpGatherND, tab, idx))
	idx2 := f.AddArg("i2", graph.Tensor(graph.SI32, 2, 2))
	f.AddResult("g2", b.Op(graph.OpGatherND, tab, idx2))
	vals := make([]float64, 15)
	for i := range vals {
		vals[i] = float64(i)
	}
	it, err := New(m, "main")
	if err != nil {
		t.Fatal(err)
	}
	in := map[string]*Array{"t": farr(graph.F32, []int64{5, 3}, vals...), "i": iarr(graph.SI32, []int64{2, 2, 1}, 4, 0, 0, 2), "i2": iarr(graph.SI32, []int64{2, 2}, 4, 2, 0, 1)}
	out, err := it.Run(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkShape(t, "gather", out["g"], 2, 2, 3)
	checkNear(t, "gather", out["g"].F, []float64{12, 13, 14, 0, 1, 2, 0, 1, 2, 6, 7, 8}, 0)
	checkShape(t, "gather depth 2", out["g2"], 2)
	checkNear(t, "gather depth 2", out["g2"].F, []float64{14, 1}, 0)
	for _, bad := range []int64{5, -1} {
		in["i"] = iarr(graph.SI32, []int64{2, 2, 1}, 0, bad, 0, 0)
		if _, err := it.Run(in, nil); err == nil || !strings.Contains(err.Error(), "out of range") {
			t.Errorf("gather index %d: %v", bad, err)
		}
	}
}

// ---- reductions

func TestInterpSoftmaxLarge(t *testing.T) {
	m, f, b := interpModule()
	x := f.AddArg("x", graph.Tensor(graph.F32, 2, 3))
	f.AddResult("y", b.Op(graph.OpSoftmax, x, b.I32(-1)))
	f.AddResult("y0", b.Op(graph.OpSoftmax, x, b.I32(0)))
	in := []float64{1000, 1001, 1002, -1e4, 0, 88}
	out := mustRun(t, m, map[string]*Array{"x": farr(graph.F32, []int64{2, 3}, in...)}, nil)
	ref := func(v []float64) []float64 {
		mx := math.Inf(-1)
		for _, x := range v {
			mx = math.Max(mx, x)
		}
		s := 0.0
		r := make([]float64, len(v))
		for i, x := range v {
			r[i] = math.Exp(x - mx)
			s += r[i]
		}
		for i := range r {
			r[i] /= s
		}
		return r
	}
	checkNear(t, "softmax -1", out["y"].F, append(ref(in[:3]), ref(in[3:])...), 1e-6)
	var w0 []float64
	cols := [][]float64{ref([]float64{1000, -1e4}), ref([]float64{1001, 0}), ref([]float64{1002, 88})}
	for r := 0; r < 2; r++ {
		for c := 0; c < 3; c++ {
			w0 = append(w0, cols[c][r])
		}
	}
	checkNear(t, "softmax 0", out["y0"].F, w0, 1e-6)
}

func TestInterpReduce(t *testing.T) {
	vals := make([]float64, 24)
	for i := range vals {
		vals[i] = float64((i*7)%11) - 5
	}
	shape := []int64{2, 3, 4}
	cases := []struct {
		op   string
		axes []int64
	}{
		{graph.OpReduceSum, []int64{-1}}, {graph.OpReduceSum, []int64{1}}, {graph.OpReduceSum, []int64{0, 2}},
		{graph.OpReduceMean, []int64{2}}, {graph.OpReduceMean, []int64{0, 1, 2}},
		{graph.OpReduceMax, []int64{1}}, {graph.OpReduceMax, []int64{0, -1}},
	}
	for _, c := range cases {
		m, f, b := interpModule()
		x := f.AddArg("x", graph.Tensor(graph.F32, shape...))
		f.AddResult("y", b.Op(c.op, x, b.I32s(c.axes...)))
		got := mustRun(t, m, map[string]*Array{"x": farr(graph.F32, shape, vals...)}, nil)["y"]
		red := map[int]bool{}
		oshape := append([]int64{}, shape...)
		for _, a := range c.axes {
			ax, _ := graph.NormAxis(a, 3)
			red[ax] = true
			oshape[ax] = 1
		}
		want := make([]float64, shapeElems(oshape))
		cnt := make([]float64, len(want))
		for i := range want {
			if c.op == graph.OpReduceMax {
				want[i] = math.Inf(-1)
			}
		}
		for i, v := range vals {
			idx := multiIndex(i, shape)
			for d := range idx {
				if red[d] {
					idx[d] = 0
				}
			}
			o := flatIndex(idx, oshape)
			cnt[o]++
			if c.op == graph.OpReduceMax {
				want[o] = math.Max(want[o], v)
			} else {
				want[o] += v
			}
		}
		if c.op == graph.OpReduceMean {
			for i := range want {
				want[i] /= cnt[i]
			}
		}
		checkShape(t, c.op, got, oshape...)
		checkNear(t, c.op, got.F, want, 1e-6)
	}
}

func TestInterpArgmax(t *testing.T) {
	m, f, b := interpModule()
	x := f.AddArg("x", graph.Tensor(graph.F32, 2, 4))
	f.AddResult("a", b.Op(graph.OpArgmax, x, b.I32(-1)))
	f.AddResult("a0", b.Op(graph.OpArgmax, x, b.I32(0)))
	out := mustRun(t, m, map[string]*Array{"x": farr(graph.F32, []int64{2, 4}, 1, 5, 5, 2, -3, -1, -1, -2)}, nil)
	checkShape(t, "argmax", out["a"], 2, 1)
	sameInts(t, "argmax ties", out["a"].I, []int64{1, 1})
	checkShape(t, "argmax 0", out["a0"], 1, 4)
	sameInts(t, "argmax axis 0", out["a0"].I, []int64{0, 0, 0, 0})
	if out["a"].DType != graph.UI32 {
		t.Errorf("argmax dtype %s", out["a"].DType)
	}
}

// ---- casts

func TestInterpCast(t *testing.T) {
	m, f, b := interpModule()
	x := f.AddArg("x", graph.Tensor(graph.F32, 10))
	f.AddResult("i", b.Cast(x, graph.SI32))
	f.AddResult("h", b.Cast(x, graph.F16))
	n := f.AddArg("n", graph.Tensor(graph.SI32, 4))
	f.AddResult("nh", b.Cast(n, graph.F16))
	f.AddResult("nu", b.Cast(n, graph.UI32))
	in := []float64{
		-2.7, 2.7, -0.5, // truncation toward zero
		1 + 1.0/2048,              // tie between 1 and 1+2^-10: to even (1)
		1 + 3.0/2048,              // tie between 1+2^-10 and 1+2^-9: to even (1+2^-9)
		65519,                     // below the tie: 65504
		65520,                     // the tie at the top: to even, which overflows to +Inf
		-70000,                    // overflow
		5.960464477539063e-08 / 2, // half the smallest subnormal: tie to even (0)
		3e9,                       // saturates as si32
	}
	out := mustRun(t, m, map[string]*Array{"x": farr(graph.F32, []int64{10}, in...), "n": iarr(graph.SI32, []int64{4}, 2049, 2051, -1, 7)}, nil)
	sameInts(t, "f32->si32", out["i"].I, []int64{-2, 2, 0, 1, 1, 65519, 65520, -70000, 0, math.MaxInt32})
	checkNear(t, "f32->f16", out["h"].F, []float64{
		f16round(-2.7), f16round(2.7), -0.5, 1, 1 + 1.0/512, 65504, math.Inf(1), math.Inf(-1), 0, math.Inf(1)}, 0)
	checkNear(t, "si32->f16", out["nh"].F, []float64{2048, 2052, -1, 7}, 0)
	sameInts(t, "si32->ui32", out["nu"].I, []int64{2049, 2051, math.MaxUint32, 7})
}

// ---- quantized weights

// packInts stores values little-endian in dt's width (4-bit: low nibble first).
func packInts(dt graph.DType, vals []int64) []byte {
	out := make([]byte, graph.BytesFor(dt, len(vals)))
	for i, v := range vals {
		graph.PutInt(dt, out, i, v)
	}
	return out
}

func packF16(vals []float64) []byte {
	out := make([]byte, 2*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint16(out[2*i:], float16.Fromfloat32(float32(v)).Bits())
	}
	return out
}

func packF32(vals []float64) []byte {
	out := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(float32(v)))
	}
	return out
}

var resCount int

func resConst(b *graph.Builder, t graph.Type, data []byte) *graph.Value {
	resCount++
	r, err := b.M.AddResource(&graph.Resource{Key: "r" + string(rune('a'+resCount%26)) + string(rune('a'+resCount/26%26)) + string(rune('a'+resCount/676)), Size: int64(len(data)), Data: data})
	if err != nil {
		panic(err)
	}
	return b.Resource(t, r)
}

// qweight is a quantized [rows, cols] test weight with its float64 dequantization.
type qweight struct {
	rows, cols int64
	q          []int64
	scale      []float64 // [rows/br, cols/bc]
	br, bc     int64
	deq        []float64
}

func makeQWeight(rng *rand.Rand, rows, cols, br, bc int64, qmax int64) *qweight {
	w := &qweight{rows: rows, cols: cols, br: br, bc: bc}
	w.q = make([]int64, rows*cols)
	for i := range w.q {
		w.q[i] = rng.Int64N(2*qmax+2) - qmax - 1 // includes -qmax-1 (e.g. -128, -8)
	}
	w.scale = make([]float64, (rows/br)*(cols/bc))
	for i := range w.scale {
		w.scale[i] = f16round(0.001 + rng.Float64()*0.05)
	}
	w.deq = make([]float64, len(w.q))
	for r := int64(0); r < rows; r++ {
		for c := int64(0); c < cols; c++ {
			w.deq[r*cols+c] = float64(w.q[r*cols+c]) * w.scale[(r/br)*(cols/bc)+c/bc]
		}
	}
	return w
}

// blockwiseValue adds blockwise_shift_scale of w with data in dt (si8/si4) and scales in sdt.
func (w *qweight) value(b *graph.Builder, dt, sdt graph.DType) *graph.Value {
	sshape := []int64{w.rows / w.br, w.cols / w.bc}
	data := resConst(b, graph.Tensor(dt, w.rows, w.cols), packInts(dt, w.q))
	var sb []byte
	if sdt == graph.F16 {
		sb = packF16(w.scale)
	} else {
		sb = packF32(w.scale)
	}
	scale := resConst(b, graph.Tensor(sdt, sshape...), sb)
	return b.Op(graph.OpBlockwise, data, scale, b.SplatInt(dt, 0, sshape...), b.Splat(sdt, 0, sshape...))
}

func TestInterpBlockwise(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	cases := []struct {
		name   string
		dt     graph.DType
		br, bc int64
		qmax   int64
	}{
		{"si8 block32", graph.SI8, 1, 32, 127},
		{"si8 per-channel", graph.SI8, 1, 64, 127},
		{"si4 block32", graph.SI4, 1, 32, 7},
		{"si4 per-channel", graph.SI4, 1, 64, 7},
	}
	for _, c := range cases {
		for _, sdt := range []graph.DType{graph.F32, graph.F16} {
			m, f, b := interpModule()
			w := makeQWeight(rng, 3, 64, c.br, c.bc, c.qmax)
			f.AddResult("w", w.value(b, c.dt, sdt))
			got := mustRun(t, m, nil, nil)["w"]
			want := w.deq
			if sdt == graph.F16 {
				want = make([]float64, len(w.deq))
				for i, v := range w.deq {
					want[i] = f16round(v)
				}
			}
			checkShape(t, c.name, got, 3, 64)
			checkNear(t, c.name+"/"+sdt.String(), got.F, want, 0)
		}
	}
	// Nonzero offsets, data as a runtime input: (q - o1)*s + o2 with scales per [2,2] block.
	m, f, b := interpModule()
	q := f.AddArg("q", graph.Tensor(graph.SI8, 2, 4))
	s := b.Const(graph.DenseFloats(graph.F32, []int64{1, 2}, []float64{0.5, 2}))
	o1 := b.Const(graph.DenseInts(graph.SI8, []int64{1, 2}, []int64{1, -2}))
	o2 := b.Const(graph.DenseFloats(graph.F32, []int64{1, 2}, []float64{10, 0}))
	f.AddResult("w", b.Op(graph.OpBlockwise, q, s, o1, o2))
	got := mustRun(t, m, map[string]*Array{"q": iarr(graph.SI8, []int64{2, 4}, 1, 3, -128, 127, 5, -1, 0, 2)}, nil)["w"]
	checkNear(t, "offsets", got.F, []float64{10, 11, -252, 258, 12, 9, 4, 8}, 0)
}

// lutweight is a palettized [rows, cols] test weight with one table per group of gr rows.
type lutweight struct {
	rows, cols, gr int64
	bits           int
	idx            []int64
	lut            []float64 // [rows/gr][1<<bits]
	deq            []float64
}

func makeLUTWeight(rng *rand.Rand, rows, cols, gr int64, bits int) *lutweight {
	w := &lutweight{rows: rows, cols: cols, gr: gr, bits: bits}
	k := int64(1) << bits
	w.idx = make([]int64, rows*cols)
	for i := range w.idx {
		w.idx[i] = rng.Int64N(k)
	}
	w.lut = make([]float64, (rows/gr)*k)
	for i := range w.lut {
		w.lut[i] = f16round(rng.Float64()*2 - 1)
	}
	w.deq = make([]float64, len(w.idx))
	for i, q := range w.idx {
		w.deq[i] = w.lut[(int64(i)/cols/gr)*k+q]
	}
	return w
}

func (w *lutweight) value(b *graph.Builder, ldt graph.DType) *graph.Value {
	dt := graph.UI8
	if w.bits == 4 {
		dt = graph.UI4
	}
	idx := resConst(b, graph.Tensor(dt, w.rows, w.cols), packInts(dt, w.idx))
	var lb []byte
	if ldt == graph.F16 {
		lb = packF16(w.lut)
	} else {
		lb = packF32(w.lut)
	}
	lut := resConst(b, graph.Tensor(ldt, w.rows/w.gr, 1, int64(1)<<w.bits, 1), lb)
	return b.Op(graph.OpLUTToDense, idx, lut, b.Const(graph.DenseInts(graph.SI16, nil, []int64{0})))
}

func TestInterpLUTToDense(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, bits := range []int{4, 8} {
		m, f, b := interpModule()
		w := makeLUTWeight(rng, 64, 6, 32, bits)
		f.AddResult("w", w.value(b, graph.F16))
		got := mustRun(t, m, nil, nil)["w"]
		checkShape(t, "lut_to_dense", got, 64, 6)
		checkNear(t, "lut_to_dense", got.F, w.deq, 0)
	}
	// Groups along both dims: lut [2, 3, 4, 1] over ui8 indices [4, 6] (ui8 with 2^8 entries is
	// what the type rules demand, so use a 256-entry table and small indices).
	m, f, b := interpModule()
	idx := f.AddArg("i", graph.Tensor(graph.UI8, 4, 6))
	lv := make([]float64, 2*3*256)
	for i := range lv {
		lv[i] = float64(i)
	}
	lut := b.Const(graph.DenseFloats(graph.F32, []int64{2, 3, 256, 1}, lv))
	f.AddResult("w", b.Op(graph.OpLUTToDense, idx, lut, b.Const(graph.DenseInts(graph.SI16, nil, []int64{0}))))
	iv := make([]int64, 24)
	want := make([]float64, 24)
	for i := range iv {
		iv[i] = int64(i % 5)
		r, c := i/6, i%6
		want[i] = float64(((r/2)*3+c/2)*256) + float64(iv[i])
	}
	got := mustRun(t, m, map[string]*Array{"i": iarr(graph.UI8, []int64{4, 6}, iv...)}, nil)["w"]
	checkNear(t, "lut groups on both dims", got.F, want, 0)
}

// ---- fused products

// linearGraph builds y = x · Wᵀ (and optionally returns W), plus an embedding lookup of W.
func linearGraph(dt graph.DType, weight func(b *graph.Builder) *graph.Value, batch []int64, in int64, returnW bool) *graph.Module {
	m, f, b := interpModule()
	x := f.AddArg("x", graph.Tensor(dt, append(append([]int64{}, batch...), in)...))
	ids := f.AddArg("ids", graph.Tensor(graph.SI32, 1, 3))
	w := weight(b)
	f.AddResult("y", b.Matmul(x, b.Transpose(w, 1, 0)))
	f.AddResult("e", b.Op(graph.OpGatherND, w, b.Reshape(ids, 1, 3, 1)))
	if returnW {
		f.AddResult("w", w)
	}
	if b.Err() != nil {
		panic(b.Err())
	}
	return m
}

func TestInterpFusedMatchesUnfused(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	const rows, cols = 64, 96
	q8 := makeQWeight(rng, rows, cols, 1, 32, 127)
	q8c := makeQWeight(rng, rows, cols, 1, cols, 127)
	q4 := makeQWeight(rng, rows, cols, 1, 32, 7)
	l8 := makeLUTWeight(rng, rows, cols, 32, 8)
	l4 := makeLUTWeight(rng, rows, cols, 32, 4)
	dense := randVals(rng, rows*cols, 0.5)
	for i := range dense {
		dense[i] = f16round(dense[i])
	}
	cases := []struct {
		name   string
		weight func(b *graph.Builder, dt graph.DType) *graph.Value
		deq    []float64
	}{
		{"dense", func(b *graph.Builder, dt graph.DType) *graph.Value {
			if dt == graph.F16 {
				return resConst(b, graph.Tensor(graph.F16, rows, cols), packF16(dense))
			}
			return resConst(b, graph.Tensor(graph.F32, rows, cols), packF32(dense))
		}, dense},
		{"int8 block32", func(b *graph.Builder, dt graph.DType) *graph.Value { return q8.value(b, graph.SI8, dt) }, q8.deq},
		{"int8 per-channel", func(b *graph.Builder, dt graph.DType) *graph.Value { return q8c.value(b, graph.SI8, dt) }, q8c.deq},
		{"int4 block32", func(b *graph.Builder, dt graph.DType) *graph.Value { return q4.value(b, graph.SI4, dt) }, q4.deq},
		{"lut8 g32", func(b *graph.Builder, dt graph.DType) *graph.Value { return l8.value(b, dt) }, l8.deq},
		{"lut4 g32", func(b *graph.Builder, dt graph.DType) *graph.Value { return l4.value(b, dt) }, l4.deq},
	}
	batch := []int64{2, 3}
	xv := randVals(rng, 2*3*cols, 1)
	for i := range xv {
		xv[i] = f16round(xv[i])
	}
	ids := iarr(graph.SI32, []int64{1, 3}, 0, rows-1, 17)
	for _, c := range cases {
		for _, dt := range []graph.DType{graph.F32, graph.F16} {
			name := c.name + "/" + dt.String()
			build := func(returnW bool) *graph.Module {
				return linearGraph(dt, func(b *graph.Builder) *graph.Value { return c.weight(b, dt) }, batch, cols, returnW)
			}
			inputs := map[string]*Array{"x": farr(dt, []int64{2, 3, cols}, xv...), "ids": ids}
			fused, err := New(build(false), "main")
			if err != nil {
				t.Fatal(err)
			}
			// The fused plan runs two steps that touch the weight (matmul and gather) and never
			// the dequantization: no step other than those reads a weight-sized value.
			nFused := 0
			for _, st := range fused.plan.steps {
				if st.w != nil {
					nFused++
				}
				if st.op.Name == graph.OpBlockwise || st.op.Name == graph.OpLUTToDense || st.op.Name == graph.OpTranspose {
					t.Errorf("%s: %s executed in the fused plan", name, st.op.Name)
				}
			}
			if nFused != 2 {
				t.Fatalf("%s: %d fused steps, want 2", name, nFused)
			}
			unfused, err := newInterpreter(build(true), "main", interpOptions{noFuse: true})
			if err != nil {
				t.Fatal(err)
			}
			fo, err := fused.Run(inputs, nil)
			if err != nil {
				t.Fatal(name, err)
			}
			uo, err := unfused.Run(inputs, nil)
			if err != nil {
				t.Fatal(name, err)
			}
			// The unfused weight output is the dequantization (rounded to fp16 in an f16 graph).
			wantW := make([]float64, len(c.deq))
			for i, v := range c.deq {
				wantW[i] = v
				if dt == graph.F16 {
					wantW[i] = f16round(v)
				}
			}
			checkNear(t, name+" dequantized W", uo["w"].F, wantW, 0)
			// Gathered rows are identical either way.
			checkNear(t, name+" gather fused vs unfused", fo["e"].F, f64s(uo["e"].F), 0)
			checkNear(t, name+" gather", fo["e"].F, append(append(append([]float64{}, wantW[:cols]...), wantW[(rows-1)*cols:]...), wantW[17*cols:18*cols]...), 0)
			// Products: float64 reference with the exact weights; the tolerance scales with
			// Σ|x||w| of the row (the f32 accumulation error bound).
			want, _ := matmulRef(xv, []int64{6, cols}, transpose2(c.deq, rows, cols), []int64{cols, rows})
			scale := absProductMax(xv, c.deq, 6, rows, cols)
			checkShape(t, name, fo["y"], 2, 3, rows)
			tol := 1e-6 * scale
			if dt == graph.F16 {
				for i := range want {
					want[i] = f16round(want[i])
				}
				tol = 1e-3 * scale // fp16 output rounding (and the unfused fp16 weights)
			}
			checkNearAbs(t, name+" fused", fo["y"].F, want, tol)
			checkNearAbs(t, name+" unfused", uo["y"].F, want, tol)
			if dt == graph.F32 {
				checkNearAbs(t, name+" fused vs unfused", fo["y"].F, f64s(uo["y"].F), tol)
			}
		}
	}
}

// absProductMax is the largest Σ_k |x[v,k]·w[r,k]| over vectors v and rows r.
func absProductMax(x, w []float64, n, rows, cols int) float64 {
	m := 0.0
	for v := 0; v < n; v++ {
		for r := 0; r < rows; r++ {
			s := 0.0
			for k := 0; k < cols; k++ {
				s += math.Abs(x[v*cols+k] * w[r*cols+k])
			}
			m = math.Max(m, s)
		}
	}
	return m
}

func checkNearAbs(t *testing.T, name string, got []float32, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", name, len(got), len(want))
	}
	for i := range want {
		if d := math.Abs(float64(got[i]) - want[i]); !(d <= tol) {
			t.Fatalf("%s[%d] = %v, want %v (abs tol %g)", name, i, got[i], want[i], tol)
		}
	}
}

func transpose2(w []float64, rows, cols int) []float64 {
	out := make([]float64, len(w))
	for r := 0; r < rows; r++ {
		for c := 0; c < cols; c++ {
			out[c*rows+r] = w[r*cols+c]
		}
	}
	return out
}

// A weight that is also returned is materialised once, and the product still uses the kernel.
func TestInterpFusedWithReturnedWeight(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	q8 := makeQWeight(rng, 32, 64, 1, 32, 127)
	m := linearGraph(graph.F32, func(b *graph.Builder) *graph.Value { return q8.value(b, graph.SI8, graph.F32) }, []int64{1}, 64, true)
	it, err := New(m, "main")
	if err != nil {
		t.Fatal(err)
	}
	x := randVals(rng, 64, 1)
	out, err := it.Run(map[string]*Array{"x": farr(graph.F32, []int64{1, 64}, x...), "ids": iarr(graph.SI32, []int64{1, 3}, 0, 1, 2)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkNear(t, "returned W", out["w"].F, q8.deq, 0)
	want, _ := matmulRef(f64s(farr(graph.F32, []int64{1, 64}, x...).F), []int64{1, 64}, transpose2(q8.deq, 32, 64), []int64{64, 32})
	checkNearAbs(t, "product", out["y"].F, want, 1e-6*absProductMax(f64s(farr(graph.F32, []int64{1, 64}, x...).F), q8.deq, 1, 32, 64))
	for _, st := range it.plan.steps {
		if st.op.Name == graph.OpBlockwise || st.op.Name == graph.OpTranspose {
			t.Errorf("%s runs per call; the returned weight should be folded at plan time", st.op.Name)
		}
	}
}

// ---- states

func TestInterpStatePersists(t *testing.T) {
	m, f, b := interpModule()
	x := f.AddArg("x", graph.Tensor(graph.F32, 1, 4))
	h := f.AddState("s", graph.Tensor(graph.F32, 1, 4))
	tok := b.Op(graph.OpCreateToken)
	cur, tok := b.ReadState(h, tok)
	nv := b.Add(cur, x)
	f.AddResult("s", b.WriteState(h, nv, tok))
	f.AddResult("y", b.Mul(nv, b.Scalar(graph.F32, 2)))
	it, err := New(m, "main")
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]*Array{"s": farr(graph.F32, []int64{1, 4}, 1, 2, 3, 4)}
	in := map[string]*Array{"x": farr(graph.F32, []int64{1, 4}, 10, 20, 30, 40)}
	want := []float64{1, 2, 3, 4}
	for step := 0; step < 3; step++ {
		out, err := it.Run(in, states)
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			want[i] += float64(in["x"].F[i])
		}
		checkNear(t, "state", states["s"].F, want, 0)
		y := make([]float64, 4)
		for i := range y {
			y[i] = 2 * want[i]
		}
		checkNear(t, "y", out["y"].F, y, 0)
		if _, ok := out["s"]; ok {
			t.Error("token result returned")
		}
	}
}

// The pipelined KV pattern: read a cache with a dynamic dim, write a column at P-1 (from the
// position input's shape), read the columns back and write the state; the update runs in place.
func TestInterpStateSliceUpdateInPlace(t *testing.T) {
	m, f, b := interpModule()
	pos := f.AddArg("pos", graph.Tensor(graph.SI32, 1, graph.Dyn))
	x := f.AddArg("x", graph.Tensor(graph.F16, 2, 1))
	h := f.AddState("cache", graph.Tensor(graph.F16, 2, 2, graph.Dyn)) // [layer, row, position]
	tok := b.Op(graph.OpCreateToken)
	cache, tok := b.ReadState(h, tok)
	p := b.Cast(b.Typed(graph.OpSlice, graph.Tensor(graph.UI32, 1), b.Op(graph.OpGetShape, pos), b.I32s(1), b.I32s(2), b.I32s(1)), graph.SI32)
	pm1 := b.Sub(p, b.I32s(1))
	for layer := int64(0); layer < 2; layer++ {
		upd := b.Reshape(b.Mul(x, b.Scalar(graph.F16, float64(layer+1))), 1, 2, 1)
		cache = b.Op(graph.OpSliceUpdate, cache, upd, b.Concat(0, b.I32s(layer, 0), pm1), b.Concat(0, b.I32s(layer+1, 2), p), b.I32s(1, 1, 1))
		// read this layer's columns [0, P)
		cols := b.Op(graph.OpSlice, cache, b.I32s(layer, 0, 0), b.Concat(0, b.I32s(layer+1, 2), p), b.I32s(1, 1, 1))
		f.AddResult([]string{"sum0", "sum1"}[layer], b.ReduceSum(cols, 2))
	}
	f.AddResult("cache", b.WriteState(h, cache, tok))
	if b.Err() != nil {
		t.Fatal(b.Err())
	}
	it, err := New(m, "main")
	if err != nil {
		t.Fatal(err)
	}
	inPlace := 0
	for _, st := range it.plan.steps {
		if st.inPlace {
			inPlace++
		}
	}
	if inPlace != 2 {
		t.Errorf("%d slice_updates in place, want 2", inPlace)
	}
	const S = 4
	caller := NewArray(graph.F16, 2, 2, S)
	states := map[string]*Array{"cache": caller}
	sums := [2][2]float64{}
	for P := 1; P <= 3; P++ {
		xv := []float64{float64(P), 0.5 * float64(P)}
		out, err := it.Run(map[string]*Array{"pos": NewArray(graph.SI32, 1, int64(P)), "x": farr(graph.F16, []int64{2, 1}, xv...)}, states)
		if err != nil {
			t.Fatal(err)
		}
		for l := 0; l < 2; l++ {
			for r := 0; r < 2; r++ {
				sums[l][r] += xv[r] * float64(l+1)
			}
			checkNear(t, "column sums", out[[]string{"sum0", "sum1"}[l]].F, sums[l][:], 0)
		}
		c := states["cache"]
		checkShape(t, "cache", c, 2, 2, S)
		for l := 0; l < 2; l++ {
			for r := 0; r < 2; r++ {
				if got, want := c.F[(l*2+r)*S+P-1], xv[r]*float64(l+1); float64(got) != want {
					t.Fatalf("P=%d cache[%d,%d,%d] = %v, want %v", P, l, r, P-1, got, want)
				}
			}
		}
		if &c.F[0] != &caller.F[0] {
			t.Errorf("P=%d: the cache was copied, not updated in place", P)
		}
	}
}

// A state written from a computed value is handed over; the next run computes into a fresh
// buffer and reads the handed-over one.
func TestInterpStateHandOver(t *testing.T) {
	m, f, b := interpModule()
	h := f.AddState("s", graph.Tensor(graph.F32, 3))
	tok := b.Op(graph.OpCreateToken)
	cur, tok := b.ReadState(h, tok)
	nv := b.Add(b.Mul(cur, b.Scalar(graph.F32, 2)), b.Scalar(graph.F32, 1))
	f.AddResult("s", b.WriteState(h, nv, tok))
	f.AddResult("old", b.Add(cur, b.Scalar(graph.F32, 0)))
	it, err := New(m, "main")
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]*Array{"s": farr(graph.F32, []int64{3}, 0, 1, 2)}
	want := []float64{0, 1, 2}
	for step := 0; step < 5; step++ {
		out, err := it.Run(nil, states)
		if err != nil {
			t.Fatal(err)
		}
		checkNear(t, "old", out["old"].F, want, 0)
		for i := range want {
			want[i] = 2*want[i] + 1
		}
		checkNear(t, "state", states["s"].F, want, 0)
	}
}

// ---- invoke

func TestInterpInvoke(t *testing.T) {
	m, f, b := interpModule()
	g := graph.NewFunc("fma1")
	g.Private = true
	m.Funcs = append([]*graph.Func{g}, m.Funcs...)
	gb := graph.NewBuilder(m, g)
	ga := g.AddArg("a", graph.Tensor(graph.F32, 2))
	gc := g.AddArg("c", graph.Tensor(graph.F32, 2))
	g.AddResult("out", gb.Add(gb.Mul(ga, gc), gb.Splat(graph.F32, 1, 2)))
	x := f.AddArg("x", graph.Tensor(graph.F32, 2))
	y := f.AddArg("y", graph.Tensor(graph.F32, 2))
	r1 := b.OpAttrs(graph.OpInvoke, map[string]graph.Attr{"callee": graph.SymbolRefAttr{Name: "fma1"}}, x, y)
	r2 := b.OpAttrs(graph.OpInvoke, map[string]graph.Attr{"callee": graph.SymbolRefAttr{Name: "fma1"}}, r1, x)
	f.AddResult("r1", r1)
	f.AddResult("r2", r2)
	if b.Err() != nil || gb.Err() != nil {
		t.Fatal(b.Err(), gb.Err())
	}
	out := mustRun(t, m, map[string]*Array{"x": farr(graph.F32, []int64{2}, 2, 3), "y": farr(graph.F32, []int64{2}, 5, 7)}, nil)
	checkNear(t, "invoke 1", out["r1"].F, []float64{11, 22}, 0)
	checkNear(t, "invoke 2", out["r2"].F, []float64{23, 67}, 0)
}

// ---- errors

func TestInterpErrors(t *testing.T) {
	m, f, b := interpModule()
	x := f.AddArg("x", graph.Tensor(graph.F32, 2, graph.Dyn))
	y := b.Op(graph.OpExp, x)
	f.AddResult("y", y)
	h := f.AddState("s", graph.Tensor(graph.F32, 2))
	tok := b.Op(graph.OpCreateToken)
	s, tok := b.ReadState(h, tok)
	f.AddResult("s", b.WriteState(h, s, tok))
	it, err := New(m, "main")
	if err != nil {
		t.Fatal(err)
	}
	okState := map[string]*Array{"s": NewArray(graph.F32, 2)}
	cases := []struct {
		name   string
		inputs map[string]*Array
		states map[string]*Array
		want   string
	}{
		{"missing input", nil, okState, `input "x" is missing`},
		{"wrong shape", map[string]*Array{"x": NewArray(graph.F32, 3, 1)}, okState, `input "x" is f32[3 1], want tensor<2x?xf32>`},
		{"wrong dtype", map[string]*Array{"x": NewArray(graph.F16, 2, 1)}, okState, `input "x" is f16[2 1]`},
		{"short data", map[string]*Array{"x": {DType: graph.F32, Shape: []int64{2, 2}, F: make([]float32, 3)}}, okState, `input "x" f32[2 2] holds 3 elements`},
		{"unknown input", map[string]*Array{"x": NewArray(graph.F32, 2, 1), "z": NewArray(graph.F32, 1)}, okState, `unknown input "z"`},
		{"missing state", map[string]*Array{"x": NewArray(graph.F32, 2, 1)}, map[string]*Array{}, `state "s" is missing`},
		{"wrong state", map[string]*Array{"x": NewArray(graph.F32, 2, 1)}, map[string]*Array{"s": NewArray(graph.F32, 3)}, `state "s" is f32[3]`},
	}
	for _, c := range cases {
		_, err := it.Run(c.inputs, c.states)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
	// A result whose run-time shape contradicts its declared type is reported with the op.
	{
		m, f, b := interpModule()
		x := f.AddArg("x", graph.Tensor(graph.F32, 2, graph.Dyn))
		p := b.Cast(b.Typed(graph.OpSlice, graph.Tensor(graph.UI32, 1), b.Op(graph.OpGetShape, x), b.I32s(1), b.I32s(2), b.I32s(1)), graph.SI32)
		f.AddResult("y", b.Typed(graph.OpSlice, graph.Tensor(graph.F32, 2, 1), x, b.I32s(0, 0), b.Concat(0, b.I32s(2), p), b.I32s(1, 1)))
		if b.Err() != nil {
			t.Fatal(b.Err())
		}
		it, err := New(m, "main")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := it.Run(map[string]*Array{"x": NewArray(graph.F32, 2, 1)}, nil); err != nil {
			t.Errorf("declared shape met: %v", err)
		}
		_, err = it.Run(map[string]*Array{"x": NewArray(graph.F32, 2, 3)}, nil)
		if err == nil || !strings.Contains(err.Error(), "coreai.slice: result 0 is f32[2 3], want tensor<2x1xf32>") {
			t.Errorf("declared shape contradicted: %v", err)
		}
	}
	// An op the interpreter does not know is refused at plan time, by name.
	f.Append(graph.NewOp("coreai.frobnicate", []*graph.Value{x}, []graph.Type{x.Type}, nil))
	if _, err := New(m, "main"); err == nil || !strings.Contains(err.Error(), "coreai.frobnicate") {
		t.Errorf("unknown op: %v", err)
	}
	if _, err := New(m, "nope"); err == nil || !strings.Contains(err.Error(), "@nope") {
		t.Errorf("unknown function: %v", err)
	}
}

// slice_update must copy whenever the old value is still observable: read later, returned,
// re-read from the state before the write, or left in the state map without a write.
func TestInterpInPlaceSafety(t *testing.T) {
	type built struct {
		m       *graph.Module
		inPlace int // expected slice_updates planned in place
	}
	upd := func(b *graph.Builder, x *graph.Value, v float64) *graph.Value {
		return b.Op(graph.OpSliceUpdate, x, b.Splat(graph.F32, v, 1), b.I32s(1), b.I32s(2), b.I32s(1))
	}
	cases := []struct {
		name   string
		build  func() built
		outs   map[string][]float64
		states []float64
	}{
		{"old value read after the update", func() built {
			m, f, b := interpModule()
			h := f.AddState("s", graph.Tensor(graph.F32, 3))
			tok := b.Op(graph.OpCreateToken)
			cur, tok := b.ReadState(h, tok)
			nv := upd(b, cur, 9)
			f.AddResult("s", b.WriteState(h, nv, tok))
			f.AddResult("old", b.ReduceSum(cur, 0))
			return built{m, 0}
		}, map[string][]float64{"old": {6}}, []float64{1, 9, 3}},
		{"state re-read before the write", func() built {
			m, f, b := interpModule()
			h := f.AddState("s", graph.Tensor(graph.F32, 3))
			tok := b.Op(graph.OpCreateToken)
			cur, tok := b.ReadState(h, tok)
			nv := upd(b, cur, 9)
			again, tok := b.ReadState(h, tok)
			f.AddResult("again", b.ReduceSum(again, 0))
			f.AddResult("s", b.WriteState(h, nv, tok))
			return built{m, 0}
		}, map[string][]float64{"again": {6}}, []float64{1, 9, 3}},
		{"update never written back", func() built {
			m, f, b := interpModule()
			h := f.AddState("s", graph.Tensor(graph.F32, 3))
			tok := b.Op(graph.OpCreateToken)
			cur, tok := b.ReadState(h, tok)
			f.AddResult("s", b.WriteState(h, cur, tok))
			f.AddResult("y", upd(b, cur, 9))
			return built{m, 0}
		}, map[string][]float64{"y": {1, 9, 3}}, []float64{1, 2, 3}},
		{"returned operand", func() built {
			m, f, b := interpModule()
			x := f.AddArg("x", graph.Tensor(graph.F32, 3))
			e := b.Add(x, b.Splat(graph.F32, 0, 3))
			f.AddResult("e", e)
			f.AddResult("y", upd(b, e, 9))
			return built{m, 0}
		}, map[string][]float64{"e": {1, 2, 3}, "y": {1, 9, 3}}, nil},
		{"input operand", func() built {
			m, f, b := interpModule()
			x := f.AddArg("x", graph.Tensor(graph.F32, 3))
			f.AddResult("y", upd(b, x, 9))
			return built{m, 0}
		}, map[string][]float64{"y": {1, 9, 3}}, nil},
		{"dead temporary", func() built {
			m, f, b := interpModule()
			x := f.AddArg("x", graph.Tensor(graph.F32, 3))
			e := b.Add(x, b.Splat(graph.F32, 1, 3))
			f.AddResult("y", upd(b, upd(b, e, 9), 7))
			return built{m, 2}
		}, map[string][]float64{"y": {2, 7, 4}}, nil},
		{"per-layer read/write chain", func() built {
			m, f, b := interpModule()
			h := f.AddState("s", graph.Tensor(graph.F32, 3))
			tok := b.Op(graph.OpCreateToken)
			var cur *graph.Value
			for l := 0; l < 3; l++ {
				cur, tok = b.ReadState(h, tok)
				nv := b.Op(graph.OpSliceUpdate, cur, b.Splat(graph.F32, float64(10+l), 1), b.I32s(int64(l)), b.I32s(int64(l+1)), b.I32s(1))
				f.AddResult("sum"+string(rune('0'+l)), b.ReduceSum(nv, 0))
				tok = b.WriteState(h, nv, tok)
			}
			f.AddResult("s", tok)
			return built{m, 3}
		}, map[string][]float64{"sum0": {15}, "sum1": {24}, "sum2": {33}}, []float64{10, 11, 12}},
		{"written, then updated and written again", func() built {
			m, f, b := interpModule()
			x := f.AddArg("x", graph.Tensor(graph.F32, 3))
			h := f.AddState("s", graph.Tensor(graph.F32, 3))
			tok := b.Op(graph.OpCreateToken)
			_, tok = b.ReadState(h, tok)
			e := b.Add(x, b.Splat(graph.F32, 0, 3))
			tok = b.WriteState(h, e, tok)
			tok = b.WriteState(h, upd(b, e, 9), tok)
			f.AddResult("s", tok)
			return built{m, 1}
		}, nil, []float64{1, 9, 3}},
		{"written, then updated but not written", func() built {
			m, f, b := interpModule()
			x := f.AddArg("x", graph.Tensor(graph.F32, 3))
			h := f.AddState("s", graph.Tensor(graph.F32, 3))
			tok := b.Op(graph.OpCreateToken)
			_, tok = b.ReadState(h, tok)
			e := b.Add(x, b.Splat(graph.F32, 0, 3))
			f.AddResult("s", b.WriteState(h, e, tok))
			f.AddResult("y", upd(b, e, 9))
			return built{m, 0}
		}, map[string][]float64{"y": {1, 9, 3}}, []float64{1, 2, 3}},
	}
	for _, c := range cases {
		bt := c.build()
		it, err := New(bt.m, "main")
		if err != nil {
			t.Fatal(c.name, err)
		}
		n := 0
		for _, st := range it.plan.steps {
			if st.inPlace {
				n++
			}
		}
		if n != bt.inPlace {
			t.Errorf("%s: %d updates in place, want %d\n%s", c.name, n, bt.inPlace, it.plan.describeKinds())
		}
		for run := 0; run < 2; run++ {
			states := map[string]*Array{"s": farr(graph.F32, []int64{3}, 1, 2, 3)}
			inputs := map[string]*Array{}
			if bt.m.Funcs[0].Arg("x") != nil {
				inputs["x"] = farr(graph.F32, []int64{3}, 1, 2, 3)
			}
			out, err := it.Run(inputs, states)
			if err != nil {
				t.Fatal(c.name, err)
			}
			for k, want := range c.outs {
				checkNear(t, c.name+" "+k, out[k].F, want, 0)
			}
			if c.states != nil {
				checkNear(t, c.name+" state", states["s"].F, c.states, 0)
			}
		}
	}
}

// After the first call, Run allocates nothing: buffers are reused per value, states update in
// place, and the per-op index arithmetic stays on the stack.
func TestInterpSteadyStateAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	q8 := makeQWeight(rng, 64, 64, 1, 32, 127)
	m, f, b := interpModule()
	x := f.AddArg("x", graph.Tensor(graph.F16, 1, 1, 64))
	pos := f.AddArg("pos", graph.Tensor(graph.SI32, 1, graph.Dyn))
	h := f.AddState("s", graph.Tensor(graph.F16, 2, 64, graph.Dyn))
	tok := b.Op(graph.OpCreateToken)
	cur, tok := b.ReadState(h, tok)
	y := b.Matmul(x, b.Transpose(q8.value(b, graph.SI8, graph.F16), 1, 0))
	y = b.Op(graph.OpSilu, y)
	y = b.Mul(y, b.Splat(graph.F16, 0.5, 64))
	xf := b.Cast(y, graph.F32)
	ms := b.ReduceMean(b.Mul(xf, xf), 2)
	y = b.Cast(b.Mul(xf, b.Op(graph.OpRsqrt, b.Add(ms, b.Scalar(graph.F32, 1e-6)))), graph.F16)
	p := b.Cast(b.Typed(graph.OpSlice, graph.Tensor(graph.UI32, 1), b.Op(graph.OpGetShape, pos), b.I32s(1), b.I32s(2), b.I32s(1)), graph.SI32)
	cur = b.Op(graph.OpSliceUpdate, cur, b.Reshape(y, 1, 64, 1), b.Concat(0, b.I32s(0, 0), b.Sub(p, b.I32s(1))), b.Concat(0, b.I32s(1, 64), p), b.I32s(1, 1, 1))
	f.AddResult("s", b.WriteState(h, cur, tok))
	f.AddResult("y", b.Op(graph.OpSoftmax, y, b.I32(-1)))
	if b.Err() != nil {
		t.Fatal(b.Err())
	}
	it, err := New(m, "main")
	if err != nil {
		t.Fatal(err)
	}
	in := map[string]*Array{"x": NewArray(graph.F16, 1, 1, 64), "pos": NewArray(graph.SI32, 1, 3)}
	st := map[string]*Array{"s": NewArray(graph.F16, 2, 64, 8)}
	allocs := testing.AllocsPerRun(50, func() {
		if _, err := it.Run(in, st); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per Run in steady state, want 0", allocs)
	}
}

// Contiguous slices alias their operand; strided ones copy. Either way an update of the operand
// must not show through, and a slice written to a state must hold its own values.
func TestInterpSliceViews(t *testing.T) {
	// A view of a temporary is read after the temporary is updated: no update in place.
	m, f, b := interpModule()
	x := f.AddArg("x", graph.Tensor(graph.F32, 2, 3))
	e := b.Add(x, b.Splat(graph.F32, 0, 2, 3))
	row := b.Slice(e, []int64{1, 0}, []int64{2, 3}) // contiguous: a view
	col := b.Slice(e, []int64{0, 1}, []int64{2, 2}) // strided: a copy
	y := b.Op(graph.OpSliceUpdate, e, b.Splat(graph.F32, -1, 2, 3), b.I32s(0, 0), b.I32s(2, 3), b.I32s(1, 1))
	f.AddResult("y", y)
	f.AddResult("row", b.Mul(row, b.Scalar(graph.F32, 1)))
	f.AddResult("col", b.Mul(col, b.Scalar(graph.F32, 1)))
	if b.Err() != nil {
		t.Fatal(b.Err())
	}
	it, err := New(m, "main")
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range it.plan.steps {
		if st.inPlace {
			t.Error("update in place while a view of its operand is read later")
		}
	}
	out, err := it.Run(map[string]*Array{"x": farr(graph.F32, []int64{2, 3}, 1, 2, 3, 4, 5, 6)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkNear(t, "y", out["y"].F, []float64{-1, -1, -1, -1, -1, -1}, 0)
	checkNear(t, "row", out["row"].F, []float64{4, 5, 6}, 0)
	checkNear(t, "col", out["col"].F, []float64{2, 5}, 0)

	// Shift registers: the state keeps the middle two (a contiguous slice) or the second column
	// of [[s0, s1], [x0, x1]] (a strided slice) of the state and the input.
	for _, strided := range []bool{false, true} {
		m, f, b := interpModule()
		x := f.AddArg("x", graph.Tensor(graph.F32, 2))
		h := f.AddState("s", graph.Tensor(graph.F32, 2))
		tok := b.Op(graph.OpCreateToken)
		cur, tok := b.ReadState(h, tok)
		cat := b.Concat(0, cur, x) // [s0, s1, x0, x1]
		next := b.Slice(cat, []int64{1}, []int64{3})
		if strided {
			next = b.Reshape(b.Slice(b.Reshape(cat, 2, 2), []int64{0, 1}, []int64{2, 2}), 2)
		}
		f.AddResult("s", b.WriteState(h, next, tok))
		f.AddResult("cat", cat)
		if b.Err() != nil {
			t.Fatal(b.Err())
		}
		it, err := New(m, "main")
		if err != nil {
			t.Fatal(err)
		}
		states := map[string]*Array{"s": farr(graph.F32, []int64{2}, 1, 2)}
		s := []float64{1, 2}
		for step := 0; step < 4; step++ {
			xv := []float64{float64(10 * step), float64(10*step + 1)}
			out, err := it.Run(map[string]*Array{"x": farr(graph.F32, []int64{2}, xv...)}, states)
			if err != nil {
				t.Fatal(err)
			}
			cat := append(append([]float64{}, s...), xv...)
			checkNear(t, "cat", out["cat"].F, cat, 0)
			s = []float64{cat[1], cat[2]}
			if strided {
				s = []float64{cat[1], cat[3]}
			}
			checkNear(t, fmt.Sprintf("strided=%v state", strided), states["s"].F, s, 0)
		}
	}
}

func TestInterpEachRange(t *testing.T) {
	bc := makeBcast([]int64{3, 1, 5, 4}, []int64{2, 1, 4})
	want := make([][3]int, bc.total)
	bc.each(func(o, ao, bo, n, sa, sb int) {
		for i := 0; i < n; i++ {
			want[o+i] = [3]int{o + i, ao + i*sa, bo + i*sb}
		}
	})
	for _, r := range [][2]int{{0, 1}, {3, 17}, {5, 40}, {39, 120}, {0, 120}, {119, 120}} {
		bc.eachRange(r[0], r[1], func(o, ao, bo, n, sa, sb int) {
			for i := 0; i < n; i++ {
				if o+i < r[0] || o+i >= r[1] || want[o+i] != [3]int{o + i, ao + i*sa, bo + i*sb} {
					t.Fatalf("range %v: element %d at operands (%d, %d), want %v", r, o+i, ao+i*sa, bo+i*sb, want[o+i])
				}
			}
		})
	}
}

// A matmul by transpose(b, swap last two) reads b's rows directly; the result equals the
// unfused (materialised transpose) form exactly and a float64 reference closely.
func TestInterpMatmulTransposedOperand(t *testing.T) {
	m := &graph.Module{}
	f := graph.NewFunc("main")
	m.Funcs = append(m.Funcs, f)
	b := graph.NewBuilder(m, f)
	x := f.AddArg("x", graph.Tensor(graph.F32, 2, 3, 5))
	k := f.AddArg("k", graph.Tensor(graph.F32, 2, 7, 5))
	f.AddResult("y", b.Matmul(x, b.Transpose(k, 0, 2, 1)))
	if b.Err() != nil {
		t.Fatal(b.Err())
	}
	xa, ka := NewArray(graph.F32, 2, 3, 5), NewArray(graph.F32, 2, 7, 5)
	for i := range xa.F {
		xa.F[i] = float32(i%7) - 2.5
	}
	for i := range ka.F {
		ka.F[i] = float32(i%5)*0.5 - 1
	}
	run := func(opt interpOptions) []float32 {
		it, err := newInterpreter(m, "main", opt)
		if err != nil {
			t.Fatal(err)
		}
		out, err := it.Run(map[string]*Array{"x": xa, "k": ka}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range it.plan.steps {
			if st.op.Name == graph.OpTranspose && !opt.noFuse {
				t.Error("the transpose still runs")
			}
		}
		return append([]float32(nil), out["y"].F...)
	}
	fused, plain := run(interpOptions{}), run(interpOptions{noFuse: true})
	for bi := 0; bi < 2; bi++ {
		for i := 0; i < 3; i++ {
			for j := 0; j < 7; j++ {
				var want float64
				for c := 0; c < 5; c++ {
					want += float64(xa.F[(bi*3+i)*5+c]) * float64(ka.F[(bi*7+j)*5+c])
				}
				got := fused[(bi*3+i)*7+j]
				if math.Abs(float64(got)-want) > 1e-5 || got != plain[(bi*3+i)*7+j] {
					t.Fatalf("[%d,%d,%d]: fused %v, unfused %v, reference %v", bi, i, j, got, plain[(bi*3+i)*7+j], want)
				}
			}
		}
	}
}
