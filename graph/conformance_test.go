package graph

import (
	"bytes"
	"strings"
	"testing"
)

// Conformance with Apple's printed IR (docs/coreai-conformance.md). Each row builds the op the way
// qconv's lowering does, with the operand shapes of the Apple test that prints it, and requires
// qconv's printed operand and result types to equal the types in Apple's FileCheck line: op name,
// operand order, index dtypes (si32 vs ui32), scalar vs vector axes and kept reduction dims.
// Source: apple/coreai-torch, tests/ops/test_ops_ir.py unless the row says otherwise.
func TestConformanceWithApplePrints(t *testing.T) {
	f32 := func(s ...int64) Type { return Tensor(F32, s...) }
	rows := []struct {
		op    string
		build func(b *Builder, f *Func) *Value
		apple string // the type signature Apple's test prints, in generic form
	}{
		{OpSliceUpdate, func(b *Builder, f *Func) *Value {
			return b.Op(OpSliceUpdate, f.AddArg("x", f32(2, 4, 3)), f.AddArg("u", f32(2, 2, 3)), b.I32s(0, 1, 0), b.I32s(2, 3, 3), b.I32s(1, 1, 1))
		}, "(tensor<2x4x3xf32>, tensor<2x2x3xf32>, tensor<3xsi32>, tensor<3xsi32>, tensor<3xsi32>) -> tensor<2x4x3xf32>"},
		{OpConcat, func(b *Builder, f *Func) *Value {
			return b.Concat(0, f.AddArg("a", Tensor(UI32, 4)), f.AddArg("b", Tensor(UI32, 1)), f.AddArg("c", Tensor(UI32, 1)))
		}, "(tensor<si32>, tensor<4xui32>, tensor<1xui32>, tensor<1xui32>) -> tensor<6xui32>"},
		{OpSoftmax, func(b *Builder, f *Func) *Value { return b.Op(OpSoftmax, f.AddArg("x", f32(2, 5)), b.I32(1)) },
			"(tensor<2x5xf32>, tensor<si32>) -> tensor<2x5xf32>"},
		{OpReduceMean, func(b *Builder, f *Func) *Value { return b.ReduceMean(f.AddArg("x", f32(2, 3)), 1) },
			"(tensor<2x3xf32>, tensor<1xsi32>) -> tensor<2x1xf32>"},
		{OpReduceSum, func(b *Builder, f *Func) *Value { return b.ReduceSum(f.AddArg("x", f32(2, 3)), 1) },
			"(tensor<2x3xf32>, tensor<1xsi32>) -> tensor<2x1xf32>"},
		{OpReduceMax, func(b *Builder, f *Func) *Value { return b.Op(OpReduceMax, f.AddArg("x", f32(2, 3)), b.I32s(1)) },
			"(tensor<2x3xf32>, tensor<1xsi32>) -> tensor<2x1xf32>"},
		{OpArgmax, func(b *Builder, f *Func) *Value { return b.Op(OpArgmax, f.AddArg("x", f32(2, 5)), b.I32(1)) },
			"(tensor<2x5xf32>, tensor<si32>) -> tensor<2x1xui32>"},
		{OpGatherND, func(b *Builder, f *Func) *Value {
			return b.Op(OpGatherND, f.AddArg("t", f32(10, 4)), f.AddArg("i", Tensor(SI32, 2, 3, 1)))
		}, "(tensor<10x4xf32>, tensor<2x3x1xsi32>) -> tensor<2x3x4xf32>"},
		{OpTranspose, func(b *Builder, f *Func) *Value { return b.Transpose(f.AddArg("x", f32(3, 4)), 1, 0) },
			"(tensor<3x4xf32>, tensor<2xui32>) -> tensor<4x3xf32>"},
		{OpReshape, func(b *Builder, f *Func) *Value { return b.Reshape(f.AddArg("x", f32(3)), 1, 3, 1, 1) },
			"(tensor<3xf32>, tensor<4xui32>) -> tensor<1x3x1x1xf32>"},
		{OpShrinkDims, func(b *Builder, f *Func) *Value { return b.Op(OpShrinkDims, f.AddArg("x", f32(Dyn, 1)), b.I32s(1)) },
			"(tensor<?x1xf32>, tensor<1xsi32>) -> tensor<?xf32>"},
		{OpGetShape, func(b *Builder, f *Func) *Value { return b.Op(OpGetShape, f.AddArg("x", f32(Dyn, Dyn))) },
			"(tensor<?x?xf32>) -> tensor<2xui32>"},
		{OpCast, func(b *Builder, f *Func) *Value { return b.Cast(f.AddArg("x", f32(2, 3)), F16) },
			"(tensor<2x3xf32>) -> tensor<2x3xf16>"},
		{OpSlice, func(b *Builder, f *Func) *Value {
			return b.Slice(f.AddArg("x", Tensor(UI32, 2)), []int64{1}, []int64{2})
		}, "(tensor<2xui32>, tensor<1xsi32>, tensor<1xsi32>, tensor<1xsi32>) -> tensor<1xui32>"},
		{OpMatmul, func(b *Builder, f *Func) *Value {
			return b.Matmul(f.AddArg("a", f32(2, 3, 4)), f.AddArg("b", f32(2, 4, 5)))
		},
			"(tensor<2x3x4xf32>, tensor<2x4x5xf32>) -> tensor<2x3x5xf32>"},
		{OpMax, func(b *Builder, f *Func) *Value { return b.Op(OpMax, f.AddArg("x", f32(2, 3)), b.Scalar(F32, 0)) },
			"(tensor<2x3xf32>, tensor<f32>) -> tensor<2x3xf32>"},
		{OpAdd, func(b *Builder, f *Func) *Value { return b.Add(f.AddArg("x", f32(2, 4)), b.Scalar(F32, 1)) },
			"(tensor<2x4xf32>, tensor<f32>) -> tensor<2x4xf32>"}, // tests/test_stateful.py
		{OpMul, func(b *Builder, f *Func) *Value { return b.Mul(f.AddArg("x", f32(2, 4)), f.AddArg("y", f32(2, 4))) },
			"(tensor<2x4xf32>, tensor<2x4xf32>) -> tensor<2x4xf32>"},
		{OpSub, func(b *Builder, f *Func) *Value { return b.Sub(f.AddArg("x", f32(2, 5)), f.AddArg("y", f32(2, 1))) },
			"(tensor<2x5xf32>, tensor<2x1xf32>) -> tensor<2x5xf32>"},
		{OpDiv, func(b *Builder, f *Func) *Value { return b.Div(f.AddArg("x", f32(1, 3, 2, 2)), b.Scalar(F32, 4)) },
			"(tensor<1x3x2x2xf32>, tensor<f32>) -> tensor<1x3x2x2xf32>"},
		{OpSigmoid, func(b *Builder, f *Func) *Value { return b.Op(OpSigmoid, f.AddArg("x", f32(Dyn, Dyn))) },
			"(tensor<?x?xf32>) -> tensor<?x?xf32>"},
	}
	for _, op := range []string{OpRsqrt, OpExp, OpLog, OpSin, OpCos} { // the unary table
		rows = append(rows, struct {
			op    string
			build func(b *Builder, f *Func) *Value
			apple string
		}{op, func(b *Builder, f *Func) *Value { return b.Op(op, f.AddArg("x", f32(2, 3))) }, "(tensor<2x3xf32>) -> tensor<2x3xf32>"})
	}
	for _, r := range rows {
		m := &Module{}
		f := NewFunc("main")
		m.Funcs = append(m.Funcs, f)
		b := NewBuilder(m, f)
		f.AddResult("y", r.build(b, f))
		if b.Err() != nil {
			t.Fatalf("%s: %v", r.op, b.Err())
		}
		if err := Verify(m, VerifyOptions{}); err != nil {
			t.Fatalf("%s: %v", r.op, err)
		}
		var text bytes.Buffer
		if err := WriteText(&text, m); err != nil {
			t.Fatal(err)
		}
		var line string
		for _, l := range strings.Split(text.String(), "\n") {
			if strings.Contains(l, `"`+r.op+`"(`) {
				line = l
			}
		}
		if line == "" {
			t.Fatalf("%s: not printed:\n%s", r.op, text.String())
		}
		_, sig, _ := strings.Cut(line, ") : ")
		if sig != r.apple {
			t.Errorf("%s prints %s, Apple's test prints %s", r.op, sig, r.apple)
		}
	}
}

// States follow tests/test_stateful.py: a !coreai.handle argument carrying
// {MutableBuffers.buffer_mutation = name, coreai.name = name}, read by read_handle(handle, token)
// -> (tensor, token), written by write_handle(handle, tensor, token) -> token, returned as a
// !coreai.token result named like the state; create_token() -> !coreai.token starts the chain.
func TestConformanceStates(t *testing.T) {
	m, _ := stateGraph(Tensor(F32, 1, 4), func(b *Builder, cur, x *Value) *Value { return b.Add(cur, x) })
	var text bytes.Buffer
	if err := WriteText(&text, m); err != nil {
		t.Fatal(err)
	}
	s := text.String()
	for _, want := range []string{
		`"coreai.create_token"() : () -> !coreai.token`,
		`"coreai.read_handle"(%arg1, %0) : (!coreai.handle<tensor<1x4xf32>>, !coreai.token) -> (tensor<1x4xf32>, !coreai.token)`,
		`: (!coreai.handle<tensor<1x4xf32>>, tensor<1x4xf32>, !coreai.token) -> !coreai.token`,
		`{MutableBuffers.buffer_mutation = "recState", coreai.name = "recState"}`,
		`{coreai.name = "x"}`,
		`"coreai.graph"()`,
		`"coreai.output"(`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("printed module lacks %q:\n%s", want, s)
		}
	}
}
