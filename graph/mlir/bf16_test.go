package mlir

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"qconv/graph"
)

// bf16Module is a small bf16 graph: a bf16 state, a bf16 resource, a blockwise int8 weight with
// bf16 scales, bf16 constants (splat, vector, hex-sized, the specials) and the casts
// f32 -> bf16 -> f16 the stock target's logits take.
func bf16Module(t testing.TB) *graph.Module {
	t.Helper()
	m := &graph.Module{}
	f := graph.NewFunc("main")
	b := graph.NewBuilder(m, f)
	x := f.AddArg("x", graph.Tensor(graph.F32, 1, graph.Dyn, 8))
	s := f.AddState("recurrentStates", graph.Tensor(graph.BF16, 2, 8))
	wr := &graph.Resource{Key: "w.bf16", Size: 2 * 8 * 8, Data: make([]byte, 2*8*8)}
	pattern(wr.Data, 7)
	qr := &graph.Resource{Key: "q.si8", Size: 8 * 8, Data: make([]byte, 8*8)}
	pattern(qr.Data, 8)
	sr := &graph.Resource{Key: "q.scale", Size: 2 * 8, Data: []byte{0x80, 0x3c, 0x00, 0x3c, 0x23, 0x3c, 0x80, 0x3b, 0x01, 0x3d, 0x80, 0x3c, 0x00, 0x3c, 0x80, 0x3c}}
	for _, r := range []*graph.Resource{wr, qr, sr} {
		if _, err := m.AddResource(r); err != nil {
			t.Fatal(err)
		}
	}
	tok := b.Op(graph.OpCreateToken)
	st, tok := b.ReadState(s, tok)
	h := b.Cast(x, graph.BF16)
	w := b.Resource(graph.Tensor(graph.BF16, 8, 8), wr)
	qw := b.Op(graph.OpBlockwise, b.Resource(graph.Tensor(graph.SI8, 8, 8), qr), b.Resource(graph.Tensor(graph.BF16, 8, 1), sr),
		b.SplatInt(graph.SI8, 0, 8, 1), b.Splat(graph.BF16, 0, 8, 1))
	h = b.Matmul(h, b.Transpose(w, 1, 0))
	h = b.Add(b.Matmul(h, b.Transpose(qw, 1, 0)), b.Scalar(graph.BF16, 0.1))
	vals := make([]float64, 130)
	for i := range vals {
		vals[i] = float64(i)/7 - 9
	}
	big := b.Const(graph.DenseFloats(graph.BF16, []int64{130}, vals))
	special := b.Const(graph.DenseFloats(graph.BF16, []int64{8}, []float64{math.Inf(1), math.Inf(-1), math.Copysign(0, -1), 1e-40, 3.3895313892515355e38, 1e39, -2.5, 65504}))
	h = b.Mul(h, b.Reshape(b.Slice(b.Mul(big, b.Scalar(graph.BF16, 2)), []int64{0}, []int64{8}), 1, 1, 8))
	h = b.Add(h, b.Reshape(special, 1, 1, 8))
	tok = b.WriteState(s, b.Add(st, b.Reshape(b.Slice(h, []int64{0, 0, 0}, []int64{1, 1, 8}), 1, 8)), tok)
	f.AddResult("recurrentStates", tok)
	f.AddResult("logits", b.Cast(h, graph.F16))
	m.Funcs = []*graph.Func{f}
	if b.Err() != nil {
		t.Fatal(b.Err())
	}
	return m
}

// A bf16 module writes as text and bytecode that mlir-opt 22 parses and prints back unchanged,
// reads back into an equal module from our bytecode and from mlir-opt's, and writes back to the
// same bytes.
func TestBF16RoundTrips(t *testing.T) {
	m := bf16Module(t)
	dir := t.TempDir()
	txtPath, txt := writeFile(t, dir, "m.mlir", func(b *bytes.Buffer) error { return WriteText(b, m) })
	for _, want := range []string{"tensor<2x8xbf16>", "dense_resource<w.bf16> : tensor<8x8xbf16>", "dense<1.000980e-01> : tensor<bf16>", `dense<"0x`} {
		if !bytes.Contains(txt, []byte(want)) {
			t.Fatalf("text lacks %q:\n%s", want, txt)
		}
	}
	bcPath, bc := writeFile(t, dir, "m.mlirb", func(b *bytes.Buffer) error { return WriteBytecode(b, m, "qconv test") })
	got, err := ReadBytecode(bc)
	if err != nil {
		t.Fatal(err)
	}
	if err := graph.EqualModules(m, got); err != nil {
		t.Fatal(err)
	}
	if again := writeBytecode(t, got); !bytes.Equal(bc, again) {
		t.Fatal("read-back bf16 module writes different bytes")
	}
	diffText(t, "bf16 text through mlir-opt", mlirOpt(t, txtPath, "--mlir-print-op-generic"), txt)
	diffText(t, "bf16 bytecode through mlir-opt", mlirOpt(t, bcPath, "--mlir-print-op-generic"), txt)
	theirs, err := ReadBytecode(mlirOpt(t, txtPath, "--emit-bytecode"))
	if err != nil {
		t.Fatalf("reading mlir-opt's bytecode of a bf16 module: %v", err)
	}
	if err := graph.EqualModules(m, theirs); err != nil {
		t.Fatal(err)
	}
}

// Every bf16 bit pattern prints as mlir-opt prints it, and parses back to itself.
func TestBF16FloatPrintingMatchesMLIROpt(t *testing.T) {
	var in bytes.Buffer
	var want [][]string
	for i := 0; i < 65536; i += 64 {
		var hexes, ours []string
		for j := i; j < i+64; j++ {
			hexes = append(hexes, fmt.Sprintf("0x%X", j))
			s := printFloat(uint64(j), formatBF16)
			ours = append(ours, s)
			if _, _, _, kind := formatBF16.decompose(uint64(j)); kind != floatSpecial {
				if back := formatBF16.parse(s); back != uint64(j) {
					t.Fatalf("bf16 %#04x prints %s, which parses to %#04x", j, s, back)
				}
			}
		}
		fmt.Fprintf(&in, "\"coreai.constant\"() {value = dense<[%s]> : tensor<64xbf16>} : () -> tensor<64xbf16>\n", strings.Join(hexes, ", "))
		want = append(want, ours)
	}
	path := filepath.Join(t.TempDir(), "bf16.mlir")
	if err := os.WriteFile(path, in.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(mlirOpt(t, path, "--mlir-print-op-generic")), "\n")[1:]
	bad := 0
	for i, w := range want {
		l := lines[i]
		a, z := strings.Index(l, "dense<\"0x"), strings.Index(l, "dense<[")
		if a >= 0 || z < 0 {
			t.Fatalf("line %d: %.200s", i, l)
		}
		g := strings.Split(l[z+7:strings.Index(l, "]>")], ", ")
		for k := range g {
			if g[k] != w[k] {
				t.Errorf("bf16 %#04x: mlir-opt %s, ours %s", i*64+k, g[k], w[k])
				if bad++; bad > 20 {
					t.FailNow()
				}
			}
		}
	}
}

func TestBF16ParseRoundsToNearestEven(t *testing.T) {
	for _, c := range []struct {
		s    string
		want uint64
	}{
		{"1.00390625", 0x3f80},         // 1 + 2^-8: halfway between 1 and the next bf16, ties to even
		{"1.0039062500000001", 0x3f81}, // just above the tie
		{"1.01171875", 0x3f82},         // 1 + 3*2^-8: tie from the odd 0x3f81 rounds up
		{"3.3895313892515355e38", 0x7f7f},
		{"3.40e38", 0x7f80},
		{"-0.0", 0x8000},
		{"9.183549615799121e-41", 0x0001}, // the smallest subnormal
		{"0.1", 0x3dcd},
	} {
		if got := formatBF16.parse(c.s); got != c.want {
			t.Errorf("%s: %#x, want %#x", c.s, got, c.want)
		}
	}
	if got := formatBF16.fromFloat64(math.NaN()); got != 0x7fc0 {
		t.Errorf("NaN: %#x, want 0x7fc0", got)
	}
}
