package mlir

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"qconv/graph"
)

// ReadBytecode reads MLIR bytecode (versions 5 and 6) holding one builtin.module of coreai.graph
// ops: what WriteBytecode writes, and what mlir-opt --emit-bytecode writes for the same module
// (builtin encodings for every builtin type and attribute, properties for builtin.module, file
// locations, any section order). Resource blobs alias data: the caller may map the file and run
// on it directly. Every length and index is checked against the input, so corrupt input gives an
// error naming the section and offset, never a panic or an allocation larger than the input.
func ReadBytecode(data []byte) (*graph.Module, error) {
	r := &bcReader{data: data}
	m, err := r.read()
	if err != nil {
		return nil, fmt.Errorf("mlir bytecode: %w", err)
	}
	return m, nil
}

// cursor reads primitives from a section of the file.
type cursor struct {
	b    []byte
	pos  int
	base int // file offset of b[0]
	what string
}

func (c *cursor) errf(format string, args ...any) error {
	return fmt.Errorf("%s at offset %d: %s", c.what, c.base+c.pos, fmt.Sprintf(format, args...))
}

func (c *cursor) empty() bool { return c.pos >= len(c.b) }
func (c *cursor) left() int   { return len(c.b) - c.pos }

func (c *cursor) byte1() (byte, error) {
	if c.pos >= len(c.b) {
		return 0, c.errf("unexpected end of data")
	}
	c.pos++
	return c.b[c.pos-1], nil
}

func (c *cursor) varint() (uint64, error) {
	first, err := c.byte1()
	if err != nil {
		return 0, err
	}
	if first&1 == 1 {
		return uint64(first >> 1), nil
	}
	if first == 0 {
		if c.left() < 8 {
			return 0, c.errf("truncated 9-byte varint")
		}
		var v uint64
		for i := 7; i >= 0; i-- {
			v = v<<8 | uint64(c.b[c.pos+i])
		}
		c.pos += 8
		return v, nil
	}
	n := 0
	for first>>n&1 == 0 {
		n++
	}
	if c.left() < n {
		return 0, c.errf("truncated varint")
	}
	v := uint64(first)
	for i := 0; i < n; i++ {
		v |= uint64(c.b[c.pos+i]) << (8 * (i + 1))
	}
	c.pos += n
	return v >> (n + 1), nil
}

func (c *cursor) signedVarint() (int64, error) {
	u, err := c.varint()
	return int64(u>>1) ^ -int64(u&1), err
}

// count reads a varint used as a number of following items, each at least minBytes long, and
// rejects counts the remaining data cannot hold (so no allocation exceeds the input).
func (c *cursor) count(what string, minBytes int) (int, error) {
	v, err := c.varint()
	if err != nil {
		return 0, err
	}
	if v > uint64(c.left()/minBytes) {
		return 0, c.errf("%s count %d exceeds the %d bytes left", what, v, c.left())
	}
	return int(v), nil
}

func (c *cursor) bytes(n uint64) ([]byte, error) {
	if n > uint64(c.left()) {
		return nil, c.errf("%d bytes wanted, %d left", n, c.left())
	}
	c.pos += int(n)
	return c.b[c.pos-int(n) : c.pos : c.pos], nil
}

// index reads a varint index into a table of n entries.
func (c *cursor) index(what string, n int) (int, error) {
	v, err := c.varint()
	if err != nil {
		return 0, err
	}
	if v >= uint64(n) {
		return 0, c.errf("%s index %d out of range (%d entries)", what, v, n)
	}
	return int(v), nil
}

// section reads a section header and its data; the alignment padding is checked against file
// offsets (a reader that maps the file sees the same alignment).
func (c *cursor) section() (id int, body *cursor, err error) {
	head, err := c.byte1()
	if err != nil {
		return 0, nil, err
	}
	id = int(head & 0x7f)
	if id >= numSections {
		return 0, nil, c.errf("invalid section id %d", id)
	}
	length, err := c.varint()
	if err != nil {
		return 0, nil, err
	}
	if head&0x80 != 0 {
		align, err := c.varint()
		if err != nil {
			return 0, nil, err
		}
		if err := c.alignTo(align); err != nil {
			return 0, nil, err
		}
	}
	start := c.base + c.pos
	if length > uint64(c.left()) {
		return 0, nil, c.errf("%s section of %d bytes, only %d left", sectionNames[id], length, c.left())
	}
	b, _ := c.bytes(length)
	return id, &cursor{b: b, base: start, what: sectionNames[id] + " section"}, nil
}

func (c *cursor) alignTo(align uint64) error {
	if align == 0 || align&(align-1) != 0 || align > 1<<32 {
		return c.errf("alignment %d is not a power of two", align)
	}
	for uint64(c.base+c.pos)%align != 0 {
		b, err := c.byte1()
		if err != nil {
			return err
		}
		if b != alignByte {
			return c.errf("padding byte 0x%02x, want 0xCB", b)
		}
	}
	return nil
}

type bcOpName struct {
	dialect int
	name    string // with the dialect prefix
}

type bcTableEntry struct {
	dialect int
	custom  bool
	data    []byte
	base    int // file offset of data
	state   uint8
	attr    mAttr
	typ     *mType
}

const (
	entryNew = iota
	entryBusy
	entryDone
)

type bcReader struct {
	data      []byte
	version   uint64
	strings   []string
	dialects  []string
	opNames   []bcOpName
	props     [][]byte
	attrs     []bcTableEntry
	types     []bcTableEntry
	resources []*graph.Resource // by handle; nil for non-builtin entries
	byKey     map[string]*graph.Resource
	m         *graph.Module
	depth     int
}

func (r *bcReader) read() (*graph.Module, error) {
	c := &cursor{b: r.data, what: "header"}
	if len(r.data) < 4 || string(r.data[:4]) != bcMagic {
		return nil, c.errf("not MLIR bytecode (magic ML\\xEFR missing)")
	}
	c.pos = 4
	v, err := c.varint()
	if err != nil {
		return nil, err
	}
	if v < 5 || v > bcVersion {
		return nil, c.errf("bytecode version %d: only versions 5 and 6 are supported", v)
	}
	r.version = v
	nul := -1
	for i := c.pos; i < len(r.data); i++ {
		if r.data[i] == 0 {
			nul = i
			break
		}
	}
	if nul < 0 {
		return nil, c.errf("producer string is not NUL-terminated")
	}
	c.pos = nul + 1
	c.what = "section list"
	var secs [numSections]*cursor
	for !c.empty() {
		id, body, err := c.section()
		if err != nil {
			return nil, err
		}
		if id == secDialectVersions {
			return nil, c.errf("dialect versions section at top level")
		}
		if secs[id] != nil {
			return nil, c.errf("duplicate %s section", sectionNames[id])
		}
		secs[id] = body
	}
	for _, id := range []int{secString, secDialect, secAttrType, secAttrTypeOffset, secIR, secProperties} {
		if secs[id] == nil {
			return nil, fmt.Errorf("missing %s section", sectionNames[id])
		}
	}
	if (secs[secResource] == nil) != (secs[secResourceOffset] == nil) {
		return nil, errors.New("resource and resource offset sections must both be present or both absent")
	}
	if err := r.readStrings(secs[secString]); err != nil {
		return nil, err
	}
	if err := r.readProperties(secs[secProperties]); err != nil {
		return nil, err
	}
	if err := r.readDialects(secs[secDialect]); err != nil {
		return nil, err
	}
	r.m = &graph.Module{}
	r.byKey = map[string]*graph.Resource{}
	if secs[secResource] != nil {
		if err := r.readResources(secs[secResourceOffset], secs[secResource]); err != nil {
			return nil, err
		}
	}
	if err := r.readAttrTypeOffsets(secs[secAttrTypeOffset], secs[secAttrType]); err != nil {
		return nil, err
	}
	if err := r.readIR(secs[secIR]); err != nil {
		return nil, err
	}
	return r.m, nil
}

func (r *bcReader) readStrings(c *cursor) error {
	n, err := c.count("string", 2)
	if err != nil {
		return err
	}
	lens := make([]uint64, n)
	for i := n - 1; i >= 0; i-- {
		if lens[i], err = c.varint(); err != nil {
			return err
		}
	}
	r.strings = make([]string, n)
	for i := range r.strings {
		b, err := c.bytes(lens[i])
		if err != nil {
			return err
		}
		if len(b) == 0 || b[len(b)-1] != 0 {
			return c.errf("string %d is not NUL-terminated", i)
		}
		r.strings[i] = string(b[:len(b)-1])
	}
	if !c.empty() {
		return c.errf("%d bytes after the last string", c.left())
	}
	return nil
}

func (r *bcReader) str(c *cursor) (string, error) {
	i, err := c.index("string", len(r.strings))
	if err != nil {
		return "", err
	}
	return r.strings[i], nil
}

func (r *bcReader) readProperties(c *cursor) error {
	if c.empty() {
		return nil
	}
	n, err := c.count("properties entry", 1)
	if err != nil {
		return err
	}
	r.props = make([][]byte, n)
	for i := range r.props {
		size, err := c.varint()
		if err != nil {
			return err
		}
		if r.props[i], err = c.bytes(size); err != nil {
			return err
		}
	}
	if !c.empty() {
		return c.errf("%d bytes after the last properties entry", c.left())
	}
	return nil
}

func (r *bcReader) readDialects(c *cursor) error {
	n, err := c.count("dialect", 1)
	if err != nil {
		return err
	}
	r.dialects = make([]string, n)
	for i := range r.dialects {
		v, err := c.varint()
		if err != nil {
			return err
		}
		if v>>1 >= uint64(len(r.strings)) {
			return c.errf("dialect name string %d out of range", v>>1)
		}
		r.dialects[i] = r.strings[v>>1]
		if v&1 == 1 { // a version entry: skipped, qconv's reader needs no dialect upgrades
			id, _, err := c.section()
			if err != nil {
				return err
			}
			if id != secDialectVersions {
				return c.errf("dialect %s: expected a version section, found %s", r.dialects[i], sectionNames[id])
			}
		}
	}
	if _, err := c.varint(); err != nil { // number of op names, a size hint
		return err
	}
	for !c.empty() {
		d, err := c.index("dialect", len(r.dialects))
		if err != nil {
			return err
		}
		k, err := c.count("op name", 1)
		if err != nil {
			return err
		}
		for ; k > 0; k-- {
			v, err := c.varint()
			if err != nil {
				return err
			}
			if v>>1 >= uint64(len(r.strings)) {
				return c.errf("op name string %d out of range", v>>1)
			}
			r.opNames = append(r.opNames, bcOpName{d, r.dialects[d] + "." + r.strings[v>>1]})
		}
	}
	return nil
}

func (r *bcReader) readResources(offsets, data *cursor) error {
	ext, err := offsets.count("external resource group", 1)
	if err != nil {
		return err
	}
	entry := func() (key string, size uint64, kind byte, err error) {
		if key, err = r.str(offsets); err != nil {
			return
		}
		if size, err = offsets.varint(); err != nil {
			return
		}
		kind, err = offsets.byte1()
		return
	}
	for ; ext > 0; ext-- { // external resources (e.g. mlir_reproducer) carry nothing qconv uses
		if _, err := r.str(offsets); err != nil {
			return err
		}
		n, err := offsets.count("external resource", 3)
		if err != nil {
			return err
		}
		for ; n > 0; n-- {
			_, size, _, err := entry()
			if err != nil {
				return err
			}
			if _, err := data.bytes(size); err != nil {
				return err
			}
		}
	}
	for !offsets.empty() {
		d, err := offsets.index("dialect", len(r.dialects))
		if err != nil {
			return err
		}
		n, err := offsets.count("resource", 3)
		if err != nil {
			return err
		}
		for ; n > 0; n-- {
			key, size, kind, err := entry()
			if err != nil {
				return err
			}
			start := data.base + data.pos
			body, err := data.bytes(size)
			if err != nil {
				return err
			}
			if r.dialects[d] != "builtin" {
				r.resources = append(r.resources, nil)
				continue
			}
			if kind != resourceBlob {
				return offsets.errf("builtin resource %q has kind %d, want a blob", key, kind)
			}
			if r.byKey[key] != nil {
				return offsets.errf("resource %q defined twice", key)
			}
			res := &graph.Resource{Key: key, Align: 1}
			if size > 0 {
				e := &cursor{b: body, base: start, what: fmt.Sprintf("resource %q", key)}
				if res.Align, err = e.varint(); err != nil {
					return err
				}
				blobSize, err := e.varint()
				if err != nil {
					return err
				}
				if err := e.alignTo(res.Align); err != nil {
					return err
				}
				if res.Data, err = e.bytes(blobSize); err != nil {
					return err
				}
				if !e.empty() {
					return e.errf("%d bytes after the blob", e.left())
				}
				res.Size = int64(blobSize)
			}
			r.resources = append(r.resources, res)
			r.byKey[key] = res
			r.m.Resources = append(r.m.Resources, res)
		}
	}
	if !data.empty() {
		return data.errf("%d bytes not covered by resource entries", data.left())
	}
	return nil
}

func (r *bcReader) readAttrTypeOffsets(offsets, data *cursor) error {
	nAttrs, err := offsets.varint()
	if err != nil {
		return err
	}
	nTypes, err := offsets.varint()
	if err != nil {
		return err
	}
	// Every entry holds at least one byte, and every entry costs one offset byte.
	if nAttrs+nTypes > uint64(len(data.b)) || nAttrs+nTypes > uint64(offsets.left()) {
		return offsets.errf("%d attributes and %d types do not fit the sections", nAttrs, nTypes)
	}
	r.attrs = make([]bcTableEntry, nAttrs)
	r.types = make([]bcTableEntry, nTypes)
	pos := 0
	for _, table := range [][]bcTableEntry{r.attrs, r.types} {
		for i := 0; i < len(table); {
			d, err := offsets.index("dialect", len(r.dialects))
			if err != nil {
				return err
			}
			n, err := offsets.varint()
			if err != nil {
				return err
			}
			if n > uint64(len(table)-i) {
				return offsets.errf("group of %d entries overruns the table", n)
			}
			for k := 0; k < int(n); k, i = k+1, i+1 {
				v, err := offsets.varint()
				if err != nil {
					return err
				}
				size := v >> 1
				if size > uint64(len(data.b)-pos) {
					return offsets.errf("entry of %d bytes overruns the attribute/type section", size)
				}
				table[i] = bcTableEntry{dialect: d, custom: v&1 == 1, data: data.b[pos : pos+int(size)], base: data.base + pos}
				pos += int(size)
			}
		}
	}
	if !offsets.empty() {
		return offsets.errf("%d trailing bytes", offsets.left())
	}
	if pos != len(data.b) {
		return data.errf("%d bytes not covered by entries", len(data.b)-pos)
	}
	return nil
}

// Entries refer to other entries by index; decoding recurses with a depth limit and detects cycles.
const maxEntryDepth = 200

func (r *bcReader) attr(i int) (mAttr, error) {
	e := &r.attrs[i]
	switch e.state {
	case entryDone:
		return e.attr, nil
	case entryBusy:
		return nil, fmt.Errorf("attribute #%d refers to itself", i)
	}
	if r.depth > maxEntryDepth {
		return nil, fmt.Errorf("attribute #%d: nesting deeper than %d", i, maxEntryDepth)
	}
	e.state = entryBusy
	r.depth++
	a, err := r.decodeAttr(e, i)
	r.depth--
	e.state = entryNew
	if err != nil {
		return nil, err
	}
	e.attr, e.state = a, entryDone
	return a, nil
}

func (r *bcReader) typ(i int) (*mType, error) {
	e := &r.types[i]
	switch e.state {
	case entryDone:
		return e.typ, nil
	case entryBusy:
		return nil, fmt.Errorf("type #%d refers to itself", i)
	}
	if r.depth > maxEntryDepth {
		return nil, fmt.Errorf("type #%d: nesting deeper than %d", i, maxEntryDepth)
	}
	e.state = entryBusy
	r.depth++
	t, err := r.decodeType(e, i)
	r.depth--
	e.state = entryNew
	if err != nil {
		return nil, err
	}
	e.typ, e.state = t, entryDone
	return t, nil
}

func (r *bcReader) attrRef(c *cursor) (mAttr, error) {
	i, err := c.index("attribute", len(r.attrs))
	if err != nil {
		return nil, err
	}
	return r.attr(i)
}

func (r *bcReader) typeRef(c *cursor) (*mType, error) {
	i, err := c.index("type", len(r.types))
	if err != nil {
		return nil, err
	}
	return r.typ(i)
}

// asmText returns an assembly entry's text (NUL-terminated, nothing after).
func asmText(e *bcTableEntry, what string, i int) (string, error) {
	if len(e.data) == 0 || e.data[len(e.data)-1] != 0 {
		return "", fmt.Errorf("%s #%d at offset %d: assembly text is not NUL-terminated", what, i, e.base)
	}
	s := string(e.data[:len(e.data)-1])
	if strings.IndexByte(s, 0) >= 0 {
		return "", fmt.Errorf("%s #%d at offset %d: NUL inside assembly text", what, i, e.base)
	}
	return s, nil
}

func (r *bcReader) decodeType(e *bcTableEntry, i int) (*mType, error) {
	if !e.custom {
		s, err := asmText(e, "type", i)
		if err != nil {
			return nil, err
		}
		p := &asmParser{s: s}
		t, err := p.parseType(0)
		if err == nil {
			err = p.end()
		}
		if err != nil {
			return nil, fmt.Errorf("type #%d at offset %d: %w", i, e.base, err)
		}
		return t, nil
	}
	c := &cursor{b: e.data, base: e.base, what: fmt.Sprintf("type #%d", i)}
	if r.dialects[e.dialect] != "builtin" {
		return nil, c.errf("custom encoding of dialect %q is not supported", r.dialects[e.dialect])
	}
	code, err := c.varint()
	if err != nil {
		return nil, err
	}
	var t *mType
	switch code {
	case codeIntegerType:
		v, err := c.varint()
		if err != nil {
			return nil, err
		}
		width, sign := v>>2, v&3
		if sign == 3 || width == 0 || width > 1<<24 {
			return nil, c.errf("invalid integer type (width %d, signedness %d)", width, sign)
		}
		name := [3]string{"i", "si", "ui"}[sign] + fmt.Sprint(width)
		t, _ = elemType(name)
	case codeIndexType, codeBF16Type, codeF16Type, codeF32Type, codeF64Type, codeF80Type, codeF128Type, codeNoneType:
		name := map[uint64]string{codeIndexType: "index", codeBF16Type: "bf16", codeF16Type: "f16", codeF32Type: "f32",
			codeF64Type: "f64", codeF80Type: "f80", codeF128Type: "f128", codeNoneType: "none"}[code]
		t, _ = elemType(name)
	case codeFunctionType:
		t = &mType{kind: mFunc}
		for _, list := range []*[]*mType{&t.ins, &t.outs} {
			n, err := c.count("function type member", 1)
			if err != nil {
				return nil, err
			}
			for ; n > 0; n-- {
				x, err := r.typeRef(c)
				if err != nil {
					return nil, err
				}
				*list = append(*list, x)
			}
		}
	case codeRankedTensorType:
		n, err := c.count("dimension", 1)
		if err != nil {
			return nil, err
		}
		t = &mType{kind: mTensor, shape: make([]int64, n)}
		for k := range t.shape {
			d, err := c.signedVarint()
			if err != nil {
				return nil, err
			}
			switch {
			case d == dynDimEncoded:
				d = graph.Dyn
			case d < 0:
				return nil, c.errf("negative dimension %d", d)
			}
			t.shape[k] = d
		}
		if t.elem, err = r.typeRef(c); err != nil {
			return nil, err
		}
		if t.elem.kind != mElem {
			return nil, c.errf("tensor of %s", t.elem)
		}
	case codeComplexType, codeRankedTensorTypeWithEncoding, codeTupleType, codeUnrankedTensorType, codeVectorType,
		codeVectorTypeWithScalableDims, codeMemRefType, codeMemRefTypeWithMemSpace, codeUnrankedMemRefType, codeUnrankedMemRefTypeWithMemSpace:
		// Valid MLIR, but no value in a coreai graph has such a type.
		return nil, c.errf("builtin type code %d is not supported", code)
	default:
		return nil, c.errf("unknown builtin type code %d", code)
	}
	if !c.empty() {
		return nil, c.errf("%d trailing bytes", c.left())
	}
	return t, nil
}

func (r *bcReader) decodeAttr(e *bcTableEntry, i int) (mAttr, error) {
	if !e.custom {
		s, err := asmText(e, "attribute", i)
		if err != nil {
			return nil, err
		}
		p := &asmParser{s: s}
		a, err := p.parseAttr(0)
		if err == nil {
			err = p.end()
		}
		if err != nil {
			return nil, fmt.Errorf("attribute #%d at offset %d: %w", i, e.base, err)
		}
		if res, ok := a.(mDenseRes); ok { // assembly form names the blob by key
			if r.byKey[res.key] == nil {
				return nil, fmt.Errorf("attribute #%d: dense_resource<%s> of an unknown resource", i, res.key)
			}
		}
		return a, nil
	}
	c := &cursor{b: e.data, base: e.base, what: fmt.Sprintf("attribute #%d", i)}
	if r.dialects[e.dialect] != "builtin" {
		return nil, c.errf("custom encoding of dialect %q is not supported", r.dialects[e.dialect])
	}
	code, err := c.varint()
	if err != nil {
		return nil, err
	}
	var a mAttr
	list := func(min int, each func() error) error {
		n, err := c.count("list element", min)
		if err != nil {
			return err
		}
		for ; n > 0; n-- {
			if err := each(); err != nil {
				return err
			}
		}
		return nil
	}
	locRef := func() error {
		x, err := r.attrRef(c)
		if err == nil {
			if _, ok := x.(mLoc); !ok {
				err = c.errf("expected a location, found %s", attrKind(x))
			}
		}
		return err
	}
	strRef := func() (string, error) {
		x, err := r.attrRef(c)
		if err != nil {
			return "", err
		}
		s, ok := x.(mString)
		if !ok {
			return "", c.errf("expected a string attribute, found %s", attrKind(x))
		}
		return s.s, nil
	}
	switch code {
	case codeArray:
		var arr mArray
		err = list(1, func() error {
			x, err := r.attrRef(c)
			arr = append(arr, x)
			return err
		})
		a = arr
	case codeDictionary:
		var d mDict
		err = list(2, func() error {
			name, err := strRef()
			if err != nil {
				return err
			}
			x, err := r.attrRef(c)
			d = append(d, mNamed{name, x})
			return err
		})
		a = d
	case codeString:
		var s string
		s, err = r.str(c)
		a = mString{s}
	case codeStringWithType:
		if _, err = r.str(c); err == nil {
			_, err = r.typeRef(c)
		}
		a = mOther{"typed string"}
	case codeFlatSymbolRef:
		var s string
		s, err = strRef()
		a = mSymRef{root: s}
	case codeSymbolRef:
		ref := mSymRef{}
		if ref.root, err = strRef(); err == nil {
			err = list(1, func() error {
				x, err := r.attrRef(c)
				if err != nil {
					return err
				}
				flat, ok := x.(mSymRef)
				if !ok || flat.nested != "" {
					return c.errf("nested symbol reference is not flat")
				}
				ref.nested += "::@" + flat.root
				return nil
			})
		}
		a = ref
	case codeTypeAttr:
		var t *mType
		t, err = r.typeRef(c)
		a = mTypeAttr{t}
	case codeUnit:
		a = mOther{"unit"}
	case codeInteger, codeFloat:
		var t *mType
		if t, err = r.typeRef(c); err != nil {
			return nil, err
		}
		width, ok := scalarWidth(t)
		if !ok || (code == codeFloat) != (t.dt.IsFloat() || t.name == "bf16" || t.name == "f64") {
			return nil, c.errf("scalar attribute of type %s", t)
		}
		switch {
		case width <= 8:
			_, err = c.byte1()
		case width <= 64:
			_, err = c.signedVarint()
		default:
			err = list(1, func() error { _, err := c.signedVarint(); return err })
		}
		a = mOther{"scalar " + t.String()}
	case codeCallSiteLoc:
		if err = locRef(); err == nil {
			err = locRef()
		}
		a = mLoc{}
	case codeFileLineColLoc:
		if _, err = strRef(); err == nil {
			if _, err = c.varint(); err == nil {
				_, err = c.varint()
			}
		}
		a = mLoc{}
	case codeFusedLoc, codeFusedLocWithMetadata:
		err = list(1, locRef)
		if err == nil && code == codeFusedLocWithMetadata {
			_, err = r.attrRef(c)
		}
		a = mLoc{}
	case codeNameLoc:
		if _, err = strRef(); err == nil {
			err = locRef()
		}
		a = mLoc{}
	case codeUnknownLoc:
		a = mLoc{}
	case codeDenseResource:
		var t *mType
		if t, err = r.typeRef(c); err != nil {
			return nil, err
		}
		h, err := c.index("resource handle", len(r.resources))
		if err != nil {
			return nil, err
		}
		if r.resources[h] == nil {
			return nil, c.errf("resource handle %d is not a builtin blob", h)
		}
		a = mDenseRes{t: t, handle: h}
	case codeDenseIntOrFP:
		var t *mType
		if t, err = r.typeRef(c); err != nil {
			return nil, err
		}
		size, err := c.varint()
		if err != nil {
			return nil, err
		}
		raw, err := c.bytes(size)
		if err != nil {
			return nil, err
		}
		if t.kind != mTensor || t.elem.dt == 0 {
			a = mOther{"dense elements of " + t.String()}
			break
		}
		n, err := numElements(t.shape)
		if err != nil {
			return nil, c.errf("dense %s: %v", t, err)
		}
		elems, err := fromMLIRStorage(t.elem.dt, n, raw)
		if err != nil {
			return nil, c.errf("dense %s: %v", t, err)
		}
		a = mDense{t: t, elems: elems}
	case codeDenseArray:
		if _, err = r.typeRef(c); err == nil {
			if _, err = c.varint(); err == nil {
				var size uint64
				if size, err = c.varint(); err == nil {
					_, err = c.bytes(size)
				}
			}
		}
		a = mOther{"dense array"}
	case codeDenseString, codeSparseElements, codeDistinct:
		return nil, c.errf("builtin attribute code %d is not supported", code)
	default:
		return nil, c.errf("unknown builtin attribute code %d", code)
	}
	if err != nil {
		return nil, err
	}
	if !c.empty() {
		return nil, c.errf("%d trailing bytes", c.left())
	}
	return a, nil
}

// scalarWidth is the storage width of an integer or float scalar type (index counts as 64).
func scalarWidth(t *mType) (int, bool) {
	if t.kind != mElem {
		return 0, false
	}
	if t.dt != 0 {
		return t.dt.Bits(), true
	}
	switch t.name {
	case "index", "f64":
		return 64, true
	case "bf16":
		return 16, true
	}
	var w int
	if _, err := fmt.Sscanf(strings.TrimLeft(t.name, "isu"), "%d", &w); err == nil && t.name[0] != 'f' {
		return w, true
	}
	return 0, false
}

// The IR: the top level holds one builtin.module, whose single block holds coreai.graph ops,
// each with one block ending in coreai.output.

// valueScope numbers values as the MLIR reader does: an isolated region starts a new scope; a
// nested region continues its parent's.
type valueScope struct {
	values []*graph.Value
}

type bcOp struct {
	name     string
	attrs    mDict
	results  []*mType
	operands []int
	regions  int
	isolated bool
}

func (r *bcReader) readIR(c *cursor) error {
	head, err := c.varint()
	if err != nil {
		return err
	}
	if head != 1<<1 {
		return c.errf("top level must hold exactly one op and no block arguments")
	}
	op, err := r.readOp(c, nil)
	if err != nil {
		return err
	}
	if op.name != opModule || op.regions != 1 || len(op.results) != 0 {
		return c.errf("top-level op is %s with %d regions, want builtin.module with one", op.name, op.regions)
	}
	if len(op.attrs) > 0 {
		return c.errf("builtin.module attributes (%s, ...) are not supported", op.attrs[0].name)
	}
	body, err := r.regionReader(c, op)
	if err != nil {
		return err
	}
	scope := &valueScope{}
	nBlocks, err := body.varint()
	if err != nil {
		return err
	}
	if nBlocks != 1 {
		return body.errf("builtin.module region has %d blocks, want 1", nBlocks)
	}
	numValues, err := body.count("value", 1)
	if err != nil {
		return err
	}
	if numValues != 0 {
		return body.errf("module region defines %d values, want none", numValues)
	}
	nOps, hasArgs, err := blockHeader(body)
	if err != nil {
		return err
	}
	if hasArgs {
		return body.errf("builtin.module block has arguments")
	}
	for ; nOps > 0; nOps-- {
		if err := r.readGraph(body, scope); err != nil {
			return err
		}
	}
	if !body.empty() || !c.empty() {
		return c.errf("data after the module")
	}
	return nil
}

func blockHeader(c *cursor) (nOps int, hasArgs bool, err error) {
	v, err := c.varint()
	if err != nil {
		return 0, false, err
	}
	if v>>1 > uint64(c.left()) { // each op takes at least one byte
		return 0, false, c.errf("block with %d ops exceeds the %d bytes left", v>>1, c.left())
	}
	return int(v >> 1), v&1 == 1, nil
}

// regionReader returns the cursor holding op's regions: a nested IR section when the op is
// isolated, else the enclosing cursor.
func (r *bcReader) regionReader(c *cursor, op *bcOp) (*cursor, error) {
	if !op.isolated {
		return c, nil
	}
	id, sub, err := c.section()
	if err != nil {
		return nil, err
	}
	if id != secIR {
		return nil, c.errf("%s regions: expected an IR section, found %s", op.name, sectionNames[id])
	}
	sub.what = op.name + " region"
	return sub, nil
}

// readOp reads an op without its regions.
func (r *bcReader) readOp(c *cursor, scope *valueScope) (*bcOp, error) {
	at := c.base + c.pos
	ni, err := c.index("op name", len(r.opNames))
	if err != nil {
		return nil, err
	}
	op := &bcOp{name: r.opNames[ni].name}
	fail := func(err error) (*bcOp, error) { return nil, fmt.Errorf("op %s at offset %d: %w", op.name, at, err) }
	mask, err := c.byte1()
	if err != nil {
		return fail(err)
	}
	if mask&opHasSuccessors != 0 || mask&0x80 != 0 {
		return fail(c.errf("successors or unknown mask bits (0x%02x) are not supported", mask))
	}
	loc, err := r.attrRef(c)
	if err != nil {
		return fail(err)
	}
	if _, ok := loc.(mLoc); !ok {
		return fail(c.errf("location is a %s", attrKind(loc)))
	}
	if mask&opHasAttrs != 0 {
		a, err := r.attrRef(c)
		if err != nil {
			return fail(err)
		}
		d, ok := a.(mDict)
		if !ok {
			return fail(c.errf("attributes are a %s, want a dictionary", attrKind(a)))
		}
		op.attrs = append(op.attrs, d...)
	}
	if mask&opHasProperties != 0 {
		pi, err := c.index("properties", len(r.props))
		if err != nil {
			return fail(err)
		}
		// builtin.module's native properties (sym_name, sym_visibility) carry nothing qconv
		// keeps; an unregistered op stores one attribute index, normally a dictionary.
		if op.name != opModule {
			pc := &cursor{b: r.props[pi], what: fmt.Sprintf("properties entry %d", pi)}
			a, err := r.attrRef(pc)
			if err != nil {
				return fail(err)
			}
			d, ok := a.(mDict)
			if !ok || !pc.empty() {
				return fail(pc.errf("properties must be one dictionary attribute"))
			}
			op.attrs = append(op.attrs, d...)
		}
	}
	if mask&opHasResults != 0 {
		n, err := c.count("result", 1)
		if err != nil {
			return fail(err)
		}
		for ; n > 0; n-- {
			t, err := r.typeRef(c)
			if err != nil {
				return fail(err)
			}
			op.results = append(op.results, t)
		}
	}
	if mask&opHasOperands != 0 {
		n, err := c.count("operand", 1)
		if err != nil {
			return fail(err)
		}
		for ; n > 0; n-- {
			if scope == nil {
				return fail(c.errf("operands outside a region"))
			}
			v, err := c.index("value", len(scope.values))
			if err != nil {
				return fail(err)
			}
			op.operands = append(op.operands, v)
		}
	}
	if mask&opHasUseLists != 0 {
		if err := skipUseLists(c, len(op.results)); err != nil {
			return fail(err)
		}
	}
	if mask&opHasRegions != 0 {
		v, err := c.varint()
		if err != nil {
			return fail(err)
		}
		if v>>1 > uint64(c.left()) {
			return fail(c.errf("%d regions exceed the data left", v>>1))
		}
		op.regions, op.isolated = int(v>>1), v&1 == 1
	}
	return op, nil
}

// skipUseLists reads use-list order data (it only orders uses, which the IR does not keep).
func skipUseLists(c *cursor, rangeSize int) error {
	n := uint64(1)
	var err error
	if rangeSize > 1 {
		if n, err = c.varint(); err != nil {
			return err
		}
	}
	for ; n > 0; n-- {
		if rangeSize > 1 {
			if _, err := c.varint(); err != nil {
				return err
			}
		}
		v, err := c.varint()
		if err != nil {
			return err
		}
		if v>>1 > uint64(c.left()) {
			return c.errf("use-list of %d entries exceeds the data left", v>>1)
		}
		for k := v >> 1; k > 0; k-- {
			if _, err := c.varint(); err != nil {
				return err
			}
		}
	}
	return nil
}

// readGraph reads one coreai.graph op with its body into a Func.
func (r *bcReader) readGraph(c *cursor, parent *valueScope) error {
	at := c.base + c.pos
	op, err := r.readOp(c, parent)
	if err != nil {
		return err
	}
	if op.name != opGraph || op.regions != 1 || len(op.results) != 0 || len(op.operands) != 0 {
		return c.errf("module body holds %s (%d regions, %d results, %d operands), want coreai.graph with one region", op.name, op.regions, len(op.results), len(op.operands))
	}
	f := &graph.Func{}
	name := "?"
	for _, na := range op.attrs {
		if s, ok := na.val.(mString); ok && na.name == attrSymName {
			name = s.s
		}
	}
	fail := func(err error) error { return fmt.Errorf("coreai.graph @%s at offset %d: %w", name, at, err) }
	body, err := r.regionReader(c, op)
	if err != nil {
		return fail(err)
	}
	scope := parent
	if op.isolated {
		scope = &valueScope{}
	}
	nBlocks, err := body.varint()
	if err != nil {
		return fail(err)
	}
	if nBlocks != 1 {
		return fail(body.errf("region has %d blocks, want 1", nBlocks))
	}
	numValues, err := body.count("value", 1)
	if err != nil {
		return fail(err)
	}
	first := len(scope.values)
	scope.values = append(scope.values, make([]*graph.Value, numValues)...)
	next := first
	define := func(v *graph.Value) error {
		if next >= len(scope.values) {
			return body.errf("more values than the region's %d", numValues)
		}
		scope.values[next] = v
		next++
		return nil
	}
	nOps, hasArgs, err := blockHeader(body)
	if err != nil {
		return fail(err)
	}
	if hasArgs {
		n, err := body.count("block argument", 1)
		if err != nil {
			return fail(err)
		}
		for k := 0; k < n; k++ {
			v, err := body.varint()
			if err != nil {
				return fail(err)
			}
			if v>>1 >= uint64(len(r.types)) {
				return fail(body.errf("type index %d out of range", v>>1))
			}
			mt, err := r.typ(int(v >> 1))
			if err != nil {
				return fail(err)
			}
			if v&1 == 1 {
				if loc, err := r.attrRef(body); err != nil {
					return fail(err)
				} else if _, ok := loc.(mLoc); !ok {
					return fail(body.errf("argument location is a %s", attrKind(loc)))
				}
			}
			t, err := mt.graphType()
			if err != nil {
				return fail(body.errf("argument %d: %v", k, err))
			}
			val := &graph.Value{Type: t, Index: k}
			f.Args = append(f.Args, graph.Arg{Value: val})
			if err := define(val); err != nil {
				return fail(err)
			}
		}
		useLists, err := body.byte1()
		if err != nil {
			return fail(err)
		}
		if useLists != 0 {
			if err := skipUseLists(body, n); err != nil {
				return fail(err)
			}
		}
	}
	var outputs []*graph.Value
	declared := slices.ContainsFunc(op.attrs, func(na mNamed) bool { return na.name == attrCompositeDecl })
	for k := 0; k < nOps; k++ {
		if outputs != nil {
			return fail(body.errf("ops after coreai.output"))
		}
		o, err := r.readOp(body, scope)
		if err != nil {
			return fail(err)
		}
		if o.regions != 0 && declared {
			// A composite body with a loop (Apple's gated_delta_update): the declaration is what a
			// runtime runs; the rest of the body is skipped (skip_regions.go). An isolated graph's
			// body is its own section and is left unread.
			f.Opaque = fmt.Sprintf("its body holds %s, a region op qconv's IR does not represent", o.name)
			if !op.isolated {
				if err := r.skipOpRegions(body, scope, o); err != nil {
					return fail(err)
				}
				if err := r.skipOps(body, scope, nOps-k-1); err != nil {
					return fail(err)
				}
			}
			break
		}
		if o.regions != 0 {
			return fail(body.errf("%s has regions: control flow is not part of qconv's IR", o.name))
		}
		operands := make([]*graph.Value, len(o.operands))
		for i, idx := range o.operands {
			if operands[i] = scope.values[idx]; operands[i] == nil {
				return fail(body.errf("%s operand %d refers to value %d before its definition", o.name, i, idx))
			}
		}
		if o.name == opOutput {
			if len(o.results) != 0 || len(o.attrs) != 0 {
				return fail(body.errf("coreai.output with results or attributes"))
			}
			outputs = operands
			continue
		}
		if !strings.HasPrefix(o.name, "coreai.") || o.name == opGraph {
			return fail(body.errf("op %s inside a graph", o.name))
		}
		irOp := &graph.Op{Name: o.name, Operands: operands}
		if len(o.attrs) > 0 {
			irOp.Attrs = map[string]graph.Attr{}
		}
		for _, na := range o.attrs {
			if _, dup := irOp.Attrs[na.name]; dup {
				return fail(body.errf("%s: attribute %s given twice", o.name, na.name))
			}
			a, err := r.opAttr(na.val)
			if err != nil {
				return fail(body.errf("%s attribute %s: %v", o.name, na.name, err))
			}
			irOp.Attrs[na.name] = a
		}
		for i, mt := range o.results {
			t, err := mt.graphType()
			if err != nil {
				return fail(body.errf("%s result %d: %v", o.name, i, err))
			}
			v := &graph.Value{Type: t, Def: irOp, Index: i}
			irOp.Results = append(irOp.Results, v)
			if err := define(v); err != nil {
				return fail(err)
			}
		}
		f.Body = append(f.Body, irOp)
	}
	switch {
	case f.Opaque != "":
		f.Body = nil
		res, err := opaqueResults(op.attrs)
		if err != nil {
			return fail(err)
		}
		f.Results = res
	case outputs == nil:
		return fail(body.errf("graph does not end in coreai.output"))
	case op.isolated && !body.empty():
		return fail(body.errf("%d bytes after the graph body", body.left()))
	case next != len(scope.values):
		return fail(body.errf("region declares %d values, defines %d", numValues, next-first))
	}
	scope.values = scope.values[:first] // values of a region are not visible after it
	for _, v := range outputs {
		f.Results = append(f.Results, graph.Result{Value: v})
	}
	if err := r.graphAttrs(f, op.attrs); err != nil {
		return fail(err)
	}
	for _, g := range r.m.Funcs {
		if g.Name == f.Name {
			return fail(fmt.Errorf("function @%s defined twice", f.Name))
		}
	}
	f.Renumber()
	r.m.Funcs = append(r.m.Funcs, f)
	return nil
}

// graphAttrs applies the coreai.graph attributes: name, visibility, function type (checked
// against the body), argument and result names.
func (r *bcReader) graphAttrs(f *graph.Func, attrs mDict) error {
	seen := map[string]bool{}
	var fnType *mType
	for _, na := range attrs {
		if seen[na.name] {
			return fmt.Errorf("attribute %s given twice", na.name)
		}
		seen[na.name] = true
		switch na.name {
		case attrSymName:
			s, ok := na.val.(mString)
			if !ok || s.s == "" {
				return fmt.Errorf("sym_name is a %s, want a non-empty string", attrKind(na.val))
			}
			f.Name = s.s
		case attrVisibilty:
			s, ok := na.val.(mString)
			if !ok || (s.s != "private" && s.s != "public") {
				return fmt.Errorf("sym_visibility %v, want \"private\" or \"public\"", na.val)
			}
			f.Private = s.s == "private"
		case attrFuncType:
			ta, ok := na.val.(mTypeAttr)
			if !ok || ta.t.kind != mFunc {
				return fmt.Errorf("function_type is a %s, want a function type", attrKind(na.val))
			}
			fnType = ta.t
		case attrArgAttrs, attrResAttrs:
			arr, ok := na.val.(mArray)
			n := len(f.Args)
			if na.name == attrResAttrs {
				n = len(f.Results)
			}
			if !ok || len(arr) != n {
				return fmt.Errorf("%s must be an array of %d dictionaries", na.name, n)
			}
			for i, e := range arr {
				d, ok := e.(mDict)
				if !ok {
					return fmt.Errorf("%s[%d] is a %s, want a dictionary", na.name, i, attrKind(e))
				}
				for _, kv := range d {
					s, ok := kv.val.(mString)
					switch {
					case !ok:
						return fmt.Errorf("%s[%d].%s is a %s, want a string", na.name, i, kv.name, attrKind(kv.val))
					case kv.name == attrIOName && na.name == attrArgAttrs:
						f.Args[i].Name = s.s
					case kv.name == attrMutation && na.name == attrArgAttrs:
						f.Args[i].Mutation = s.s
					case kv.name == attrIOName:
						f.Results[i].Name = s.s
					default:
						return fmt.Errorf("%s[%d] has unsupported entry %s", na.name, i, kv.name)
					}
				}
			}
		case attrNoInline, attrCompositeDecl:
			if err := readCompositeAttr(f, na.name, na.val); err != nil {
				return err
			}
		case attrTemplateOp:
			// Apple's converter names the template a built-in composite came from; it says nothing
			// the declaration does not, and qconv never writes a module it read.
			if _, ok := na.val.(mString); !ok {
				return fmt.Errorf("template_op is a %s, want a string", attrKind(na.val))
			}
		default:
			return fmt.Errorf("unsupported graph attribute %s (%s)", na.name, attrKind(na.val))
		}
	}
	if f.Name == "" {
		return errors.New("graph without sym_name")
	}
	if fnType == nil {
		return errors.New("graph without function_type")
	}
	if len(fnType.ins) != len(f.Args) || len(fnType.outs) != len(f.Results) {
		return fmt.Errorf("function_type %s does not match %d arguments and %d results", fnType, len(f.Args), len(f.Results))
	}
	for i, t := range fnType.ins {
		if gt, err := t.graphType(); err != nil || !gt.Equal(f.Args[i].Value.Type) {
			return fmt.Errorf("function_type input %d is %s, argument is %s", i, t, f.Args[i].Value.Type)
		}
	}
	for i, t := range fnType.outs {
		if gt, err := t.graphType(); err != nil || !gt.Equal(f.Results[i].Value.Type) {
			return fmt.Errorf("function_type result %d is %s, output is %s", i, t, f.Results[i].Value.Type)
		}
	}
	return nil
}

// opAttr converts an op attribute into the IR's kinds.
func (r *bcReader) opAttr(a mAttr) (graph.Attr, error) {
	switch a := a.(type) {
	case mString:
		return graph.StringAttr{S: a.s}, nil
	case mSymRef:
		if a.nested != "" {
			return nil, fmt.Errorf("nested symbol reference @%s%s", a.root, a.nested)
		}
		return graph.SymbolRefAttr{Name: a.root}, nil
	case mDense:
		t, err := a.t.graphType()
		if err != nil || t.Kind != graph.TensorKind || !t.Static() {
			return nil, fmt.Errorf("dense elements of %s, want a static tensor", a.t)
		}
		return denseAttrFrom(t, a.elems), nil
	case mDenseRes:
		t, err := a.t.graphType()
		if err != nil || t.Kind != graph.TensorKind || !t.Static() {
			return nil, fmt.Errorf("dense_resource of %s, want a static tensor", a.t)
		}
		res := r.byKey[a.key]
		if a.handle >= 0 {
			res = r.resources[a.handle]
		}
		n, err := numElements(t.Shape)
		if err != nil || res.Size != (n*int64(t.DType.Bits())+7)/8 {
			return nil, fmt.Errorf("dense_resource<%s>: %d bytes for %s", res.Key, res.Size, t)
		}
		return graph.ResourceAttr{Type: t, Res: res}, nil
	}
	return nil, fmt.Errorf("unsupported %s attribute", attrKind(a))
}
