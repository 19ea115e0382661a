package interp

import (
	"math"
	"testing"

	"qconv/graph"
	"qconv/internal/kernels"
)

// bf16 results are rounded to bf16 (ties to even, overflow to Inf, subnormals kept, NaN kept),
// casts go f32 -> bf16 -> f16 through both roundings, and a bf16 dequantized weight is rounded to
// bf16 before the product, fused or not.
func TestBF16Numerics(t *testing.T) {
	m := &graph.Module{}
	f := graph.NewFunc("main")
	m.Funcs = []*graph.Func{f}
	b := graph.NewBuilder(m, f)
	x := f.AddArg("x", graph.Tensor(graph.F32, 8))
	xb := b.Cast(x, graph.BF16)
	f.AddResult("bf16", xb)
	f.AddResult("f16", b.Cast(xb, graph.F16))
	// 1 + 2^-8 is exactly half a bf16 ulp above 1: a sum that lands there rounds to even (1).
	f.AddResult("sum", b.Add(b.Const(graph.DenseFloats(graph.BF16, []int64{2}, []float64{1, 1 + 0x1p-7})), b.Scalar(graph.BF16, 0x1p-8)))
	// int8 weights [2, 32] with one bf16 scale per row: q·s = 127 · (1 + 2^-7) = 127.9921875 is
	// not a bf16; the bf16 weight is 128. -126 · (1 + 2^-7) = -126.984375 is -127 in bf16. A
	// product with [1, 1, 0, ...] is then 1, where the unrounded weights give 1 + 2^-7 (a bf16:
	// the result's rounding cannot hide the difference).
	q := make([]int64, 64)
	q[0], q[1], q[32] = 127, -126, -3
	w := b.Op(graph.OpBlockwise, b.Const(graph.DenseInts(graph.SI8, []int64{2, 32}, q)),
		b.Const(graph.DenseFloats(graph.BF16, []int64{2, 1}, []float64{1 + 0x1p-7, 0.5})),
		b.SplatInt(graph.SI8, 0, 2, 1), b.Splat(graph.BF16, 0, 2, 1))
	f.AddResult("w", w)
	e := f.AddArg("e", graph.Tensor(graph.BF16, 1, 32))
	f.AddResult("mm", b.Matmul(e, b.Transpose(w, 1, 0))) // fused: the weight is never materialised
	if b.Err() != nil {
		t.Fatal(b.Err())
	}
	it, err := New(m, "main")
	if err != nil {
		t.Fatal(err)
	}
	in := NewArray(graph.F32, 8)
	copy(in.F, []float32{
		1 + 0x1p-8 + 0x1p-20, // above the tie: up
		1 + 3*0x1p-8,         // tie from odd: up to 1 + 2^-6
		3.4e38,               // overflows bf16
		1e-40,                // a bf16 subnormal (9.18e-41 · 1)
		float32(math.NaN()),
		-70000,  // a bf16 (-70144: 137 ulps of 512) that overflows fp16
		0x1p-25, // bf16 exact, fp16 rounds it to 0 (ties to even at half the smallest subnormal)
		-0.1,
	})
	e1 := NewArray(graph.BF16, 1, 32)
	e1.F[0], e1.F[1] = 1, 1
	out, err := it.Run(map[string]*Array{"x": in, "e": e1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	inf := float32(math.Inf(1))
	check := func(name string, want []float32) {
		t.Helper()
		got := out[name].F
		for i := range want {
			if !(got[i] == want[i] || got[i] != got[i] && want[i] != want[i]) || math.Signbit(float64(got[i])) != math.Signbit(float64(want[i])) {
				t.Errorf("%s[%d] = %v (%#08x), want %v", name, i, got[i], math.Float32bits(got[i]), want[i])
			}
		}
	}
	nan := float32(math.NaN())
	check("bf16", []float32{1 + 0x1p-7, 1 + 0x1p-6, inf, math.Float32frombits(0x00010000), nan, -70144, 0x1p-25, -0.10009765625})
	check("f16", []float32{1 + 0x1p-7, 1 + 0x1p-6, inf, 0, nan, -inf, 0, -0.10009765625})
	check("sum", []float32{1, 1 + 0x1p-6})
	check("w", []float32{128, -127, 0, 0})
	if w := out["w"].F; w[32] != -1.5 {
		t.Errorf("w[1,0] = %v, want -1.5", w[32])
	}
	check("mm", []float32{1, -1.5})
	fused := false
	for _, st := range it.plan.steps {
		fused = fused || st.op.Name == graph.OpMatmul && st.w != nil
	}
	if !fused {
		t.Error("the matmul with the constant blockwise weight was not fused; the test checks the fused path")
	}
}

// The interpreter's vector rounding (kernels.RoundBF16) equals graph.RoundBF16, the rule's
// owner, on products of int8 values and scales (subnormal, huge, overflowing, Inf and NaN scales,
// NaN payloads that would carry into the sign under the plain increment) and on random bit
// patterns, at a length with a scalar tail.
func TestKernelRoundBF16(t *testing.T) {
	var in []float32
	for _, s := range []float32{1, 1 + 0x1p-7, 0.0123, 3e-39, 1e-45, 3.3e38, float32(math.Inf(-1)), float32(math.NaN()), 0,
		math.Float32frombits(0x7fffe000), math.Float32frombits(0xffffffff)} {
		for q := -128; q < 128; q++ {
			in = append(in, float32(q)*s)
		}
	}
	u := uint32(12345)
	for range 1<<14 + 3 {
		u = u*1664525 + 1013904223
		in = append(in, math.Float32frombits(u))
	}
	in = append(in, math.Float32frombits(0x7f800001), math.Float32frombits(0xff800001))
	x := append([]float32(nil), in...)
	roundBF16(x)
	for i, v := range in {
		if want := graph.RoundBF16(v); math.Float32bits(x[i]) != math.Float32bits(want) {
			t.Fatalf("bf16(%#08x) = %#08x, want %#08x", math.Float32bits(v), math.Float32bits(x[i]), math.Float32bits(want))
		}
	}
}

// The cost of rounding a dequantized weight to bf16 in a fused product: an int8 block-32
// [2048, 1024] weight times one vector, as the fp16 graphs run it (Q8Matrix) and as a bf16
// graph does (bf16Matrix over the same Q8Matrix).
func BenchmarkFusedInt8BF16(b *testing.B) {
	const R, C = 2048, 1024
	q := make([]byte, R*C)
	for i := range q {
		q[i] = byte(i * 7)
	}
	s := make([]byte, 2*R*C/32)
	for i := 0; i < len(s); i += 2 {
		s[i], s[i+1] = 0x00, 0x20 // fp16 2^-7
	}
	m, err := kernels.NewQ8Matrix(q, s, R, C, 1, 32)
	if err != nil {
		b.Fatal(err)
	}
	x := make([]float32, C)
	for i := range x {
		x[i] = float32(i%13) - 6
	}
	dst := make([]float32, R)
	for _, c := range []struct {
		name string
		m    kernels.Matrix
	}{{"fp16-Q8", m}, {"bf16-rounded", bf16Matrix{m}}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(R * C)
			for i := 0; i < b.N; i++ {
				c.m.MulRows(dst, x, 1, 0, R)
			}
		})
	}
}
