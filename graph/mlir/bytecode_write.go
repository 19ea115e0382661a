package mlir

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"qconv/graph"
)

// MLIR bytecode (format version 6) as upstream MLIR 22 reads and writes it; the encoding notes
// are in docs/bytecode.md. The writer builds every section except the resource blobs in
// memory, then streams the blobs from Resource.Data, or through Resource.Fill into one reusable
// buffer, so a model is never held twice.
//
// Encoding choices: builtin types and attributes use the builtin dialect's own encodings
// (dense_resource must, the rest follow mlir-opt) except i1 vectors of 2 to 8 elements, which
// are assembly text (see attr); coreai types are assembly text filed under the
// coreai dialect, as mlir-opt writes types of a dialect it does not know; op attributes go in
// the discardable dictionary and the properties section stays empty (see text.go); the
// coreai dialect has no version entry (a reader without the dialect rejects one); sections come
// in mlir-opt's order, with the resource section aligned to the largest blob alignment.

const (
	bcMagic   = "ML\xefR"
	bcVersion = 6
)

// Section ids.
const (
	secString = iota
	secDialect
	secAttrType
	secAttrTypeOffset
	secIR
	secResource
	secResourceOffset
	secDialectVersions
	secProperties
	numSections
)

var sectionNames = [numSections]string{"string", "dialect", "attribute/type", "attribute/type offset", "IR",
	"resource", "resource offset", "dialect versions", "properties"}

// Op encoding mask bits.
const (
	opHasAttrs      = 0x01
	opHasResults    = 0x02
	opHasOperands   = 0x04
	opHasSuccessors = 0x08
	opHasRegions    = 0x10
	opHasUseLists   = 0x20
	opHasProperties = 0x40
)

// Builtin dialect attribute and type codes.
const (
	codeArray = iota
	codeDictionary
	codeString
	codeStringWithType
	codeFlatSymbolRef
	codeSymbolRef
	codeTypeAttr
	codeUnit
	codeInteger
	codeFloat
	codeCallSiteLoc
	codeFileLineColLoc
	codeFusedLoc
	codeFusedLocWithMetadata
	codeNameLoc
	codeUnknownLoc
	codeDenseResource
	codeDenseArray
	codeDenseIntOrFP
	codeDenseString
	codeSparseElements
	codeDistinct
)

const (
	codeIntegerType = iota
	codeIndexType
	codeFunctionType
	codeBF16Type
	codeF16Type
	codeF32Type
	codeF64Type
	codeF80Type
	codeF128Type
	codeComplexType
	codeMemRefType
	codeMemRefTypeWithMemSpace
	codeNoneType
	codeRankedTensorType
	codeRankedTensorTypeWithEncoding
	codeTupleType
	codeUnrankedMemRefType
	codeUnrankedMemRefTypeWithMemSpace
	codeUnrankedTensorType
	codeVectorType
	codeVectorTypeWithScalableDims
)

const (
	dialectBuiltin = 0
	dialectCoreAI  = 1
	alignByte      = 0xCB
	resourceBlob   = 0 // resource entry kind
	dynDimEncoded  = math.MinInt64
)

func appendVarint(b []byte, v uint64) []byte {
	if v < 1<<7 {
		return append(b, byte(v<<1|1))
	}
	if v >= 1<<56 {
		b = append(b, 0)
		for i := 0; i < 8; i++ {
			b = append(b, byte(v>>(8*i)))
		}
		return b
	}
	n := 2 // total bytes
	for v >= 1<<(7*n) {
		n++
	}
	x := (v<<1 | 1) << (n - 1)
	for i := 0; i < n; i++ {
		b = append(b, byte(x>>(8*i)))
	}
	return b
}

func appendSignedVarint(b []byte, v int64) []byte {
	return appendVarint(b, uint64(v<<1)^uint64(v>>63))
}

// appendSection frames data as a section without alignment.
func appendSection(b []byte, id int, data []byte) []byte {
	b = append(b, byte(id))
	b = appendVarint(b, uint64(len(data)))
	return append(b, data...)
}

// bcPart is one field of an attribute or type entry; references are resolved once the final
// entry order is known.
type bcPart struct {
	kind uint8
	v    uint64
	raw  []byte
}

const (
	partVarint = iota
	partAttr   // v = provisional attribute id
	partType   // v = provisional type id
	partRaw    // raw bytes
)

type bcEntry struct {
	dialect int
	custom  bool
	parts   []bcPart
}

// bcTable interns attribute or type entries by a structural key.
type bcTable struct {
	entries []bcEntry
	ids     map[string]int
	final   []int // provisional id -> final index
}

func (t *bcTable) intern(key string, e bcEntry) uint64 {
	if id, ok := t.ids[key]; ok {
		return uint64(id)
	}
	t.ids[key] = len(t.entries)
	t.entries = append(t.entries, e)
	return uint64(len(t.entries) - 1)
}

// order numbers entries builtin first, then coreai, each in first-use order.
func (t *bcTable) order() {
	t.final = make([]int, len(t.entries))
	n := 0
	for _, d := range []int{dialectBuiltin, dialectCoreAI} {
		for i, e := range t.entries {
			if e.dialect == d {
				t.final[i] = n
				n++
			}
		}
	}
}

type bcWriter struct {
	strs      []string
	strIDs    map[string]uint64
	attrs     bcTable
	types     bcTable
	opNames   []string // coreai op names after builtin.module, in first-use order
	opIDs     map[string]uint64
	resHandle map[*graph.Resource]uint64
	unknown   uint64 // loc(unknown)
}

func (w *bcWriter) str(s string) uint64 {
	if id, ok := w.strIDs[s]; ok {
		return id
	}
	w.strIDs[s] = uint64(len(w.strs))
	w.strs = append(w.strs, s)
	return uint64(len(w.strs) - 1)
}

func (w *bcWriter) opName(name string) uint64 {
	if id, ok := w.opIDs[name]; ok {
		return id
	}
	w.opIDs[name] = uint64(len(w.opNames) + 1)
	w.opNames = append(w.opNames, name)
	return uint64(len(w.opNames))
}

func custom(code uint64, parts ...bcPart) bcEntry {
	return bcEntry{dialect: dialectBuiltin, custom: true, parts: append([]bcPart{{kind: partVarint, v: code}}, parts...)}
}

func pv(v uint64) bcPart         { return bcPart{kind: partVarint, v: v} }
func pAttr(id uint64) bcPart     { return bcPart{kind: partAttr, v: id} }
func pType(id uint64) bcPart     { return bcPart{kind: partType, v: id} }
func pRaw(b []byte) bcPart       { return bcPart{kind: partRaw, raw: b} }
func pList(n int) bcPart         { return pv(uint64(n)) }
func keyOf(ids ...uint64) string { return fmt.Sprint(ids) }

func (w *bcWriter) elemType(dt graph.DType) uint64 {
	key := "e:" + dt.String()
	switch dt {
	case graph.F32:
		return w.types.intern(key, custom(codeF32Type))
	case graph.F16:
		return w.types.intern(key, custom(codeF16Type))
	case graph.BF16:
		return w.types.intern(key, custom(codeBF16Type))
	}
	sign := uint64(0) // signless (i1)
	if strings.HasPrefix(dt.String(), "si") {
		sign = 1
	} else if strings.HasPrefix(dt.String(), "ui") {
		sign = 2
	}
	return w.types.intern(key, custom(codeIntegerType, pv(uint64(dt.Bits())<<2|sign)))
}

func (w *bcWriter) typ(t graph.Type) uint64 {
	key := "t:" + t.String()
	switch t.Kind {
	case graph.TokenKind, graph.HandleKind:
		return w.types.intern(key, bcEntry{dialect: dialectCoreAI, parts: []bcPart{pRaw(append([]byte(t.String()), 0))}})
	}
	elem := w.elemType(t.DType)
	shape := appendVarint(nil, uint64(len(t.Shape)))
	for _, d := range t.Shape {
		if d == graph.Dyn {
			d = dynDimEncoded
		}
		shape = appendSignedVarint(shape, d)
	}
	return w.types.intern(key, custom(codeRankedTensorType, pRaw(shape), pType(elem)))
}

func (w *bcWriter) funcType(ins, outs []graph.Type) uint64 {
	parts := []bcPart{pList(len(ins))}
	for _, t := range ins {
		parts = append(parts, pType(w.typ(t)))
	}
	parts = append(parts, pList(len(outs)))
	for _, t := range outs {
		parts = append(parts, pType(w.typ(t)))
	}
	return w.types.intern("f:"+functionTypeString(ins, outs), custom(codeFunctionType, parts...))
}

// attr interns an attribute of an op or graph.
func (w *bcWriter) attr(a graph.Attr) uint64 {
	switch a := a.(type) {
	case graph.StringAttr:
		return w.attrs.intern("s:"+a.S, custom(codeString, pv(w.str(a.S))))
	case graph.SymbolRefAttr:
		root := w.attr(graph.StringAttr{S: a.Name})
		return w.attrs.intern("@"+keyOf(root), custom(codeFlatSymbolRef, pAttr(root)))
	case typeAttr:
		ft := w.funcType(a.ins, a.outs)
		return w.attrs.intern("ta:"+keyOf(ft), custom(codeTypeAttr, pType(ft)))
	case arrayAttr:
		parts := []bcPart{pList(len(a))}
		ids := []uint64{}
		for _, e := range a {
			id := w.attr(e)
			ids = append(ids, id)
			parts = append(parts, pAttr(id))
		}
		return w.attrs.intern("a:"+keyOf(ids...), custom(codeArray, parts...))
	case dictAttr:
		return w.dict(a)
	case unitAttr:
		return w.attrs.intern("unit", custom(codeUnit))
	case opaqueAttr:
		// A dialect attribute qconv has no encoding for is stored as its assembly text, as MLIR
		// stores an attribute of an unregistered dialect.
		return w.attrs.intern("asm:"+a.text, bcEntry{dialect: dialectBuiltin, parts: []bcPart{pRaw(append([]byte(a.text), 0))}})
	case graph.DenseAttr:
		elems := graph.DenseElements(a)
		if a.Type.DType == graph.I1 && len(elems) > 1 && len(elems) <= 8 {
			// Packed into one byte, a short i1 vector is ambiguous to MLIR readers after 22
			// (they take a one-byte blob as a splat); its text form reads the same everywhere.
			var text strings.Builder
			tw := bufio.NewWriter(&text)
			writeDenseText(tw, a)
			tw.Flush()
			return w.attrs.intern("asm:"+text.String(), bcEntry{dialect: dialectBuiltin, parts: []bcPart{pRaw(append([]byte(text.String()), 0))}})
		}
		t := w.typ(a.Type)
		raw := mlirStorage(a.Type.DType, elems, len(elems) == 1)
		blob := append(appendVarint(nil, uint64(len(raw))), raw...)
		return w.attrs.intern("d:"+keyOf(t)+string(raw), custom(codeDenseIntOrFP, pType(t), pRaw(blob)))
	case graph.ResourceAttr:
		t := w.typ(a.Type)
		h := w.resHandle[a.Res]
		return w.attrs.intern("r:"+keyOf(t, h), custom(codeDenseResource, pType(t), pv(h)))
	}
	panic(fmt.Sprintf("graph: bytecode writer: unchecked attribute %T", a))
}

func (w *bcWriter) dict(d map[string]graph.Attr) uint64 {
	keys := sortedKeys(d)
	parts := []bcPart{pList(len(keys))}
	ids := []uint64{}
	for _, k := range keys {
		kid, vid := w.attr(graph.StringAttr{S: k}), w.attr(d[k])
		ids = append(ids, kid, vid)
		parts = append(parts, pAttr(kid), pAttr(vid))
	}
	return w.attrs.intern("{:"+keyOf(ids...), custom(codeDictionary, parts...))
}

// encodeTable renders a table's entries (in final order) into the offset and data sections.
func (w *bcWriter) encodeTable(t *bcTable, offsets, data []byte) ([]byte, []byte) {
	byFinal := make([]int, len(t.entries))
	for prov, f := range t.final {
		byFinal[f] = prov
	}
	var groupStart int
	flush := func(end int) {
		if end == groupStart {
			return
		}
		offsets = appendVarint(offsets, uint64(t.entries[byFinal[groupStart]].dialect))
		offsets = appendVarint(offsets, uint64(end-groupStart))
		for f := groupStart; f < end; f++ {
			e := t.entries[byFinal[f]]
			start := len(data)
			for _, p := range e.parts {
				switch p.kind {
				case partVarint:
					data = appendVarint(data, p.v)
				case partAttr:
					data = appendVarint(data, uint64(w.attrs.final[p.v]))
				case partType:
					data = appendVarint(data, uint64(w.types.final[p.v]))
				case partRaw:
					data = append(data, p.raw...)
				}
			}
			flag := uint64(0)
			if e.custom {
				flag = 1
			}
			offsets = appendVarint(offsets, uint64(len(data)-start)<<1|flag)
		}
		groupStart = end
	}
	for f := range byFinal {
		if t.entries[byFinal[f]].dialect != t.entries[byFinal[groupStart]].dialect {
			flush(f)
		}
	}
	flush(len(byFinal))
	return offsets, data
}

// WriteBytecode writes m as MLIR bytecode version 6 with the given producer string. The output
// is deterministic: the same module gives the same bytes. Blobs are written last but for the
// string and properties sections, from Resource.Data or through Resource.Fill into one buffer
// the size of the largest lazy blob (Fill must not keep its dst: the buffer is released on return).
func WriteBytecode(out io.Writer, m *graph.Module, producer string) error {
	if strings.IndexByte(producer, 0) >= 0 {
		return errors.New("graph: bytecode producer string contains a NUL byte")
	}
	for _, f := range m.Funcs {
		if f.Opaque != "" {
			return fmt.Errorf("graph: @%s cannot be written: %s (it was read without its body)", f.Name, f.Opaque)
		}
	}
	if _, err := checkModule(m); err != nil {
		return err
	}
	w := &bcWriter{
		strIDs:    map[string]uint64{},
		attrs:     bcTable{ids: map[string]int{}},
		types:     bcTable{ids: map[string]int{}},
		opIDs:     map[string]uint64{},
		resHandle: map[*graph.Resource]uint64{},
	}
	w.str("builtin")
	w.str("coreai")
	w.str("module")
	for i, r := range m.Resources {
		w.resHandle[r] = uint64(i)
	}
	w.unknown = w.attrs.intern("loc", custom(codeUnknownLoc))

	// Intern everything and encode the graphs' regions (with provisional attr/type ids patched
	// below by encoding the IR after ordering: the IR refers to final ids, so intern first).
	graphAttrIDs := make([]uint64, len(m.Funcs))
	opAttrIDs := make([][]uint64, len(m.Funcs))
	w.opName(opGraph)
	for fi, f := range m.Funcs {
		graphAttrIDs[fi] = w.dict(graphAttrs(f))
		for _, a := range f.Args {
			w.typ(a.Value.Type)
		}
		opAttrIDs[fi] = make([]uint64, len(f.Body))
		for oi, op := range f.Body {
			w.opName(op.Name)
			for _, r := range op.Results {
				w.typ(r.Type)
			}
			if len(op.Attrs) > 0 {
				opAttrIDs[fi][oi] = w.dict(op.Attrs)
			}
		}
		w.opName(opOutput)
	}
	w.attrs.order()
	w.types.order()
	fa := func(id uint64) uint64 { return uint64(w.attrs.final[id]) }
	ft := func(id uint64) uint64 { return uint64(w.types.final[id]) }
	loc := fa(w.unknown)

	// IR section: one builtin.module holding one isolated coreai.graph per function.
	var moduleBody []byte
	moduleBody = appendVarint(moduleBody, 1) // one block
	moduleBody = appendVarint(moduleBody, 0) // no values defined at module level
	moduleBody = appendVarint(moduleBody, uint64(len(m.Funcs))<<1)
	for fi, f := range m.Funcs {
		ids := map[*graph.Value]uint64{}
		var region []byte
		region = appendVarint(region, 1)
		numValues := len(f.Args)
		for _, op := range f.Body {
			numValues += len(op.Results)
		}
		region = appendVarint(region, uint64(numValues))
		hasArgs := uint64(0)
		if len(f.Args) > 0 {
			hasArgs = 1
		}
		region = appendVarint(region, uint64(len(f.Body)+1)<<1|hasArgs)
		if hasArgs == 1 {
			region = appendVarint(region, uint64(len(f.Args)))
			for _, a := range f.Args {
				ids[a.Value] = uint64(len(ids))
				region = appendVarint(region, ft(w.typ(a.Value.Type))<<1) // no location
			}
			region = append(region, 0) // no use-list orders
		}
		for oi, op := range f.Body {
			region = w.appendOp(region, op.Name, op.Operands, op.Results, opAttrIDs[fi][oi], len(op.Attrs) > 0, ids, loc)
			for _, r := range op.Results {
				ids[r] = uint64(len(ids))
			}
		}
		region = w.appendOp(region, opOutput, resultValues(f), nil, 0, false, ids, loc)

		moduleBody = appendVarint(moduleBody, w.opIDs[opGraph])
		moduleBody = append(moduleBody, opHasAttrs|opHasRegions)
		moduleBody = appendVarint(moduleBody, loc)
		moduleBody = appendVarint(moduleBody, fa(graphAttrIDs[fi]))
		moduleBody = appendVarint(moduleBody, 1<<1|1) // one isolated region
		moduleBody = appendSection(moduleBody, secIR, region)
	}
	var ir []byte
	ir = appendVarint(ir, 1<<1) // top level: one op, no block arguments
	ir = appendVarint(ir, 0)    // builtin.module
	ir = append(ir, opHasRegions)
	ir = appendVarint(ir, loc)
	ir = appendVarint(ir, 1<<1|1)
	ir = appendSection(ir, secIR, moduleBody)

	// Resource offsets: no external groups, one builtin group in handle order. Entry sizes
	// include the padding that aligns each blob, computed from the section-relative offset
	// (the section itself starts at a multiple of the largest alignment).
	maxAlign := uint64(1)
	var resOffsets []byte
	resOffsets = appendVarint(resOffsets, 0)
	if len(m.Resources) > 0 {
		resOffsets = appendVarint(resOffsets, dialectBuiltin)
		resOffsets = appendVarint(resOffsets, uint64(len(m.Resources)))
	}
	heads := make([][]byte, len(m.Resources))
	var resLen uint64
	for i, r := range m.Resources {
		maxAlign = max(maxAlign, r.Align)
		h := appendVarint(appendVarint(nil, r.Align), uint64(r.Size))
		pad := (r.Align - (resLen+uint64(len(h)))%r.Align) % r.Align
		for ; pad > 0; pad-- {
			h = append(h, alignByte)
		}
		heads[i] = h
		size := uint64(len(h)) + uint64(r.Size)
		resLen += size
		resOffsets = appendVarint(resOffsets, w.str(r.Key))
		resOffsets = appendVarint(resOffsets, size)
		resOffsets = append(resOffsets, resourceBlob)
	}

	// Dialects and op names (strings interned above and here, before the string section).
	var dialects []byte
	dialects = appendVarint(dialects, 2)
	dialects = appendVarint(dialects, w.str("builtin")<<1)
	dialects = appendVarint(dialects, w.str("coreai")<<1)
	dialects = appendVarint(dialects, uint64(1+len(w.opNames)))
	dialects = appendVarint(dialects, dialectBuiltin)
	dialects = appendVarint(dialects, 1)
	dialects = appendVarint(dialects, w.str("module")<<1|1) // registered
	dialects = appendVarint(dialects, dialectCoreAI)
	dialects = appendVarint(dialects, uint64(len(w.opNames)))
	for _, name := range w.opNames {
		dialects = appendVarint(dialects, w.str(strings.TrimPrefix(name, "coreai."))<<1)
	}

	var attrOffsets, attrData []byte
	attrOffsets = appendVarint(attrOffsets, uint64(len(w.attrs.entries)))
	attrOffsets = appendVarint(attrOffsets, uint64(len(w.types.entries)))
	attrOffsets, attrData = w.encodeTable(&w.attrs, attrOffsets, attrData)
	attrOffsets, attrData = w.encodeTable(&w.types, attrOffsets, attrData)

	var strSec []byte
	strSec = appendVarint(strSec, uint64(len(w.strs)))
	for i := len(w.strs) - 1; i >= 0; i-- {
		strSec = appendVarint(strSec, uint64(len(w.strs[i])+1))
	}
	for _, s := range w.strs {
		strSec = append(append(strSec, s...), 0)
	}

	// Everything before the blobs, in mlir-opt's section order.
	var head []byte
	head = append(head, bcMagic...)
	head = appendVarint(head, bcVersion)
	head = append(append(head, producer...), 0)
	head = appendSection(head, secDialect, dialects)
	head = appendSection(head, secAttrTypeOffset, attrOffsets)
	head = appendSection(head, secAttrType, attrData)
	head = appendSection(head, secIR, ir)
	if len(m.Resources) > 0 {
		head = appendSection(head, secResourceOffset, resOffsets)
		head = append(head, secResource|0x80)
		head = appendVarint(head, resLen)
		head = appendVarint(head, maxAlign)
		for uint64(len(head))%maxAlign != 0 {
			head = append(head, alignByte)
		}
	}
	var tail []byte
	tail = appendSection(tail, secString, strSec)
	tail = appendSection(tail, secProperties, appendVarint(nil, 0))

	bw := bufio.NewWriterSize(out, 1<<20)
	if _, err := bw.Write(head); err != nil {
		return err
	}
	var fillBuf []byte
	for i, r := range m.Resources {
		if _, err := bw.Write(heads[i]); err != nil {
			return err
		}
		data := r.Data
		if data == nil && r.Size > 0 {
			if fillBuf == nil {
				buf, release := fillBuffer(maxLazySize(m))
				defer release()
				fillBuf = buf
			}
			data = fillBuf[:r.Size]
			if err := r.Fill(data); err != nil {
				return fmt.Errorf("graph: resource %q: %w", r.Key, err)
			}
		}
		if len(data) < 1<<16 {
			if _, err := bw.Write(data); err != nil {
				return err
			}
			continue
		}
		// A large blob goes straight to out: through bufio, its first MiB would be copied.
		if err := bw.Flush(); err != nil {
			return err
		}
		if _, err := out.Write(data); err != nil {
			return err
		}
	}
	if _, err := bw.Write(tail); err != nil {
		return err
	}
	return bw.Flush()
}

func maxLazySize(m *graph.Module) int64 {
	var n int64
	for _, r := range m.Resources {
		if r.Data == nil {
			n = max(n, r.Size)
		}
	}
	return n
}

// appendOp encodes an op without regions: name, mask, location, attribute dictionary, result
// types, operand value ids.
func (w *bcWriter) appendOp(b []byte, name string, operands, results []*graph.Value, attrID uint64, hasAttrs bool, ids map[*graph.Value]uint64, loc uint64) []byte {
	var mask byte
	if hasAttrs {
		mask |= opHasAttrs
	}
	if len(results) > 0 {
		mask |= opHasResults
	}
	if len(operands) > 0 {
		mask |= opHasOperands
	}
	b = appendVarint(b, w.opIDs[name])
	b = append(b, mask)
	b = appendVarint(b, loc)
	if hasAttrs {
		b = appendVarint(b, uint64(w.attrs.final[attrID]))
	}
	if len(results) > 0 {
		b = appendVarint(b, uint64(len(results)))
		for _, r := range results {
			b = appendVarint(b, uint64(w.types.final[w.typ(r.Type)]))
		}
	}
	if len(operands) > 0 {
		b = appendVarint(b, uint64(len(operands)))
		for _, v := range operands {
			b = appendVarint(b, ids[v])
		}
	}
	return b
}
