package mlir

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"qconv/graph"
)

// This file writes a Module as MLIR text in the generic op syntax, byte for byte as
//
//	mlir-opt --allow-unregistered-dialect --mlir-print-op-generic
//
// prints the same module, so tests can diff the two. Choices, shared with the bytecode writer:
//
//   - Inherent attributes (sym_name, function_type, arg_attrs, res_attrs, sym_visibility, value,
//     callee) go in the discardable attribute dictionary {...}, not in properties <{...}>. Both
//     load in mlir-opt, but a reader that registers the coreai ops (Apple's runtime) decodes
//     properties with the op's own native encoding, which for a registered op rejects the
//     dictionary form mlir-opt writes for unregistered ops; a registered op instead moves
//     inherent attributes found in the dictionary into its properties (docs/bytecode.md#encoding-choices).
//   - Every location is loc(unknown). Open risk (docs/bytecode.md#encoding-choices): OS 27 beta 2+ runtimes
//     abort with "expected AICode versioned location" on some assets; whether plain unknown
//     locations pass that check is not known.
//   - A graph's argument and result names live in arg_attrs/res_attrs (coreai.name, plus
//     MutableBuffers.buffer_mutation for a state); an attribute list whose dictionaries are all
//     empty is left out, as MLIR's function interface does.
//
// mlir-opt numbers values of an unregistered op's regions in one scope, visiting the graphs last
// to first (coreai.graph is not known to be isolated from above), and lists only referenced
// resources, in order of first reference; WriteText reproduces both.

// WriteText writes m as generic-syntax MLIR text, with weights in the dialect_resources trailer.
// Resources are read through Resource.Bytes, so lazy blobs are materialized one at a time.
func WriteText(w io.Writer, m *graph.Module) error {
	mc, err := checkModule(m)
	if err != nil {
		return err
	}
	names := textValueNames(m)
	bw := bufio.NewWriterSize(w, 1<<16)
	p := &textPrinter{w: bw, names: names}
	bw.WriteString("\"builtin.module\"() ({\n")
	if len(m.Funcs) == 0 {
		bw.WriteString("^bb0:\n") // an empty block prints its header
	}
	for _, f := range m.Funcs {
		p.graph(f)
	}
	bw.WriteString("}) : () -> ()\n")
	if len(mc.textOrder) > 0 {
		bw.WriteString("\n{-#\n  dialect_resources: {\n    builtin: {\n")
		for i, r := range mc.textOrder {
			data, err := r.Bytes()
			if err != nil {
				return err
			}
			bw.WriteString("      ")
			bw.WriteString(keywordOrString(r.Key))
			bw.WriteString(": \"0x")
			var al [4]byte
			binary.LittleEndian.PutUint32(al[:], uint32(r.Align))
			writeHex(bw, al[:])
			writeHex(bw, data)
			bw.WriteByte('"')
			if i+1 < len(mc.textOrder) {
				bw.WriteByte(',')
			}
			bw.WriteByte('\n')
		}
		bw.WriteString("    }\n  }\n#-}\n")
	}
	bw.WriteByte('\n') // mlir-opt ends its output with an empty line
	return bw.Flush()
}

// textValueNames gives every value its printed name: %argN for arguments, %N (or %N#i for
// result i of a multi-result op) for results, counted across graphs visited last to first.
func textValueNames(m *graph.Module) map[*graph.Value]string {
	names := map[*graph.Value]string{}
	nextArg, nextVal := 0, 0
	for i := len(m.Funcs) - 1; i >= 0; i-- {
		f := m.Funcs[i]
		for _, a := range f.Args {
			names[a.Value] = "%arg" + strconv.Itoa(nextArg)
			nextArg++
		}
		for _, op := range f.Body {
			if len(op.Results) == 0 {
				continue
			}
			id := strconv.Itoa(nextVal)
			nextVal++
			if len(op.Results) == 1 {
				names[op.Results[0]] = "%" + id
				continue
			}
			for k, r := range op.Results {
				names[r] = "%" + id + "#" + strconv.Itoa(k)
			}
		}
	}
	return names
}

type textPrinter struct {
	w     *bufio.Writer
	names map[*graph.Value]string
}

func (p *textPrinter) graph(f *graph.Func) {
	w := p.w
	w.WriteString("  \"coreai.graph\"() ({\n")
	if len(f.Args) > 0 {
		w.WriteString("  ^bb0(")
		for i, a := range f.Args {
			if i > 0 {
				w.WriteString(", ")
			}
			w.WriteString(p.names[a.Value])
			w.WriteString(": ")
			w.WriteString(a.Value.Type.String())
		}
		w.WriteString("):\n")
	}
	for _, op := range f.Body {
		p.op(op.Name, op.Operands, op.Results, op.Attrs)
	}
	outs := make([]*graph.Value, len(f.Results))
	for i, r := range f.Results {
		outs[i] = r.Value
	}
	p.op(opOutput, outs, nil, nil)
	w.WriteString("  }) ")
	p.attrDict(graphAttrs(f))
	w.WriteString(" : () -> ()\n")
}

func (p *textPrinter) op(name string, operands, results []*graph.Value, attrs map[string]graph.Attr) {
	w := p.w
	w.WriteString("    ")
	switch len(results) {
	case 0:
	case 1:
		w.WriteString(p.names[results[0]])
		w.WriteString(" = ")
	default:
		n := p.names[results[0]]
		w.WriteString(n[:strings.IndexByte(n, '#')])
		w.WriteString(":")
		w.WriteString(strconv.Itoa(len(results)))
		w.WriteString(" = ")
	}
	w.WriteString(quoteMLIR(name))
	w.WriteByte('(')
	for i, v := range operands {
		if i > 0 {
			w.WriteString(", ")
		}
		w.WriteString(p.names[v])
	}
	w.WriteByte(')')
	if len(attrs) > 0 {
		w.WriteByte(' ')
		p.attrDict(attrs)
	}
	w.WriteString(" : ")
	w.WriteString(functionTypeString(valueTypes(operands), valueTypes(results)))
	w.WriteByte('\n')
}

func valueTypes(vs []*graph.Value) []graph.Type {
	ts := make([]graph.Type, len(vs))
	for i, v := range vs {
		ts[i] = v.Type
	}
	return ts
}

// functionTypeString prints (ins) -> out, parenthesizing the results unless there is exactly one.
func functionTypeString(ins, outs []graph.Type) string {
	var b strings.Builder
	b.WriteByte('(')
	for i, t := range ins {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(t.String())
	}
	b.WriteString(") -> ")
	if len(outs) == 1 {
		b.WriteString(outs[0].String())
		return b.String()
	}
	b.WriteByte('(')
	for i, t := range outs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(t.String())
	}
	b.WriteByte(')')
	return b.String()
}

func (p *textPrinter) attrDict(attrs map[string]graph.Attr) {
	w := p.w
	w.WriteByte('{')
	for i, k := range sortedKeys(attrs) {
		if i > 0 {
			w.WriteString(", ")
		}
		w.WriteString(keywordOrString(k))
		if _, unit := attrs[k].(unitAttr); unit {
			continue // a unit attribute prints as its name alone
		}
		w.WriteString(" = ")
		p.attr(attrs[k])
	}
	w.WriteByte('}')
}

func (p *textPrinter) attr(a graph.Attr) {
	w := p.w
	switch a := a.(type) {
	case graph.StringAttr:
		w.WriteString(quoteMLIR(a.S))
	case graph.SymbolRefAttr:
		w.WriteByte('@')
		w.WriteString(keywordOrString(a.Name))
	case graph.DenseAttr:
		writeDenseText(w, a)
	case graph.ResourceAttr:
		w.WriteString("dense_resource<")
		w.WriteString(keywordOrString(a.Res.Key))
		w.WriteString("> : ")
		w.WriteString(a.Type.String())
	case typeAttr:
		w.WriteString(functionTypeString(a.ins, a.outs))
	case arrayAttr:
		w.WriteByte('[')
		for i, e := range a {
			if i > 0 {
				w.WriteString(", ")
			}
			p.attr(e)
		}
		w.WriteByte(']')
	case dictAttr:
		p.attrDict(a)
	case unitAttr:
		w.WriteString("unit") // outside a dictionary
	case opaqueAttr:
		w.WriteString(a.text)
	}
}

// Attributes that only the writers build (graph attributes); the IR's op attributes are the
// exported kinds.
type (
	typeAttr  struct{ ins, outs []graph.Type } // a function type
	arrayAttr []graph.Attr
	dictAttr  map[string]graph.Attr
)

func (typeAttr) IsAttr()  {}
func (arrayAttr) IsAttr() {}
func (dictAttr) IsAttr()  {}

// Attribute names of a graph and its arguments.
const (
	opModule      = "builtin.module"
	opGraph       = "coreai.graph"
	opOutput      = "coreai.output"
	attrSymName   = "sym_name"
	attrFuncType  = "function_type"
	attrArgAttrs  = "arg_attrs"
	attrResAttrs  = "res_attrs"
	attrVisibilty = "sym_visibility"
	attrIOName    = "coreai.name"
	attrMutation  = "MutableBuffers.buffer_mutation"
)

// graphAttrs is the attribute dictionary of f's coreai.graph op.
func graphAttrs(f *graph.Func) map[string]graph.Attr {
	attrs := map[string]graph.Attr{
		attrSymName:  graph.StringAttr{S: f.Name},
		attrFuncType: typeAttr{valueTypes(argValues(f)), valueTypes(resultValues(f))},
	}
	if f.Private {
		attrs[attrVisibilty] = graph.StringAttr{S: "private"}
	}
	compositeAttrs(f, attrs)
	args := make(arrayAttr, len(f.Args))
	some := false
	for i, a := range f.Args {
		d := dictAttr{}
		if a.Name != "" {
			d[attrIOName] = graph.StringAttr{S: a.Name}
		}
		if a.Mutation != "" {
			d[attrMutation] = graph.StringAttr{S: a.Mutation}
		}
		some = some || len(d) > 0
		args[i] = d
	}
	if some {
		attrs[attrArgAttrs] = args
	}
	res := make(arrayAttr, len(f.Results))
	some = false
	for i, r := range f.Results {
		d := dictAttr{}
		if r.Name != "" {
			d[attrIOName] = graph.StringAttr{S: r.Name}
		}
		some = some || len(d) > 0
		res[i] = d
	}
	if some {
		attrs[attrResAttrs] = res
	}
	return attrs
}

func argValues(f *graph.Func) []*graph.Value {
	vs := make([]*graph.Value, len(f.Args))
	for i, a := range f.Args {
		vs[i] = a.Value
	}
	return vs
}

func resultValues(f *graph.Func) []*graph.Value {
	vs := make([]*graph.Value, len(f.Results))
	for i, r := range f.Results {
		vs[i] = r.Value
	}
	return vs
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// isBareIdentifier reports whether MLIR prints s unquoted as a keyword or symbol name.
func isBareIdentifier(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
		if i == 0 && !letter {
			return false
		}
		if !letter && !(c >= '0' && c <= '9') && c != '$' && c != '.' {
			return false
		}
	}
	return true
}

func keywordOrString(s string) string {
	if isBareIdentifier(s) {
		return s
	}
	return quoteMLIR(s)
}

// quoteMLIR is llvm::printEscapedString in quotes: printable ASCII except '"' and '\' as is,
// '\' doubled, everything else as \XX.
func quoteMLIR(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			b.WriteString(`\\`)
		case c >= 0x20 && c < 0x7f && c != '"':
			b.WriteByte(c)
		default:
			b.WriteByte('\\')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
	b.WriteByte('"')
	return b.String()
}

const hexDigits = "0123456789ABCDEF"

func writeHex(w *bufio.Writer, data []byte) {
	var buf [512]byte
	for len(data) > 0 {
		n := min(len(data), len(buf)/2)
		for i, c := range data[:n] {
			buf[2*i] = hexDigits[c>>4]
			buf[2*i+1] = hexDigits[c&15]
		}
		w.Write(buf[:2*n])
		data = data[n:]
	}
}

// hexElementsThreshold: mlir-opt prints a non-splat dense attribute with more elements than this
// as a hex string of its storage (--mlir-print-elementsattrs-with-hex-if-larger defaults to 100).
const hexElementsThreshold = 100

func writeDenseText(w *bufio.Writer, d graph.DenseAttr) {
	elems := graph.DenseElements(d)
	dt := d.Type.DType
	w.WriteString("dense<")
	switch {
	case len(elems) == 0:
	case len(elems) == 1:
		w.WriteString(formatElement(dt, elems[0]))
	case len(elems) > hexElementsThreshold:
		w.WriteString("\"0x")
		writeHex(w, mlirStorage(dt, elems, false))
		w.WriteByte('"')
	default:
		i := 0
		var nest func(dims []int64)
		nest = func(dims []int64) {
			w.WriteByte('[')
			for k := int64(0); k < dims[0]; k++ {
				if k > 0 {
					w.WriteString(", ")
				}
				if len(dims) > 1 {
					nest(dims[1:])
					continue
				}
				w.WriteString(formatElement(dt, elems[i]))
				i++
			}
			w.WriteByte(']')
		}
		nest(d.Type.Shape)
	}
	w.WriteString("> : ")
	w.WriteString(d.Type.String())
}

// packElements is the inverse of elemBits: the IR's packed little-endian layout.
func packElements(dt graph.DType, elems []uint64) []byte {
	out := make([]byte, graph.BytesFor(dt, len(elems)))
	for i, e := range elems {
		switch dt.Bits() {
		case 32:
			binary.LittleEndian.PutUint32(out[4*i:], uint32(e))
		case 16:
			binary.LittleEndian.PutUint16(out[2*i:], uint16(e))
		case 8:
			out[i] = byte(e)
		case 4:
			out[i/2] |= byte(e&15) << (4 * (i % 2))
		default:
			out[i/8] |= byte(e&1) << (i % 8)
		}
	}
	return out
}

// mlirStorage lays elements out as MLIR's DenseElementsAttr stores them: sub-byte integers one
// per byte (zero-extended), i1 packed 8 per byte low bit first, a splat i1 as 0x00 or 0xFF.
func mlirStorage(dt graph.DType, elems []uint64, splat bool) []byte {
	switch dt.Bits() {
	case 1:
		if splat {
			return []byte{byte(0 - elems[0]&1)}
		}
		return packElements(dt, elems)
	case 4:
		out := make([]byte, len(elems))
		for i, e := range elems {
			out[i] = byte(e & 15)
		}
		return out
	}
	return packElements(dt, elems)
}

// formatElement prints one element as MLIR does for dtype dt.
func formatElement(dt graph.DType, e uint64) string {
	switch dt {
	case graph.F32:
		return printFloat(e, formatF32)
	case graph.F16, graph.BF16:
		return printFloat(e, formatOf(dt))
	case graph.I1:
		if e != 0 {
			return "true"
		}
		return "false"
	case graph.SI32, graph.SI16, graph.SI8, graph.SI4:
		w := uint(dt.Bits())
		return strconv.FormatInt(int64(e<<(64-w))>>(64-w), 10)
	}
	return strconv.FormatUint(e, 10)
}

// moduleCheck is what checkModule learns about a module the writers need.
type moduleCheck struct {
	textOrder []*graph.Resource // referenced resources in order of first reference (mlir-opt's text order)
}

// checkModule validates everything the writers rely on, so they can print without further checks.
func checkModule(m *graph.Module) (*moduleCheck, error) {
	if m == nil {
		return nil, errors.New("graph: nil module")
	}
	res := map[*graph.Resource]bool{}
	keys := map[string]bool{}
	for i, r := range m.Resources {
		if r == nil {
			return nil, fmt.Errorf("graph: resource %d is nil", i)
		}
		if err := checkName("resource key", r.Key); err != nil {
			return nil, err
		}
		if keys[r.Key] {
			return nil, fmt.Errorf("graph: resource %q defined twice", r.Key)
		}
		keys[r.Key] = true
		if r.Align == 0 || r.Align&(r.Align-1) != 0 || r.Align > 1<<31 {
			return nil, fmt.Errorf("graph: resource %q: alignment %d is not a power of two up to 2^31", r.Key, r.Align)
		}
		if r.Size < 0 || (r.Data != nil && int64(len(r.Data)) != r.Size) || (r.Data == nil && r.Fill == nil && r.Size > 0) {
			return nil, fmt.Errorf("graph: resource %q: %d bytes of data (lazy %v) for declared size %d", r.Key, len(r.Data), r.Fill != nil, r.Size)
		}
		res[r] = true
	}
	mc := &moduleCheck{}
	used := map[*graph.Resource]bool{}
	funcs := map[string]bool{}
	for fi, f := range m.Funcs {
		if f == nil {
			return nil, fmt.Errorf("graph: function %d is nil", fi)
		}
		if err := checkName("function name", f.Name); err != nil {
			return nil, err
		}
		if funcs[f.Name] {
			return nil, fmt.Errorf("graph: function @%s defined twice", f.Name)
		}
		funcs[f.Name] = true
		where := func(format string, args ...any) error {
			return fmt.Errorf("graph: @%s: %s", f.Name, fmt.Sprintf(format, args...))
		}
		defined := map[*graph.Value]bool{}
		for i, a := range f.Args {
			if a.Value == nil {
				return nil, where("argument %d has no value", i)
			}
			if err := graph.CheckType(a.Value.Type); err != nil {
				return nil, where("argument %d: %v", i, err)
			}
			if strings.IndexByte(a.Name, 0) >= 0 || strings.IndexByte(a.Mutation, 0) >= 0 {
				return nil, where("argument %d: name with a NUL byte", i)
			}
			if defined[a.Value] {
				return nil, where("argument %d repeats an earlier argument's value", i)
			}
			defined[a.Value] = true
		}
		for oi, op := range f.Body {
			if op == nil {
				return nil, where("op %d is nil", oi)
			}
			if err := checkName("op name", op.Name); err != nil || !strings.HasPrefix(op.Name, "coreai.") || op.Name == opGraph || op.Name == opOutput {
				return nil, where("op %d: %q is not a coreai op name qconv can write", oi, op.Name)
			}
			for k, v := range op.Operands {
				if v == nil || !defined[v] {
					return nil, where("op %d (%s): operand %d is not defined earlier in the function", oi, op.Name, k)
				}
			}
			for k, r := range op.Results {
				if r == nil || defined[r] {
					return nil, where("op %d (%s): result %d is missing or defined twice", oi, op.Name, k)
				}
				if err := graph.CheckType(r.Type); err != nil {
					return nil, where("op %d (%s): result %d: %v", oi, op.Name, k, err)
				}
				defined[r] = true
			}
			for _, key := range sortedKeys(op.Attrs) {
				if err := checkName("attribute name", key); err != nil {
					return nil, where("op %d (%s): %v", oi, op.Name, err)
				}
				switch a := op.Attrs[key].(type) {
				case graph.DenseAttr:
					if err := graph.CheckDense(a); err != nil {
						return nil, where("op %d (%s): attribute %s: %v", oi, op.Name, key, err)
					}
				case graph.ResourceAttr:
					if a.Res == nil || !res[a.Res] {
						return nil, where("op %d (%s): attribute %s: dense_resource of a blob not in the module's resources", oi, op.Name, key)
					}
					if err := graph.CheckType(a.Type); err != nil || a.Type.Kind != graph.TensorKind {
						return nil, where("op %d (%s): attribute %s: dense_resource type %s is not a valid tensor type", oi, op.Name, key, a.Type)
					}
					if !used[a.Res] {
						used[a.Res] = true
						mc.textOrder = append(mc.textOrder, a.Res)
					}
				case graph.SymbolRefAttr:
					if err := checkName("symbol", a.Name); err != nil {
						return nil, where("op %d (%s): attribute %s: %v", oi, op.Name, key, err)
					}
				case graph.StringAttr:
					if strings.IndexByte(a.S, 0) >= 0 {
						return nil, where("op %d (%s): attribute %s: string with a NUL byte", oi, op.Name, key)
					}
				default:
					return nil, where("op %d (%s): attribute %s: unsupported attribute %T", oi, op.Name, key, a)
				}
			}
		}
		for i, r := range f.Results {
			if r.Value == nil || !defined[r.Value] {
				return nil, where("result %d (%q) is not a value of the function", i, r.Name)
			}
			if strings.IndexByte(r.Name, 0) >= 0 {
				return nil, where("result %d: name with a NUL byte", i)
			}
		}
	}
	for _, r := range m.Resources {
		if !used[r] {
			return nil, fmt.Errorf("graph: resource %q is not referenced by any constant (mlir-opt would drop it)", r.Key)
		}
	}
	return mc, nil
}

func checkName(what, s string) error {
	if s == "" || strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("graph: %s %q is empty or has a NUL byte", what, s)
	}
	return nil
}
