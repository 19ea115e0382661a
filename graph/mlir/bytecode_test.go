package mlir

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"unsafe"

	"qconv/graph"
)

func writeBytecode(t testing.TB, m *graph.Module) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := WriteBytecode(&b, m, "qconv test"); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// smallModule is a tiny module with one resource, for corruption tests.
func smallModule(t testing.TB) *graph.Module {
	m := &graph.Module{}
	f := graph.NewFunc("main")
	b := graph.NewBuilder(m, f)
	x := f.AddArg("x", graph.Tensor(graph.F16, 1, graph.Dyn))
	s := f.AddState("s", graph.Tensor(graph.F16, 1, 4))
	r, _ := m.AddResource(&graph.Resource{Key: "w", Size: 8, Data: []byte{0, 60, 0, 64, 0, 66, 0, 68}})
	tok := b.Op(graph.OpCreateToken)
	v, tok := b.ReadState(s, tok)
	y := b.Add(x, b.Resource(graph.Tensor(graph.F16, 4), r))
	tok = b.WriteState(s, b.Add(v, b.Splat(graph.F16, 0.5, 1, 4)), tok)
	f.AddResult("s", tok)
	f.AddResult("y", y)
	m.Funcs = []*graph.Func{f}
	if b.Err() != nil {
		t.Fatal(b.Err())
	}
	return m
}

func TestBytecodeRoundTrip(t *testing.T) {
	m := testModule(t)
	data := writeBytecode(t, m)
	if again := writeBytecode(t, m); !bytes.Equal(data, again) {
		t.Fatal("two writes of the same module differ")
	}
	got, err := ReadBytecode(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := graph.EqualModules(m, got); err != nil {
		t.Fatal(err)
	}
	if err := graph.EqualModules(got, m); err != nil {
		t.Fatal(err)
	}
	// Blobs alias the input, at file offsets that honour their alignment, in handle order.
	base := uintptr(unsafe.Pointer(unsafe.SliceData(data)))
	prev := uintptr(0)
	for i, r := range got.Resources {
		if r.Key != m.Resources[i].Key {
			t.Fatalf("resource %d is %q, want %q", i, r.Key, m.Resources[i].Key)
		}
		if len(r.Data) == 0 {
			continue
		}
		p := uintptr(unsafe.Pointer(unsafe.SliceData(r.Data)))
		if p < base || p+uintptr(len(r.Data)) > base+uintptr(len(data)) {
			t.Fatalf("resource %q does not alias the input", r.Key)
		}
		if off := uint64(p - base); off%r.Align != 0 || p < prev {
			t.Fatalf("resource %q at file offset %d, align %d", r.Key, off, r.Align)
		}
		prev = p
		if cap(r.Data) != len(r.Data) {
			t.Fatalf("resource %q: capacity reaches past the blob", r.Key)
		}
	}
	// The read module writes back to the same bytes.
	if again := writeBytecode(t, got); !bytes.Equal(data, again) {
		t.Fatal("read-back module writes different bytes")
	}
}

// The file layout qconv commits to: header, mlir-opt's section order, no properties, no dialect
// version entries, the resource section aligned with 0xCB padding.
func TestBytecodeLayout(t *testing.T) {
	m := smallModule(t)
	data := writeBytecode(t, m)
	want := append([]byte("ML\xefR\x0dqconv test"), 0)
	if !bytes.HasPrefix(data, want) {
		t.Fatalf("header % x", data[:20])
	}
	c := &cursor{b: data, pos: len(want), what: "test"}
	var order []int
	var props, dialects *cursor
	for !c.empty() {
		head := c.b[c.pos]
		id, body, err := c.section()
		if err != nil {
			t.Fatal(err)
		}
		order = append(order, id)
		switch id {
		case secProperties:
			props = body
		case secDialect:
			dialects = body
		case secResource:
			if head != 0x85 || body.base%16 != 0 || data[body.base-1] != alignByte {
				t.Fatalf("resource section header 0x%x at data offset %d", head, body.base)
			}
			// entry: align 16, size 8, padding to 16, data
			if body.b[0] != 0x21 || body.b[1] != 0x11 || body.b[2] != alignByte || !bytes.Equal(body.b[16:], m.Resources[0].Data) {
				t.Fatalf("resource entry % x", body.b)
			}
		}
	}
	if got := fmt.Sprint(order); got != "[1 3 2 4 6 5 0 8]" {
		t.Fatalf("section order %s", got)
	}
	if !bytes.Equal(props.b, []byte{0x01}) {
		t.Fatalf("properties section % x, want 01 (no entries)", props.b)
	}
	// 2 dialects, no version flags
	n, _ := dialects.varint()
	d0, _ := dialects.varint()
	d1, _ := dialects.varint()
	if n != 2 || d0&1 != 0 || d1&1 != 0 {
		t.Fatalf("dialect section % x", dialects.b)
	}
}

func TestVarints(t *testing.T) {
	cases := []struct {
		v    uint64
		want []byte
	}{
		{0, []byte{0x01}}, {1, []byte{0x03}}, {127, []byte{0xff}}, {128, []byte{0x02, 0x02}},
		{16383, []byte{0xfe, 0xff}}, {16384, []byte{0x04, 0x00, 0x02}}, {1024, []byte{0x02, 0x10}},
		{1<<56 - 1, []byte{0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
		{1 << 56, []byte{0, 0, 0, 0, 0, 0, 0, 0, 1}},
	}
	for _, c := range cases {
		got := appendVarint(nil, c.v)
		if !bytes.Equal(got, c.want) {
			t.Errorf("%d: % x, want % x", c.v, got, c.want)
		}
		r := &cursor{b: got}
		if v, err := r.varint(); err != nil || v != c.v || !r.empty() {
			t.Errorf("%d read back as %d (%v)", c.v, v, err)
		}
	}
	// dynamic dimension: INT64_MIN zigzags to all ones
	if got := appendSignedVarint(nil, dynDimEncoded); !bytes.Equal(got, []byte{0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) {
		t.Errorf("INT64_MIN: % x", got)
	}
	for _, v := range []int64{0, -1, 1, 63, -64, 1 << 40, -(1 << 40), dynDimEncoded, 1<<63 - 1} {
		r := &cursor{b: appendSignedVarint(nil, v)}
		if got, err := r.signedVarint(); err != nil || got != v {
			t.Errorf("signed %d read back as %d", v, got)
		}
	}
	// an over-long encoding (what a patching writer may leave) still reads
	r := &cursor{b: []byte{0, 5, 0, 0, 0, 0, 0, 0, 0}}
	if v, _ := r.varint(); v != 5 {
		t.Errorf("9-byte 5 read as %d", v)
	}
}

// Truncations and byte flips of a valid file give errors, never panics.
func TestReadBytecodeCorruption(t *testing.T) {
	data := writeBytecode(t, smallModule(t))
	for n := 0; n < len(data); n++ {
		if _, err := ReadBytecode(data[:n]); err == nil {
			t.Fatalf("truncated to %d of %d bytes: no error", n, len(data))
		}
	}
	buf := make([]byte, len(data))
	for i := range data {
		for _, x := range []byte{0xff, 0x01, 0x80} {
			copy(buf, data)
			buf[i] ^= x
			ReadBytecode(buf) // must not panic; some flips (in blob bytes, strings) stay valid
		}
	}
	cases := []struct {
		name string
		edit func([]byte) []byte
		want string
	}{
		{"magic", func(b []byte) []byte { b[0] = 'X'; return b }, "magic"},
		{"version 7", func(b []byte) []byte { b[4] = 7<<1 | 1; return b }, "version 7"},
		{"version 4", func(b []byte) []byte { b[4] = 4<<1 | 1; return b }, "version 4"},
		{"no producer NUL", func(b []byte) []byte { return []byte("ML\xefR\x0dabc") }, "producer"},
		{"padding", func(b []byte) []byte {
			i := bytes.IndexByte(b, 0x85)
			for b[i] != alignByte {
				i++
			}
			b[i] = 0
			return b
		}, "padding byte 0x00"},
		{"duplicate section", func(b []byte) []byte { return append(b, 0x08, 0x03, 0x01) }, "duplicate properties section"},
		{"bad section id", func(b []byte) []byte { return append(b, 0x09, 0x01) }, "invalid section id 9"},
		{"missing properties", func(b []byte) []byte { return b[:len(b)-3] }, "missing properties section"},
	}
	for _, c := range cases {
		b := c.edit(append([]byte{}, data...))
		if _, err := ReadBytecode(b); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
		}
	}
}

// Lengths that exceed the input are rejected before anything is allocated for them.
func TestReadBytecodeHugeCounts(t *testing.T) {
	head := append([]byte("ML\xefR\x0dp"), 0)
	str := func(count uint64) []byte {
		sec := appendVarint(nil, count)
		return appendSection(nil, secString, sec)
	}
	for _, body := range [][]byte{
		str(1 << 60),
		appendSection(nil, secAttrTypeOffset, appendVarint(appendVarint(nil, 1<<40), 1<<40)),
		{secIR, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, // section length 2^64-1
	} {
		allocs := testing.AllocsPerRun(1, func() { ReadBytecode(append(append([]byte{}, head...), body...)) })
		if _, err := ReadBytecode(append(append([]byte{}, head...), body...)); err == nil {
			t.Fatalf("accepted % x", body)
		}
		if allocs > 50 {
			t.Errorf("%d allocations for a bogus count", int(allocs))
		}
	}
}

func TestReadBytecodeEmptyModule(t *testing.T) {
	data := writeBytecode(t, &graph.Module{})
	m, err := ReadBytecode(data)
	if err != nil || len(m.Funcs) != 0 || len(m.Resources) != 0 {
		t.Fatalf("%v %+v", err, m)
	}
}

// The assembly-text forms the reader accepts for entries other writers may emit as text.
func TestAsmEntries(t *testing.T) {
	types := map[string]string{
		"!coreai.handle<tensor<6x1x2x?x256xf16>>": "!coreai.handle<tensor<6x1x2x?x256xf16>>",
		"!coreai.token":    "!coreai.token",
		"tensor<1x?xsi32>": "tensor<1x?xsi32>",
		"tensor<ui4>":      "tensor<ui4>",
		"(tensor<2xf32>, !coreai.token) -> (tensor<2xf32>, i1)": "(tensor<2xf32>, !coreai.token) -> (tensor<2xf32>, i1)",
		"() -> tensor<f16>":           "() -> (tensor<f16>)",
		"() -> ()":                    "() -> ()",
		"tensor<4xbf16>":              "tensor<4xbf16>",
		"!quant.uniform<i8:f32, 1.0>": "!quant.uniform<i8:f32, 1.0>",
	}
	for in, want := range types {
		p := &asmParser{s: in}
		ty, err := p.parseType(0)
		if err == nil {
			err = p.end()
		}
		if err != nil || ty.String() != want {
			t.Errorf("type %s: %v %v", in, ty, err)
		}
	}
	attrs := map[string]string{
		`loc(unknown)`:                          "location",
		`loc(fused<{a = 1}>["x":1:2])`:          "location",
		`"a\"b\\c\0A"`:                          "string",
		`@main`:                                 "symbol reference",
		`@"odd name"::@inner`:                   "symbol reference",
		`{a, b = "x", "c d" = [1 : i64, unit]}`: "dictionary",
		`dense_resource<w> : tensor<4xf16>`:     "dense_resource",
		`dense<[[1, 2]]> : tensor<1x2xsi8>`:     "dense elements",
		`#coreai.composite_declaration<"rms_norm" = {x = [">"]}>`: `#coreai.composite_declaration<"rms_norm" = {x = [">"]}>`,
		`array<i32: 1, 2>`:      "array",
		`(tensor<2xf32>) -> ()`: "type attribute",
	}
	for in, want := range attrs {
		p := &asmParser{s: in}
		a, err := p.parseAttr(0)
		if err == nil {
			err = p.end()
		}
		if err != nil || attrKind(a) != want {
			t.Errorf("attr %s: %s %v, want %s", in, attrKind(a), err, want)
		}
	}
	if a, _ := (&asmParser{s: `"a\"b\\c\0A"`}).parseAttr(0); a.(mString).s != "a\"b\\c\n" {
		t.Errorf("escapes: %q", a.(mString).s)
	}
	for _, bad := range []string{`tensor<2xf32`, `dense<[1, 2]> : tensor<3xsi8>`, `dense<300> : tensor<ui8>`,
		`"unterminated`, `{a = }`, `tensor<2x>`, `[[[[`, strings.Repeat("[", 100) + strings.Repeat("]", 100), `dense<-1> : tensor<ui4>`} {
		p := &asmParser{s: bad}
		_, err := p.parseAttr(0)
		if err == nil {
			err = p.end()
		}
		if err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

func TestFromMLIRStorage(t *testing.T) {
	cases := []struct {
		dt   graph.DType
		n    int64
		raw  []byte
		want []uint64
	}{
		{graph.I1, 3, []byte{0x05}, []uint64{1, 0, 1}},
		{graph.I1, 4, []byte{0xff}, []uint64{1}},
		{graph.I1, 9, []byte{0x00}, []uint64{0}},
		{graph.I1, 3, []byte{1, 0, 1}, []uint64{1, 0, 1}}, // one byte per element (MLIR after 22)
		{graph.SI4, 3, []byte{0x0f, 0x07, 0x08}, []uint64{15, 7, 8}},
		{graph.SI4, 5, []byte{0x0d}, []uint64{13}},
		{graph.F16, 2, []byte{0, 0x3c, 0, 0x3c}, []uint64{0x3c00}},
		{graph.SI32, 2, []byte{1, 0, 0, 0, 2, 0, 0, 0}, []uint64{1, 2}},
	}
	for _, c := range cases {
		got, err := fromMLIRStorage(c.dt, c.n, c.raw)
		if err != nil || len(got) != len(c.want) {
			t.Errorf("%s x%d % x: %v %v", c.dt, c.n, c.raw, got, err)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s x%d % x: %v, want %v", c.dt, c.n, c.raw, got, c.want)
				break
			}
		}
	}
	if _, err := fromMLIRStorage(graph.SI32, 3, make([]byte, 8)); err == nil {
		t.Error("8 bytes for 3 si32 accepted")
	}
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], 7)
	if got, _ := fromMLIRStorage(graph.UI32, 1<<40, b[:]); len(got) != 1 || got[0] != 7 {
		t.Errorf("huge splat: %v", got)
	}
}
