package mlir

import (
	"bytes"
	"strings"
	"testing"

	"qconv/graph"
)

// Conformance with Apple's printed IR (docs/coreai-conformance.md). Each row builds the op the way
// qconv's lowering does, with the operand shapes of the Apple test that prints it, and requires
// qconv's printed operand and result types to equal the types in Apple's FileCheck line: op name,
// operand order, index dtypes (si32 vs ui32), scalar vs vector axes and kept reduction dims.
// Source: apple/coreai-torch, tests/ops/test_ops_ir.py unless the row says otherwise.
func TestConformanceWithApplePrints(t *testing.T) {
	f32 := func(s ...int64) graph.Type { return graph.Tensor(graph.F32, s...) }
	rows := []struct {
		op    string
		build func(b *graph.Builder, f *graph.Func) *graph.Value
		apple string // the type signature Apple's test prints, in generic form
	}{
		{graph.OpSliceUpdate, func(b *graph.Builder, f *graph.Func) *graph.Value {
			return b.Op(graph.OpSliceUpdate, f.AddArg("x", f32(2, 4, 3)), f.AddArg("u", f32(2, 2, 3)), b.I32s(0, 1, 0), b.I32s(2, 3, 3), b.I32s(1, 1, 1))
		}, "(tensor<2x4x3xf32>, tensor<2x2x3xf32>, tensor<3xsi32>, tensor<3xsi32>, tensor<3xsi32>) -> tensor<2x4x3xf32>"},
		{graph.OpConcat, func(b *graph.Builder, f *graph.Func) *graph.Value {
			return b.Concat(0, f.AddArg("a", graph.Tensor(graph.UI32, 4)), f.AddArg("b", graph.Tensor(graph.UI32, 1)), f.AddArg("c", graph.Tensor(graph.UI32, 1)))
		}, "(tensor<si32>, tensor<4xui32>, tensor<1xui32>, tensor<1xui32>) -> tensor<6xui32>"},
		{graph.OpSoftmax, func(b *graph.Builder, f *graph.Func) *graph.Value {
			return b.Op(graph.OpSoftmax, f.AddArg("x", f32(2, 5)), b.I32(1))
		},
			"(tensor<2x5xf32>, tensor<si32>) -> tensor<2x5xf32>"},
		{graph.OpReduceMean, func(b *graph.Builder, f *graph.Func) *graph.Value { return b.ReduceMean(f.AddArg("x", f32(2, 3)), 1) },
			"(tensor<2x3xf32>, tensor<1xsi32>) -> tensor<2x1xf32>"},
		{graph.OpReduceSum, func(b *graph.Builder, f *graph.Func) *graph.Value { return b.ReduceSum(f.AddArg("x", f32(2, 3)), 1) },
			"(tensor<2x3xf32>, tensor<1xsi32>) -> tensor<2x1xf32>"},
		{graph.OpReduceMax, func(b *graph.Builder, f *graph.Func) *graph.Value {
			return b.Op(graph.OpReduceMax, f.AddArg("x", f32(2, 3)), b.I32s(1))
		},
			"(tensor<2x3xf32>, tensor<1xsi32>) -> tensor<2x1xf32>"},
		{graph.OpArgmax, func(b *graph.Builder, f *graph.Func) *graph.Value {
			return b.Op(graph.OpArgmax, f.AddArg("x", f32(2, 5)), b.I32(1))
		},
			"(tensor<2x5xf32>, tensor<si32>) -> tensor<2x1xui32>"},
		{graph.OpGatherND, func(b *graph.Builder, f *graph.Func) *graph.Value {
			return b.Op(graph.OpGatherND, f.AddArg("t", f32(10, 4)), f.AddArg("i", graph.Tensor(graph.SI32, 2, 3, 1)))
		}, "(tensor<10x4xf32>, tensor<2x3x1xsi32>) -> tensor<2x3x4xf32>"},
		{graph.OpTranspose, func(b *graph.Builder, f *graph.Func) *graph.Value { return b.Transpose(f.AddArg("x", f32(3, 4)), 1, 0) },
			"(tensor<3x4xf32>, tensor<2xui32>) -> tensor<4x3xf32>"},
		{graph.OpReshape, func(b *graph.Builder, f *graph.Func) *graph.Value {
			return b.Reshape(f.AddArg("x", f32(3)), 1, 3, 1, 1)
		},
			"(tensor<3xf32>, tensor<4xui32>) -> tensor<1x3x1x1xf32>"},
		{graph.OpShrinkDims, func(b *graph.Builder, f *graph.Func) *graph.Value {
			return b.Op(graph.OpShrinkDims, f.AddArg("x", f32(graph.Dyn, 1)), b.I32s(1))
		},
			"(tensor<?x1xf32>, tensor<1xsi32>) -> tensor<?xf32>"},
		{graph.OpGetShape, func(b *graph.Builder, f *graph.Func) *graph.Value {
			return b.Op(graph.OpGetShape, f.AddArg("x", f32(graph.Dyn, graph.Dyn)))
		},
			"(tensor<?x?xf32>) -> tensor<2xui32>"},
		{graph.OpCast, func(b *graph.Builder, f *graph.Func) *graph.Value { return b.Cast(f.AddArg("x", f32(2, 3)), graph.F16) },
			"(tensor<2x3xf32>) -> tensor<2x3xf16>"},
		{graph.OpSlice, func(b *graph.Builder, f *graph.Func) *graph.Value {
			return b.Slice(f.AddArg("x", graph.Tensor(graph.UI32, 2)), []int64{1}, []int64{2})
		}, "(tensor<2xui32>, tensor<1xsi32>, tensor<1xsi32>, tensor<1xsi32>) -> tensor<1xui32>"},
		{graph.OpMatmul, func(b *graph.Builder, f *graph.Func) *graph.Value {
			return b.Matmul(f.AddArg("a", f32(2, 3, 4)), f.AddArg("b", f32(2, 4, 5)))
		},
			"(tensor<2x3x4xf32>, tensor<2x4x5xf32>) -> tensor<2x3x5xf32>"},
		{graph.OpMax, func(b *graph.Builder, f *graph.Func) *graph.Value {
			return b.Op(graph.OpMax, f.AddArg("x", f32(2, 3)), b.Scalar(graph.F32, 0))
		},
			"(tensor<2x3xf32>, tensor<f32>) -> tensor<2x3xf32>"},
		{graph.OpAdd, func(b *graph.Builder, f *graph.Func) *graph.Value {
			return b.Add(f.AddArg("x", f32(2, 4)), b.Scalar(graph.F32, 1))
		},
			"(tensor<2x4xf32>, tensor<f32>) -> tensor<2x4xf32>"}, // tests/test_stateful.py
		{graph.OpMul, func(b *graph.Builder, f *graph.Func) *graph.Value {
			return b.Mul(f.AddArg("x", f32(2, 4)), f.AddArg("y", f32(2, 4)))
		},
			"(tensor<2x4xf32>, tensor<2x4xf32>) -> tensor<2x4xf32>"},
		{graph.OpSub, func(b *graph.Builder, f *graph.Func) *graph.Value {
			return b.Sub(f.AddArg("x", f32(2, 5)), f.AddArg("y", f32(2, 1)))
		},
			"(tensor<2x5xf32>, tensor<2x1xf32>) -> tensor<2x5xf32>"},
		{graph.OpDiv, func(b *graph.Builder, f *graph.Func) *graph.Value {
			return b.Div(f.AddArg("x", f32(1, 3, 2, 2)), b.Scalar(graph.F32, 4))
		},
			"(tensor<1x3x2x2xf32>, tensor<f32>) -> tensor<1x3x2x2xf32>"},
		{graph.OpSigmoid, func(b *graph.Builder, f *graph.Func) *graph.Value {
			return b.Op(graph.OpSigmoid, f.AddArg("x", f32(graph.Dyn, graph.Dyn)))
		},
			"(tensor<?x?xf32>) -> tensor<?x?xf32>"},
	}
	for _, op := range []string{graph.OpRsqrt, graph.OpExp, graph.OpLog, graph.OpSin, graph.OpCos} { // the unary table
		rows = append(rows, struct {
			op    string
			build func(b *graph.Builder, f *graph.Func) *graph.Value
			apple string
		}{op, func(b *graph.Builder, f *graph.Func) *graph.Value { return b.Op(op, f.AddArg("x", f32(2, 3))) }, "(tensor<2x3xf32>) -> tensor<2x3xf32>"})
	}
	for _, r := range rows {
		m := &graph.Module{}
		f := graph.NewFunc("main")
		m.Funcs = append(m.Funcs, f)
		b := graph.NewBuilder(m, f)
		f.AddResult("y", r.build(b, f))
		if b.Err() != nil {
			t.Fatalf("%s: %v", r.op, b.Err())
		}
		if err := graph.Verify(m, graph.VerifyOptions{}); err != nil {
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
	m, _ := stateGraph(graph.Tensor(graph.F32, 1, 4), func(b *graph.Builder, cur, x *graph.Value) *graph.Value { return b.Add(cur, x) })
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
