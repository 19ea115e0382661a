package mlir

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"qconv/graph"
	"qconv/graph/interp"
)

// loopComposite is @main invoking a private rms_norm composite graph (plain-op body) on x [2,4].
func loopComposite(t *testing.T) *graph.Module {
	m := &graph.Module{}
	c := graph.NewFunc("rms_norm_0")
	c.Private, c.NoInline, c.Composite = true, true, graph.RMSNormDecl(1e-6)
	b := graph.NewBuilder(m, c)
	x := c.AddArg("input", graph.Tensor(graph.F32, 2, 4))
	w := c.AddArg("scale", graph.Tensor(graph.F32, 4))
	ms := b.ReduceMean(b.Mul(x, x), 1)
	c.AddResult("output", b.Mul(b.Mul(x, b.Op(graph.OpRsqrt, b.Add(ms, b.Scalar(graph.F32, 1e-6)))), w))
	m.Funcs = append(m.Funcs, c)
	f := graph.NewFunc("main")
	mb := graph.NewBuilder(m, f)
	in := f.AddArg("x", graph.Tensor(graph.F32, 2, 4))
	out := mb.OpN(graph.OpInvoke, map[string]graph.Attr{"callee": graph.SymbolRefAttr{Name: "rms_norm_0"}}, in, mb.Splat(graph.F32, 2, 4))
	f.AddResult("y", out[0])
	m.Funcs = append(m.Funcs, f)
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
	if err := mb.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

// A composite whose body holds a loop (as Apple's gated_delta_update body holds a coreai.while)
// is read without its body (a template_op attribute, as Apple's converter prints, is accepted): the graph keeps its arguments, typed results and declaration, says
// why in Opaque, and the rest of the module is read as usual; the same loop in a graph that
// declares no composite is refused naming the op; an opaque graph is never written back.
func TestCompositeWithLoopReadOpaque(t *testing.T) {
	dir := t.TempDir()
	path, _ := writeFile(t, dir, "c.mlirb", func(b *bytes.Buffer) error { return WriteBytecode(b, loopComposite(t), "qconv test") })
	text := string(mlirOpt(t, path, "--mlir-print-op-generic"))
	const loop = `
    %w = "coreai.while"(%arg1) ({
    ^bb0(%a: tensor<2x4xf32>):
      %c = "coreai.reduce_sum"(%a) : (tensor<2x4xf32>) -> tensor<i1>
      "coreai.condition"(%c, %a) : (tensor<i1>, tensor<2x4xf32>) -> ()
    }, {
    ^bb0(%a: tensor<2x4xf32>):
      %n = "coreai.decomposable.broadcasting_add"(%a, %a) : (tensor<2x4xf32>, tensor<2x4xf32>) -> tensor<2x4xf32>
      "coreai.yield"(%n) : (tensor<2x4xf32>) -> ()
    }) : (tensor<2x4xf32>) -> tensor<2x4xf32>`
	// The composite is the first graph; its block header is the first ^bb0 line.
	i := strings.Index(text, "^bb0(")
	if i < 0 {
		t.Fatalf("no block header in\n%s", text)
	}
	eol := i + strings.IndexByte(text[i:], '\n')
	arg, _, _ := strings.Cut(text[i+len("^bb0("):], ":") // mlir-opt's name of the composite's first argument
	withLoop := text[:eol] + strings.Replace(loop, "%arg1", arg, 1) + text[eol:]
	withLoop = strings.Replace(withLoop, "noinline,", `noinline, template_op = "rms_norm",`, 1) // as Apple's converter prints built-in composites
	src := filepath.Join(dir, "loop.mlir")
	if err := os.WriteFile(src, []byte(withLoop), 0o644); err != nil {
		t.Fatal(err)
	}
	bc := mlirOpt(t, src, "--emit-bytecode")
	m, err := ReadBytecode(bc)
	if err != nil {
		t.Fatalf("reading a composite with a loop: %v", err)
	}
	c := m.Func("rms_norm_0")
	if c == nil || !strings.Contains(c.Opaque, "coreai.while") || len(c.Body) != 0 || len(c.Args) != 2 || len(c.Results) != 1 ||
		!c.Results[0].Value.Type.Equal(graph.Tensor(graph.F32, 2, 4)) || graph.CompositeName(c.Composite) != graph.CompositeRMSNorm {
		t.Fatalf("composite read as %+v", c)
	}
	if f := m.Func("main"); f == nil || len(f.Body) == 0 || f.Body[len(f.Body)-1].Name != graph.OpInvoke {
		t.Fatalf("@main after the opaque composite: %+v", f)
	}
	// The interpreter runs it by its declaration: x·rsqrt(mean(x²)+eps)·2.
	it, err := interp.New(m, "main")
	if err != nil {
		t.Fatal(err)
	}
	x := interp.NewArray(graph.F32, 2, 4)
	copy(x.F, []float32{1, 2, 3, 4, -1, 0, 0, 1})
	out, err := it.Run(map[string]*interp.Array{"x": x}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for r := 0; r < 2; r++ {
		var ss float64
		for _, v := range x.F[4*r : 4*r+4] {
			ss += float64(v * v)
		}
		for j := 4 * r; j < 4*r+4; j++ {
			if want := float64(x.F[j]) * 2 / math.Sqrt(ss/4+1e-6); math.Abs(float64(out["y"].F[j])-want) > 1e-5 {
				t.Errorf("y[%d] = %g, want %g", j, out["y"].F[j], want)
			}
		}
	}
	if err := graph.Verify(m, graph.VerifyOptions{Device: graph.GPU}); !graph.HasRule(err, graph.RuleNoLoops) || !strings.Contains(err.Error(), "coreai.while") {
		t.Errorf("verifying the opaque composite: %v", err)
	}
	if err := WriteBytecode(&bytes.Buffer{}, m, "x"); err == nil || !strings.Contains(err.Error(), "@rms_norm_0 cannot be written") {
		t.Errorf("writing an opaque graph: %v", err)
	}

	// Without the declaration the loop is refused, naming it.
	plain := strings.Replace(withLoop, "composite_decl = ", "other_decl = ", 1)
	if err := os.WriteFile(src, []byte(plain), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadBytecode(mlirOpt(t, src, "--emit-bytecode")); err == nil || !strings.Contains(err.Error(), "coreai.while has regions") {
		t.Errorf("a loop outside a composite: %v", err)
	}
}
