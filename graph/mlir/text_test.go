package mlir

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"qconv/graph"
)

const mlirOptPath = "/usr/lib/llvm-22/bin/mlir-opt"

// mlirOpt runs upstream mlir-opt on file with the given flags and returns its stdout; tests
// that need it skip when it is not installed (CI installs Debian's mlir-22-tools).
func mlirOpt(t testing.TB, file string, flags ...string) []byte {
	t.Helper()
	if _, err := os.Stat(mlirOptPath); err != nil {
		t.Skipf("upstream mlir-opt not found at %s (Debian package mlir-22-tools); skipping the cross-check", mlirOptPath)
	}
	args := append([]string{"--allow-unregistered-dialect"}, flags...)
	cmd := exec.Command(mlirOptPath, append(args, file)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("mlir-opt %v %s: %v\n%s", flags, file, err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Fatalf("mlir-opt %v %s warned:\n%s", flags, file, stderr.String())
	}
	return out
}

// pattern fills b with deterministic bytes derived from seed.
func pattern(b []byte, seed uint64) {
	x := seed*0x9E3779B97F4A7C15 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x >> 32)
	}
}

// testModule builds a small module that uses every op qconv emits (KnownOps), states with
// tokens, a private helper graph called through invoke, dynamic dims, inline constants of every
// dtype (splats, vectors, hex-sized ones, sub-byte odd counts) and resources of every dtype,
// including a lazily filled multi-megabyte blob, odd sizes and alignments 4, 8 and 16.
func testModule(t testing.TB) *graph.Module {
	t.Helper()
	m := &graph.Module{}
	res := func(key string, dt graph.DType, shape []int64, align uint64, lazy bool) (*graph.Resource, graph.Type) {
		ty := graph.Tensor(dt, shape...)
		size := int64(graph.BytesFor(dt, int(ty.NumElements())))
		r := &graph.Resource{Key: key, Size: size, Align: align}
		seed := uint64(len(m.Resources) + 1)
		if lazy {
			r.Fill = func(dst []byte) error { pattern(dst, seed); return nil }
		} else {
			r.Data = make([]byte, size)
			pattern(r.Data, seed)
		}
		if _, err := m.AddResource(r); err != nil {
			t.Fatal(err)
		}
		return r, ty
	}

	// @rms: private helper, y = x * rsqrt(mean(x*x) + eps) * w
	helper := graph.NewFunc("rms.helper")
	helper.Private = true
	hb := graph.NewBuilder(m, helper)
	hx := helper.AddArg("input", graph.Tensor(graph.F16, 1, graph.Dyn, 8))
	hw := helper.AddArg("scale", graph.Tensor(graph.F16, 8))
	ms := hb.Op(graph.OpReduceMean, hb.Mul(hx, hx), hb.I32s(-1))
	inv := hb.Op(graph.OpRsqrt, hb.Add(ms, hb.Scalar(graph.F16, 1e-6)))
	helper.AddResult("output", hb.Mul(hb.Mul(hx, inv), hw))
	if hb.Err() != nil {
		t.Fatal(hb.Err())
	}

	f := graph.NewFunc("main")
	b := graph.NewBuilder(m, f)
	ids := f.AddArg("input_ids", graph.Tensor(graph.SI32, 1, 1))
	pos := f.AddArg("position_ids", graph.Tensor(graph.SI32, 1, graph.Dyn))
	kc := f.AddState("keyCache", graph.Tensor(graph.F16, 2, 1, 2, graph.Dyn, 8))
	cs := f.AddState("convState", graph.Tensor(graph.F32, 1, 4, 3))
	m.Funcs = []*graph.Func{helper, f} // the helper first, as Apple's converter prints it

	tok0 := b.Op(graph.OpCreateToken)
	kv, tok1 := b.ReadState(kc, tok0)

	embR, embT := res("model.embed_tokens.weight", graph.F16, []int64{16, 8}, 16, false)
	table := b.Resource(embT, embR)
	h := b.Op(graph.OpGatherND, table, b.Op(graph.OpExpandDims, ids, b.I32s(-1))) // [1,1,8]
	normR, normT := res("model.norm.weight", graph.F16, []int64{8}, 8, false)
	h = b.OpN(graph.OpInvoke, map[string]graph.Attr{"callee": graph.SymbolRefAttr{Name: "rms.helper"}}, h, b.Resource(normT, normR))[0]
	h = b.Typed(graph.OpReshape, graph.Tensor(graph.F16, 1, 1, 8), h, b.U32s(1, 1, 8))

	// linear int8 per-block weight: (data - offset1) * scale + offset2
	wR, wT := res("layers.0.mlp.weight", graph.SI8, []int64{16, 8}, 16, false)
	sR, sT := res("layers.0.mlp.scale", graph.F16, []int64{16, 1}, 4, false)
	w := b.Op(graph.OpBlockwise, b.Resource(wT, wR), b.Resource(sT, sR),
		b.Const(graph.DenseInts(graph.SI8, []int64{16, 1}, []int64{0})), b.Splat(graph.F16, 0, 16, 1))
	logits := b.Matmul(h, b.Transpose(w, 1, 0)) // [1,1,16]

	// palettized weight: ui4 indices with a 16-entry LUT
	iR, iT := res("layers.0.lut.indices", graph.UI4, []int64{4, 8}, 16, false)
	lut := b.Const(graph.DenseFloats(graph.F16, []int64{1, 1, 16, 1}, []float64{-8, -7, -6, -5, -4, -3, -2, -1, 0, 0.5, 1, 1.5, 2, 4, 8, 65504}))
	pw := b.Op(graph.OpLUTToDense, b.Resource(iT, iR), lut, b.Const(graph.DenseInts(graph.SI16, nil, []int64{0})))
	small := b.Matmul(h, b.Transpose(pw, 1, 0)) // [1,1,4]

	// elementwise and reductions
	e := b.Op(graph.OpExp, logits)
	e = b.Op(graph.OpLog, b.Add(e, b.Scalar(graph.F16, 1)))
	e = b.Op(graph.OpSqrt, b.Op(graph.OpSigmoid, e))
	e = b.Op(graph.OpSilu, b.Op(graph.OpSin, b.Op(graph.OpCos, e)))
	e = b.Op(graph.OpMax, b.Div(b.Sub(e, logits), b.Scalar(graph.F16, 3)), b.Scalar(graph.F16, -0.5))
	e = b.Op(graph.OpSoftmax, e, b.I32(-1))
	e = b.Add(e, b.Op(graph.OpReduceSum, e, b.I32s(2)))
	e = b.Add(e, b.Op(graph.OpReduceMax, e, b.I32s(-1)))
	cat := b.Concat(-1, e, small) // [1,1,20]
	cat = b.Slice(cat, []int64{0, 0, 2}, []int64{1, 1, graph.SliceEnd})
	next := b.Op(graph.OpArgmax, cat, b.I32(-1)) // ui32 [1,1,1]
	next = b.Cast(b.Op(graph.OpShrinkDims, next, b.I32s(0, 1)), graph.SI32)

	// KV write at a shape-derived index: offset = position_ids.shape[1] - 1
	shape := b.Op(graph.OpGetShape, pos) // ui32 [2]
	p := b.Cast(b.Slice(shape, []int64{1}, []int64{2}), graph.SI32)
	p = b.Sub(p, b.I32s(1))
	begin := b.Concat(0, b.I32s(0, 0, 0), p, b.I32s(0))
	end := b.Concat(0, b.I32s(1, 1, 2), b.Add(p, b.I32s(1)), b.I32s(8))
	upd := b.Reshape(h, 1, 1, 1, 1, 8)
	upd = b.Concat(2, upd, upd)
	kv = b.Op(graph.OpSliceUpdate, kv, upd, begin, end, b.I32s(1, 1, 1, 1, 1))
	tok2 := b.WriteState(kc, kv, tok1)
	c, tok3 := b.ReadState(cs, tok2)
	tok4 := b.WriteState(cs, b.Add(c, b.Splat(graph.F32, 0.25, 1, 4, 3)), tok3)

	// inline constants of every dtype (dead code is fine in the IR)
	for _, d := range []graph.DenseAttr{
		graph.DenseFloats(graph.F32, []int64{3}, []float64{1, 0.1, -2.5e-8}),
		graph.DenseFloats(graph.F32, nil, []float64{math.Pi}),
		graph.DenseFloats(graph.F32, []int64{2, 2}, []float64{7, 7, 7, 7}),
		graph.DenseFloats(graph.F16, []int64{3}, []float64{0.1, -65504, 6e-8}),
		graph.DenseInts(graph.SI32, []int64{4}, []int64{-2147483648, 2147483647, 0, -1}),
		graph.DenseInts(graph.UI32, []int64{2}, []int64{4294967295, 7}),
		graph.DenseInts(graph.UI32, []int64{0}, nil),
		graph.DenseInts(graph.SI16, []int64{2}, []int64{-32768, 32767}),
		graph.DenseInts(graph.SI8, []int64{3}, []int64{-128, 127, 5}),
		graph.DenseInts(graph.UI8, []int64{2, 2}, []int64{0, 255, 1, 2}),
		graph.DenseInts(graph.UI8, []int64{5}, []int64{9}),
		graph.DenseInts(graph.SI4, []int64{3}, []int64{-8, 7, -1}),
		graph.DenseInts(graph.SI4, []int64{2}, []int64{3, 3}),
		graph.DenseInts(graph.SI4, []int64{6}, []int64{-3}),
		graph.DenseInts(graph.UI4, []int64{5}, []int64{0, 15, 1, 2, 3}),
		graph.DenseInts(graph.I1, []int64{3}, []int64{1, 0, 1}),
		graph.DenseInts(graph.I1, []int64{8}, []int64{1, 1, 1, 1, 1, 1, 1, 1}),
		graph.DenseInts(graph.I1, []int64{9}, []int64{0}),
		graph.DenseInts(graph.I1, nil, []int64{1}),
		graph.DenseInts(graph.SI32, []int64{1}, []int64{2147483647}),
	} {
		b.Const(d)
	}
	for _, dt := range []graph.DType{graph.F32, graph.F16, graph.SI32, graph.UI32, graph.SI16, graph.SI8, graph.UI8, graph.SI4, graph.UI4, graph.I1} {
		vals := make([]int64, 101+int(dt)) // above the hex threshold
		for i := range vals {
			vals[i] = int64(i*7+int(dt)) % 16
			if dt == graph.I1 {
				vals[i] &= 1
			}
		}
		if dt.IsFloat() {
			fv := make([]float64, len(vals))
			for i, v := range vals {
				fv[i] = float64(v) / 4
			}
			b.Const(graph.DenseFloats(dt, []int64{int64(len(vals))}, fv))
		} else {
			b.Const(graph.DenseInts(dt, []int64{int64(len(vals))}, vals))
		}
	}
	// resources of every dtype, odd sizes, and a lazily filled multi-megabyte blob
	for i, dt := range []graph.DType{graph.F32, graph.F16, graph.SI32, graph.UI32, graph.SI16, graph.SI8, graph.UI8, graph.SI4, graph.UI4, graph.I1} {
		r, ty := res(fmt.Sprintf("blob.%s", dt), dt, []int64{3, int64(5 + i)}, 16, i%2 == 1)
		b.Resource(ty, r)
	}
	big, bigT := res("big.f16", graph.F16, []int64{1024, 1031}, 16, true)
	b.Resource(bigT, big)

	// a graph without arguments names: arg_attrs keeps an empty dictionary, res_attrs is left out
	noop := graph.NewFunc("noop")
	noop.Private = true
	na := noop.AddArg("", graph.Tensor(graph.UI8, 2))
	noop.AddArg("named", graph.Tensor(graph.I1, 3))
	noop.AddResult("", na)
	bare := graph.NewFunc("bare") // no arguments, no results
	m.Funcs = append(m.Funcs, noop, bare)

	f.AddResult("keyCache", tok2)
	f.AddResult("convState", tok4)
	f.AddResult("logits", logits)
	f.AddResult("next_token", next)
	if b.Err() != nil {
		t.Fatal(b.Err())
	}
	used := map[string]bool{}
	for _, g := range m.Funcs {
		for _, op := range g.Body {
			used[op.Name] = true
		}
	}
	for _, name := range graph.KnownOps() {
		if !used[name] {
			t.Fatalf("test module does not use %s", name)
		}
	}
	return m
}

func writeFile(t testing.TB, dir, name string, write func(*bytes.Buffer) error) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := write(&buf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, buf.Bytes()
}

// diffText reports the first differing line of two texts.
func diffText(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := 0; i < max(len(g), len(w)); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			t.Fatalf("%s: line %d differs:\n mlir-opt: %.300s\n     ours: %.300s", what, i+1, gl, wl)
		}
	}
	t.Fatalf("%s: texts differ", what)
}

// mlir-opt parses WriteText's output and prints it back unchanged; it loads WriteBytecode's
// output and prints exactly WriteText's text (no normalisation applied).
func TestTextAndBytecodeMatchMLIROpt(t *testing.T) {
	dir := t.TempDir()
	for i, m := range []*graph.Module{testModule(t), smallModule(t), tinyModule(), {}} {
		txtPath, txt := writeFile(t, dir, "m.mlir", func(b *bytes.Buffer) error { return WriteText(b, m) })
		diffText(t, fmt.Sprintf("module %d: text through mlir-opt", i), mlirOpt(t, txtPath, "--mlir-print-op-generic"), txt)
		bcPath, _ := writeFile(t, dir, "m.mlirb", func(b *bytes.Buffer) error { return WriteBytecode(b, m, "qconv test") })
		diffText(t, fmt.Sprintf("module %d: bytecode through mlir-opt", i), mlirOpt(t, bcPath, "--mlir-print-op-generic"), txt)
		if i == 0 && (!bytes.Contains(txt, []byte("big.f16: \"0x10000000")) || !bytes.Contains(txt, []byte(`"coreai.decomposable.broadcasting_batch_matmul"`))) {
			t.Fatal("text lacks the big blob or the matmul")
		}
	}
}

// mlir-opt's own bytecode (builtin encodings everywhere, properties for the module, file
// locations, asm coreai types, its section order) reads back into an equal module, from our
// text and from our bytecode; the blobs come back byte-identical.
func TestReadMLIROptBytecode(t *testing.T) {
	dir := t.TempDir()
	m := testModule(t)
	txtPath, _ := writeFile(t, dir, "m.mlir", func(b *bytes.Buffer) error { return WriteText(b, m) })
	bcPath, _ := writeFile(t, dir, "m.mlirb", func(b *bytes.Buffer) error { return WriteBytecode(b, m, "qconv test") })
	for _, in := range []string{txtPath, bcPath} {
		out := mlirOpt(t, in, "--emit-bytecode", "--mlir-print-debuginfo")
		got, err := ReadBytecode(out)
		if err != nil {
			t.Fatalf("reading mlir-opt's bytecode of %s: %v", filepath.Base(in), err)
		}
		if err := graph.EqualModules(m, got); err != nil {
			t.Fatalf("mlir-opt's bytecode of %s: %v", filepath.Base(in), err)
		}
		if r := got.Resource("big.f16"); r == nil || r.Size != 1024*1031*2 || r.Align != 16 {
			t.Fatalf("big blob: %+v", r)
		}
	}
	// resources declared without data are refused, naming the constant
	out := mlirOpt(t, bcPath, "--emit-bytecode", "--elide-resource-data-from-bytecode")
	if _, err := ReadBytecode(out); err == nil || !strings.Contains(err.Error(), "0 bytes for tensor<16x8xf16>") {
		t.Fatalf("elided resource data: %v", err)
	}
}

// propertiesForm rewrites generic text so every op's attribute dictionary becomes properties
// <{...}>, the form mlir-opt keeps for unregistered ops in bytecode properties entries.
func propertiesForm(text string) string {
	lines := strings.Split(text, "\n")
	graphLine := -1
	for i, l := range lines {
		switch {
		case strings.HasPrefix(l, `  "coreai.graph"() ({`):
			graphLine = i
		case strings.HasPrefix(l, "  }) {") && strings.HasSuffix(l, "} : () -> ()"):
			attrs := l[len("  }) ") : len(l)-len(" : () -> ()")]
			lines[graphLine] = `  "coreai.graph"() <` + attrs + `> ({`
			lines[i] = "  }) : () -> ()"
		case strings.HasPrefix(l, "    ") && strings.Contains(l, ") {"):
			end := strings.LastIndex(l, "} : (")
			start := strings.Index(l, ") {")
			lines[i] = l[:start] + ") <" + l[start+2:end+1] + ">" + l[end+1:]
		}
	}
	return strings.Join(lines, "\n")
}

// Bytecode mlir-opt writes with properties entries for the coreai ops, and version 5 bytecode,
// read back equal.
func TestReadMLIROptPropertiesAndV5(t *testing.T) {
	dir := t.TempDir()
	m := testModule(t)
	var txt bytes.Buffer
	if err := WriteText(&txt, m); err != nil {
		t.Fatal(err)
	}
	props := propertiesForm(txt.String())
	path := filepath.Join(dir, "props.mlir")
	if err := os.WriteFile(path, []byte(props), 0o644); err != nil {
		t.Fatal(err)
	}
	printed := string(mlirOpt(t, path, "--mlir-print-op-generic"))
	if !strings.Contains(printed, `"coreai.graph"() <{arg_attrs = [`) || !strings.Contains(printed, `"coreai.constant"() <{value = `) || printed != props {
		t.Fatalf("mlir-opt did not keep the properties form:\n%.400s", printed)
	}
	for _, flags := range [][]string{{"--emit-bytecode"}, {"--emit-bytecode", "--emit-bytecode-version=5"}} {
		got, err := ReadBytecode(mlirOpt(t, path, flags...))
		if err != nil {
			t.Fatalf("%v: %v", flags, err)
		}
		if err := graph.EqualModules(m, got); err != nil {
			t.Fatalf("%v: %v", flags, err)
		}
	}
}

// Every f16 value and 40000 f32 values print as mlir-opt prints them.
func TestFloatPrintingMatchesMLIROpt(t *testing.T) {
	var in bytes.Buffer
	var want []string
	line := func(dt string, f floatFormat, vals []uint64) {
		var hexes, ours []string
		for _, v := range vals {
			hexes = append(hexes, fmt.Sprintf("0x%X", v))
			ours = append(ours, printFloat(v, f))
		}
		fmt.Fprintf(&in, "\"coreai.constant\"() {value = dense<[%s]> : tensor<%dx%s>} : () -> tensor<%dx%s>\n",
			strings.Join(hexes, ", "), len(vals), dt, len(vals), dt)
		want = append(want, strings.Join(ours, ", "))
	}
	for i := 0; i < 65536; i += 100 {
		var vals []uint64
		for j := i; j < min(i+100, 65536); j++ {
			vals = append(vals, uint64(j))
		}
		line("f16", formatF16, vals)
	}
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 400; i++ {
		vals := make([]uint64, 100)
		for j := range vals {
			switch v := uint64(r.Uint32()); j % 4 {
			case 0: // any bits
				vals[j] = v
			case 1: // few significant bits: short decimal forms
				vals[j] = v &^ 0xffff
			case 2: // exponents near 1
				vals[j] = v&0x807fffff | uint64(110+r.Intn(40))<<23
			default:
				vals[j] = v &^ 0xfff
			}
		}
		line("f32", formatF32, vals)
	}
	path := filepath.Join(t.TempDir(), "floats.mlir")
	if err := os.WriteFile(path, in.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(mlirOpt(t, path, "--mlir-print-op-generic")), "\n")[1:]
	bad := 0
	for i, w := range want {
		l := lines[i]
		a, z := strings.Index(l, "dense<["), strings.Index(l, "]>")
		if a < 0 || z < 0 {
			t.Fatalf("line %d: %s", i, l)
		}
		g, ws := strings.Split(l[a+7:z], ", "), strings.Split(w, ", ")
		for k := range g {
			if g[k] != ws[k] {
				t.Errorf("line %d element %d: mlir-opt %s, ours %s", i, k, g[k], ws[k])
				if bad++; bad > 20 {
					t.FailNow()
				}
			}
		}
	}
}

// Specific printed forms (checked against mlir-opt 22.1.8 by hand, kept here so the rules stay
// pinned without mlir-opt).
func TestDenseTextForms(t *testing.T) {
	cases := []struct {
		d    graph.DenseAttr
		want string
	}{
		{graph.DenseInts(graph.UI32, []int64{2}, []int64{1, 0}), "dense<[1, 0]> : tensor<2xui32>"},
		{graph.DenseInts(graph.SI32, []int64{1}, []int64{2147483647}), "dense<2147483647> : tensor<1xsi32>"},
		{graph.DenseInts(graph.UI32, []int64{0}, nil), "dense<> : tensor<0xui32>"},
		{graph.DenseInts(graph.I1, nil, []int64{0}), "dense<false> : tensor<i1>"},
		{graph.DenseInts(graph.I1, []int64{3}, []int64{1, 0, 1}), "dense<[true, false, true]> : tensor<3xi1>"},
		{graph.DenseInts(graph.SI4, []int64{3}, []int64{-1, 7, -8}), "dense<[-1, 7, -8]> : tensor<3xsi4>"},
		{graph.DenseInts(graph.SI32, []int64{2, 1}, []int64{5, 6}), "dense<[[5], [6]]> : tensor<2x1xsi32>"},
		{graph.DenseInts(graph.SI32, []int64{3}, []int64{5, 5, 5}), "dense<5> : tensor<3xsi32>"},
		{graph.DenseFloats(graph.F32, nil, []float64{2}), "dense<2.000000e+00> : tensor<f32>"},
		{graph.DenseFloats(graph.F32, []int64{2}, []float64{0.1, 0.01}), "dense<[1.000000e-01, 0.00999999977]> : tensor<2xf32>"},
		{graph.DenseFloats(graph.F16, nil, []float64{0.1}), "dense<9.997550e-02> : tensor<f16>"},
		{graph.DenseFloats(graph.F32, []int64{3}, []float64{123456792, math.Inf(1), 3.4028234663852886e38}), "dense<[0x4CEB79A3, 0x7F800000, 3.40282347E+38]> : tensor<3xf32>"},
		{graph.DenseFloats(graph.F32, []int64{2}, []float64{math.Copysign(0, -1), 1e-45}), "dense<[-0.000000e+00, 1.401300e-45]> : tensor<2xf32>"},
	}
	for _, c := range cases {
		var b bytes.Buffer
		p := &textPrinter{w: bufioWriter(&b)}
		p.attr(c.d)
		p.w.Flush()
		if b.String() != c.want {
			t.Errorf("%s: got %s", c.want, b.String())
		}
		// and the assembly parser reads it back
		ap := &asmParser{s: b.String()}
		a, err := ap.parseAttr(0)
		if err == nil {
			err = ap.end()
		}
		if err != nil {
			t.Errorf("%s: parse: %v", c.want, err)
			continue
		}
		md := a.(mDense)
		ty, _ := md.t.graphType()
		if err := graph.EqualAttrs(c.d, denseAttrFrom(ty, md.elems)); err != nil {
			t.Errorf("%s: parsed back: %v", c.want, err)
		}
	}
	// the >100-element hex form parses back for every dtype
	m := testModule(t)
	var b bytes.Buffer
	p := &textPrinter{w: bufioWriter(&b)}
	n := 0
	for _, op := range m.Func("main").Body {
		d, ok := op.Attrs["value"].(graph.DenseAttr)
		if !ok || d.Type.NumElements() <= hexElementsThreshold {
			continue
		}
		b.Reset()
		p.attr(d)
		p.w.Flush()
		if !strings.HasPrefix(b.String(), "dense<\"0x") {
			t.Fatalf("%s printed as %.60s", d.Type, b.String())
		}
		ap := &asmParser{s: b.String()}
		a, err := ap.parseAttr(0)
		if err != nil {
			t.Fatal(err)
		}
		md := a.(mDense)
		ty, _ := md.t.graphType()
		if err := graph.EqualAttrs(d, denseAttrFrom(ty, md.elems)); err != nil {
			t.Errorf("%s hex: %v", d.Type, err)
		}
		n++
	}
	if n != 10 {
		t.Fatalf("%d hex-sized constants, want 10", n)
	}
}

func TestFloatParseRoundsToNearestEven(t *testing.T) {
	cases := []struct {
		s    string
		f    floatFormat
		want uint64
	}{
		{"65504", formatF16, 0x7bff},
		{"65519.99", formatF16, 0x7bff},
		{"65520", formatF16, 0x7c00},
		{"5.960464477539063e-08", formatF16, 0x0001},
		{"2.98023223876953125e-08", formatF16, 0x0000}, // exactly half the smallest subnormal: ties to even
		{"2.98023223876953126e-08", formatF16, 0x0001},
		{"1.0009765625", formatF16, 0x3c01},
		{"1.00048828125", formatF16, 0x3c00}, // halfway between 1 and the next f16: ties to even
		{"-0.0", formatF16, 0x8000},
		{"0.1", formatF32, 0x3dcccccd},
	}
	for _, c := range cases {
		if got := c.f.parse(c.s); got != c.want {
			t.Errorf("%s: 0x%x, want 0x%x", c.s, got, c.want)
		}
	}
}

func TestSubByteDenseIsNotASplat(t *testing.T) {
	d := graph.DenseInts(graph.I1, []int64{3}, []int64{1, 0, 1})
	if d.Splat() || d.Int(1) != 0 || d.Int(2) != 1 {
		t.Fatalf("i1 [1 0 1] read as %v (splat %v)", d.Ints(), d.Splat())
	}
	s := graph.DenseInts(graph.SI4, []int64{2}, []int64{-3})
	if s.Splat() || len(s.Data) != 1 || s.Int(0) != -3 || s.Int(1) != -3 {
		t.Fatalf("si4 splat of 2 elements: %v %x", s.Ints(), s.Data)
	}
	big := graph.DenseInts(graph.SI4, []int64{3}, []int64{-3, -3, -3})
	if !big.Splat() || len(big.Data) != 1 || big.Int(2) != -3 {
		t.Fatalf("si4 splat of 3 elements: %v %x", big.Ints(), big.Data)
	}
}

func tinyModule() *graph.Module {
	m := &graph.Module{}
	f := graph.NewFunc("main")
	x := f.AddArg("x", graph.Tensor(graph.F32, 2))
	f.AddResult("y", graph.NewBuilder(m, f).Op(graph.OpExp, x))
	m.Funcs = []*graph.Func{f}
	return m
}

func TestWriteTextLayout(t *testing.T) {
	m := tinyModule()
	var b bytes.Buffer
	if err := WriteText(&b, m); err != nil {
		t.Fatal(err)
	}
	want := `"builtin.module"() ({
  "coreai.graph"() ({
  ^bb0(%arg0: tensor<2xf32>):
    %0 = "coreai.exp"(%arg0) : (tensor<2xf32>) -> tensor<2xf32>
    "coreai.output"(%0) : (tensor<2xf32>) -> ()
  }) {arg_attrs = [{coreai.name = "x"}], function_type = (tensor<2xf32>) -> tensor<2xf32>, res_attrs = [{coreai.name = "y"}], sym_name = "main"} : () -> ()
}) : () -> ()

`
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
}

// Writers refuse modules they cannot write faithfully, naming the problem.
func TestWriterRejects(t *testing.T) {
	mk := func() (*graph.Module, *graph.Func, *graph.Builder) {
		m := &graph.Module{}
		f := graph.NewFunc("main")
		m.Funcs = []*graph.Func{f}
		return m, f, graph.NewBuilder(m, f)
	}
	cases := []struct {
		name string
		make func() *graph.Module
		want string
	}{
		{"unreferenced resource", func() *graph.Module {
			m, _, _ := mk()
			m.AddResource(&graph.Resource{Key: "w", Size: 1, Data: []byte{1}})
			return m
		}, `resource "w" is not referenced`},
		{"foreign resource", func() *graph.Module {
			m, f, b := mk()
			f.AddResult("y", b.Resource(graph.Tensor(graph.SI8, 1), &graph.Resource{Key: "w", Size: 1, Data: []byte{1}, Align: 16}))
			return m
		}, "not in the module's resources"},
		{"bad alignment", func() *graph.Module {
			m, f, b := mk()
			r, _ := m.AddResource(&graph.Resource{Key: "w", Size: 1, Data: []byte{1}, Align: 12})
			f.AddResult("y", b.Resource(graph.Tensor(graph.SI8, 1), r))
			return m
		}, "not a power of two"},
		{"short data", func() *graph.Module {
			m, f, b := mk()
			r, _ := m.AddResource(&graph.Resource{Key: "w", Size: 2, Data: []byte{1}})
			f.AddResult("y", b.Resource(graph.Tensor(graph.SI8, 2), r))
			return m
		}, "declared size 2"},
		{"use before def", func() *graph.Module {
			m, f, _ := mk()
			x := &graph.Value{Type: graph.Tensor(graph.F32, 1)}
			f.Append(graph.NewOp(graph.OpExp, []*graph.Value{x}, []graph.Type{graph.Tensor(graph.F32, 1)}, nil))
			return m
		}, "operand 0 is not defined"},
		{"duplicate function", func() *graph.Module {
			m, f, _ := mk()
			m.Funcs = append(m.Funcs, f)
			return m
		}, "defined twice"},
		{"NUL in a name", func() *graph.Module {
			m, f, _ := mk()
			f.AddArg("a\x00b", graph.Tensor(graph.F32, 1))
			return m
		}, "NUL"},
		{"reserved op", func() *graph.Module {
			m, f, _ := mk()
			f.Append(graph.NewOp(opOutput, nil, nil, nil))
			return m
		}, "not a coreai op name"},
		{"bad dense", func() *graph.Module {
			m, f, _ := mk()
			f.Append(graph.NewOp(graph.OpConstant, nil, []graph.Type{graph.Tensor(graph.SI32, 3)}, map[string]graph.Attr{"value": graph.DenseAttr{Type: graph.Tensor(graph.SI32, 3), Data: make([]byte, 8)}}))
			return m
		}, "holds 8 bytes, want 12"},
	}
	for _, c := range cases {
		m := c.make()
		for _, write := range []func() error{
			func() error { return WriteText(&bytes.Buffer{}, m) },
			func() error { return WriteBytecode(&bytes.Buffer{}, m, "t") },
		} {
			if err := write(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
			}
		}
	}
	if err := WriteBytecode(&bytes.Buffer{}, &graph.Module{}, "bad\x00producer"); err == nil {
		t.Error("NUL in the producer accepted")
	}
}

func bufioWriter(b *bytes.Buffer) *bufio.Writer { return bufio.NewWriter(b) }
