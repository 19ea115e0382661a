package mlir

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"qconv/graph"
)

// Types and attributes as the bytecode reader sees them, from either a builtin binary encoding or
// an assembly-text entry (mlir-opt writes types of dialects it does not know, such as
// !coreai.handle<...>, as text). They keep enough to build the IR and to say what was found when
// something is not supported.

type mTypeKind uint8

const (
	mElem   mTypeKind = iota // scalar element type; dt == 0 when not one qconv uses
	mTensor                  // ranked tensor of elem
	mFunc
	mHandle // !coreai.handle<elem tensor>
	mToken
	mOtherType // anything else, kept as a description
)

type mType struct {
	kind      mTypeKind
	dt        graph.DType
	name      string // spelling of an element type or description of an unsupported type
	shape     []int64
	elem      *mType // tensor: element type; handle: the tensor type
	ins, outs []*mType
}

func (t *mType) String() string {
	switch t.kind {
	case mElem, mOtherType:
		return t.name
	case mTensor:
		var b strings.Builder
		b.WriteString("tensor<")
		for _, d := range t.shape {
			if d == graph.Dyn {
				b.WriteString("?x")
			} else {
				b.WriteString(strconv.FormatInt(d, 10) + "x")
			}
		}
		return b.String() + t.elem.String() + ">"
	case mHandle:
		return "!coreai.handle<" + t.elem.String() + ">"
	case mToken:
		return "!coreai.token"
	}
	var b strings.Builder
	b.WriteString("(")
	for i, x := range t.ins {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(x.String())
	}
	b.WriteString(") -> (")
	for i, x := range t.outs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(x.String())
	}
	return b.String() + ")"
}

// graphType converts to the IR's Type: a ranked tensor of a qconv dtype, a handle of one, or a token.
func (t *mType) graphType() (graph.Type, error) {
	switch t.kind {
	case mToken:
		return graph.TokenType(), nil
	case mTensor, mHandle:
		tt := t
		if t.kind == mHandle {
			tt = t.elem
			if tt.kind != mTensor {
				return graph.Type{}, fmt.Errorf("handle of %s, want a tensor", tt)
			}
		}
		if tt.elem.kind != mElem || tt.elem.dt == 0 {
			return graph.Type{}, fmt.Errorf("unsupported element type in %s", t)
		}
		out := graph.Tensor(tt.elem.dt, tt.shape...)
		if t.kind == mHandle {
			out = graph.HandleOf(out)
		}
		return out, nil
	}
	return graph.Type{}, fmt.Errorf("unsupported type %s", t)
}

type (
	mAttr   interface{}
	mString struct{ s string }
	mNamed  struct {
		name string
		val  mAttr
	}
	mDict     []mNamed
	mArray    []mAttr
	mSymRef   struct{ root, nested string } // nested != "" for @a::@b
	mTypeAttr struct{ t *mType }
	mLoc      struct{}
	mDense    struct {
		t     *mType
		elems []uint64 // canonical element bits: one for a splat
	}
	mDenseRes struct {
		t      *mType
		handle int    // resource handle index, or -1 with key set (assembly form)
		key    string // assembly form
	}
	mOther struct{ what string } // a valid attribute qconv's IR has no use for
)

func attrKind(a mAttr) string {
	switch a := a.(type) {
	case mString:
		return "string"
	case mDict:
		return "dictionary"
	case mArray:
		return "array"
	case mSymRef:
		return "symbol reference"
	case mTypeAttr:
		return "type attribute"
	case mLoc:
		return "location"
	case mDense:
		return "dense elements"
	case mDenseRes:
		return "dense_resource"
	case mOther:
		return a.what
	}
	return fmt.Sprintf("%T", a)
}

// numElements is the element count of a static shape, or an error when the shape is dynamic
// or the count does not fit comfortably in an int.
func numElements(shape []int64) (int64, error) {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("dynamic shape")
		}
		if d != 0 && n > (1<<53)/d {
			return 0, fmt.Errorf("shape %v has too many elements", shape)
		}
		n *= d
	}
	return n, nil
}

// fromMLIRStorage decodes MLIR's raw DenseElementsAttr storage (see mlirStorage) for n elements
// of dt into canonical element bits. i1 data may be packed bits (MLIR 22) or one byte per
// element (later MLIR).
func fromMLIRStorage(dt graph.DType, n int64, raw []byte) ([]uint64, error) {
	if n == 0 {
		if len(raw) != 0 {
			return nil, fmt.Errorf("%d bytes for an empty tensor", len(raw))
		}
		return nil, nil
	}
	var elems []uint64
	switch bits := dt.Bits(); {
	case bits == 1:
		switch {
		case len(raw) == 1 && (raw[0] == 0 || raw[0] == 0xff):
			return []uint64{uint64(raw[0] & 1)}, nil
		case int64(len(raw)) == (n+7)/8:
			elems = make([]uint64, n)
			for i := range elems {
				elems[i] = uint64(raw[i/8] >> (i % 8) & 1)
			}
		case int64(len(raw)) == n:
			elems = make([]uint64, n)
			for i, c := range raw {
				if c != 0 {
					elems[i] = 1
				}
			}
		default:
			return nil, fmt.Errorf("%d bytes for %d i1 elements", len(raw), n)
		}
	default:
		size := (bits + 7) / 8
		if len(raw) != size && int64(len(raw)) != n*int64(size) {
			return nil, fmt.Errorf("%d bytes for %d %s elements", len(raw), n, dt)
		}
		elems = make([]uint64, len(raw)/size)
		for i := range elems {
			var v uint64
			for k := size - 1; k >= 0; k-- {
				v = v<<8 | uint64(raw[i*size+k])
			}
			if bits == 4 {
				v &= 15
			}
			elems[i] = v
		}
	}
	for _, e := range elems[1:] {
		if e != elems[0] {
			return elems, nil
		}
	}
	return elems[:1], nil
}

// denseAttrFrom builds the IR attribute from canonical elements: a splat holds one element
// unless the whole tensor fits in one element's bytes (DenseAttr.Splat).
func denseAttrFrom(t graph.Type, elems []uint64) graph.DenseAttr {
	n := int(t.NumElements())
	if len(elems) == 1 && n > 1 && graph.BytesFor(t.DType, n) == graph.BytesFor(t.DType, 1) {
		full := make([]uint64, n)
		for i := range full {
			full[i] = elems[0]
		}
		elems = full
	}
	return graph.DenseAttr{Type: t, Data: packElements(t.DType, elems)}
}

// asmParser parses the subset of MLIR's attribute and type syntax that bytecode assembly
// entries use; anything outside it that is still well-formed nesting becomes mOther.
type asmParser struct {
	s   string
	pos int
}

const maxAsmDepth = 64

func (p *asmParser) errf(format string, args ...any) error {
	return fmt.Errorf("at character %d of %q: %s", p.pos, truncate(p.s, 80), fmt.Sprintf(format, args...))
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func (p *asmParser) skipSpace() {
	for p.pos < len(p.s) && (p.s[p.pos] == ' ' || p.s[p.pos] == '\n' || p.s[p.pos] == '\t' || p.s[p.pos] == '\r') {
		p.pos++
	}
}

func (p *asmParser) peek(prefix string) bool {
	p.skipSpace()
	return strings.HasPrefix(p.s[p.pos:], prefix)
}

func (p *asmParser) accept(prefix string) bool {
	if p.peek(prefix) {
		p.pos += len(prefix)
		return true
	}
	return false
}

func (p *asmParser) expect(prefix string) error {
	if !p.accept(prefix) {
		return p.errf("expected %q", prefix)
	}
	return nil
}

func (p *asmParser) end() error {
	p.skipSpace()
	if p.pos != len(p.s) {
		return p.errf("trailing characters")
	}
	return nil
}

func isIdentChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '$' || c == '.'
}

// ident reads a bare identifier (letters, digits, _ $ .).
func (p *asmParser) ident() string {
	p.skipSpace()
	start := p.pos
	for p.pos < len(p.s) && isIdentChar(p.s[p.pos]) {
		p.pos++
	}
	return p.s[start:p.pos]
}

// balanced skips a bracketed body after its opening bracket, up to and including the closer.
func (p *asmParser) balanced(closer byte) error {
	var stack []byte
	stack = append(stack, closer)
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		p.pos++
		switch c {
		case '"':
			if _, err := p.stringBody(); err != nil {
				return err
			}
		case '<':
			stack = append(stack, '>')
		case '(':
			stack = append(stack, ')')
		case '[':
			stack = append(stack, ']')
		case '{':
			stack = append(stack, '}')
		case '>', ')', ']', '}':
			if c == '>' && p.pos >= 2 && p.s[p.pos-2] == '-' { // "->" in a function type
				continue
			}
			if stack[len(stack)-1] != c {
				return p.errf("unbalanced %q", c)
			}
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return nil
			}
		}
		if len(stack) > maxAsmDepth {
			return p.errf("nesting too deep")
		}
	}
	return p.errf("unterminated %q", closer)
}

// stringBody reads a string literal after its opening quote, decoding MLIR's escapes.
func (p *asmParser) stringBody() (string, error) {
	var b strings.Builder
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		p.pos++
		switch c {
		case '"':
			return b.String(), nil
		case '\\':
			if p.pos >= len(p.s) {
				return "", p.errf("unterminated escape")
			}
			e := p.s[p.pos]
			p.pos++
			switch e {
			case '"', '\\':
				b.WriteByte(e)
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			default:
				if p.pos >= len(p.s) {
					return "", p.errf("bad escape")
				}
				v, err := strconv.ParseUint(p.s[p.pos-1:p.pos+1], 16, 8)
				if err != nil {
					return "", p.errf("bad escape \\%s", p.s[p.pos-1:p.pos+1])
				}
				p.pos++
				b.WriteByte(byte(v))
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", p.errf("unterminated string")
}

// typeListRest parses the types of a parenthesised list whose "(" is consumed, and its ")".
func (p *asmParser) typeListRest(depth int) ([]*mType, error) {
	var ts []*mType
	if p.accept(")") {
		return ts, nil
	}
	for {
		t, err := p.parseType(depth + 1)
		if err != nil {
			return nil, err
		}
		ts = append(ts, t)
		if p.accept(")") {
			return ts, nil
		}
		if err := p.expect(","); err != nil {
			return nil, err
		}
	}
}

func (p *asmParser) parseType(depth int) (*mType, error) {
	if depth > maxAsmDepth {
		return nil, p.errf("nesting too deep")
	}
	p.skipSpace()
	start := p.pos
	switch {
	case p.accept("!coreai.token"):
		return &mType{kind: mToken}, nil
	case p.accept("!coreai.handle<"):
		t, err := p.parseType(depth + 1)
		if err != nil {
			return nil, err
		}
		if err := p.expect(">"); err != nil {
			return nil, err
		}
		return &mType{kind: mHandle, elem: t}, nil
	case p.accept("!"):
		p.ident()
		if p.accept("<") {
			if err := p.balanced('>'); err != nil {
				return nil, err
			}
		}
		return &mType{kind: mOtherType, name: p.s[start:p.pos]}, nil
	case p.accept("("):
		ins, err := p.typeListRest(depth)
		if err != nil {
			return nil, err
		}
		if err := p.expect("->"); err != nil {
			return nil, err
		}
		var outs []*mType
		if p.peek("(") && !p.peekFunctionType() {
			p.accept("(")
			if outs, err = p.typeListRest(depth); err != nil {
				return nil, err
			}
		} else {
			t, err := p.parseType(depth + 1)
			if err != nil {
				return nil, err
			}
			outs = []*mType{t}
		}
		return &mType{kind: mFunc, ins: ins, outs: outs}, nil
	}
	name := p.ident()
	if name == "" {
		return nil, p.errf("expected a type")
	}
	if name == "tensor" && p.accept("<") {
		return p.tensorBody(start, depth)
	}
	if p.accept("<") { // vector<...>, memref<...>, complex<...>
		if err := p.balanced('>'); err != nil {
			return nil, err
		}
		return &mType{kind: mOtherType, name: p.s[start:p.pos]}, nil
	}
	return elemType(name)
}

// peekFunctionType reports whether a '(' at the position starts a function type used as the
// single result of a function type, e.g. "() -> (i1) -> i1"; rare, but the grammar allows it.
func (p *asmParser) peekFunctionType() bool {
	save := p.pos
	defer func() { p.pos = save }()
	p.accept("(")
	if err := p.balanced(')'); err != nil {
		return false
	}
	return p.peek("->")
}

func elemType(name string) (*mType, error) {
	if dt, ok := graph.ParseDType(name); ok {
		return &mType{kind: mElem, dt: dt, name: name}, nil
	}
	switch {
	case name == "index" || name == "none" || name == "bf16" || name == "f64" || name == "f80" || name == "f128" || name == "tf32" || strings.HasPrefix(name, "f8") || strings.HasPrefix(name, "f4") || strings.HasPrefix(name, "f6"):
	case len(name) > 1 && (name[0] == 'i' || strings.HasPrefix(name, "si") || strings.HasPrefix(name, "ui")):
		digits := strings.TrimLeft(name, "isu")
		if w, err := strconv.Atoi(digits); err != nil || w <= 0 || w > 1<<24 {
			return nil, fmt.Errorf("unknown type %q", name)
		}
	default:
		return nil, fmt.Errorf("unknown type %q", name)
	}
	return &mType{kind: mElem, name: name}, nil
}

// tensorBody parses "1x?xf16>" after "tensor<".
func (p *asmParser) tensorBody(start, depth int) (*mType, error) {
	t := &mType{kind: mTensor}
	if p.accept("*") {
		if err := p.balanced('>'); err != nil {
			return nil, err
		}
		return &mType{kind: mOtherType, name: p.s[start:p.pos]}, nil
	}
	for {
		p.skipSpace()
		if p.pos < len(p.s) && p.s[p.pos] == '?' {
			p.pos++
			t.shape = append(t.shape, graph.Dyn)
		} else if p.pos < len(p.s) && p.s[p.pos] >= '0' && p.s[p.pos] <= '9' {
			i := p.pos
			for p.pos < len(p.s) && p.s[p.pos] >= '0' && p.s[p.pos] <= '9' {
				p.pos++
			}
			d, err := strconv.ParseInt(p.s[i:p.pos], 10, 64)
			if err != nil {
				return nil, p.errf("bad dimension")
			}
			t.shape = append(t.shape, d)
		} else {
			break
		}
		if p.pos >= len(p.s) || p.s[p.pos] != 'x' {
			return nil, p.errf("expected 'x' after a dimension")
		}
		p.pos++
	}
	elem, err := p.parseType(depth + 1)
	if err != nil {
		return nil, err
	}
	t.elem = elem
	if p.accept(",") { // encoding
		if err := p.balanced('>'); err != nil {
			return nil, err
		}
		return &mType{kind: mOtherType, name: p.s[start:p.pos]}, nil
	}
	if err := p.expect(">"); err != nil {
		return nil, err
	}
	return t, nil
}

func (p *asmParser) parseAttr(depth int) (mAttr, error) {
	if depth > maxAsmDepth {
		return nil, p.errf("nesting too deep")
	}
	p.skipSpace()
	start := p.pos
	switch {
	case p.accept("loc("):
		if err := p.balanced(')'); err != nil {
			return nil, err
		}
		return mLoc{}, nil
	case p.accept("\""):
		s, err := p.stringBody()
		if err != nil {
			return nil, err
		}
		if p.accept(":") {
			if _, err := p.parseType(depth + 1); err != nil {
				return nil, err
			}
			return mOther{"typed string"}, nil
		}
		return mString{s}, nil
	case p.accept("@"):
		root, err := p.symbolName()
		if err != nil {
			return nil, err
		}
		ref := mSymRef{root: root}
		for p.accept("::@") {
			n, err := p.symbolName()
			if err != nil {
				return nil, err
			}
			ref.nested += "::@" + n
		}
		return ref, nil
	case p.accept("["):
		var arr mArray
		if p.accept("]") {
			return arr, nil
		}
		for {
			a, err := p.parseAttr(depth + 1)
			if err != nil {
				return nil, err
			}
			arr = append(arr, a)
			if p.accept("]") {
				return arr, nil
			}
			if err := p.expect(","); err != nil {
				return nil, err
			}
		}
	case p.accept("{"):
		var d mDict
		if p.accept("}") {
			return d, nil
		}
		for {
			var name string
			if p.accept("\"") {
				s, err := p.stringBody()
				if err != nil {
					return nil, err
				}
				name = s
			} else if name = p.ident(); name == "" {
				return nil, p.errf("expected an attribute name")
			}
			var val mAttr = mOther{"unit"}
			if p.accept("=") {
				v, err := p.parseAttr(depth + 1)
				if err != nil {
					return nil, err
				}
				val = v
			}
			d = append(d, mNamed{name, val})
			if p.accept("}") {
				return d, nil
			}
			if err := p.expect(","); err != nil {
				return nil, err
			}
		}
	case p.accept("dense_resource<"):
		var key string
		if p.accept("\"") {
			k, err := p.stringBody()
			if err != nil {
				return nil, err
			}
			key = k
		} else {
			key = p.ident()
		}
		if key == "" {
			return nil, p.errf("expected a resource key")
		}
		if err := p.expect(">"); err != nil {
			return nil, err
		}
		if err := p.expect(":"); err != nil {
			return nil, err
		}
		t, err := p.parseType(depth + 1)
		if err != nil {
			return nil, err
		}
		return mDenseRes{t: t, handle: -1, key: key}, nil
	case p.accept("dense<"):
		return p.denseBody(depth)
	case p.accept("#"):
		p.ident()
		if p.accept("<") {
			if err := p.balanced('>'); err != nil {
				return nil, err
			}
		}
		return mOther{p.s[start:p.pos]}, nil
	}
	if p.pos < len(p.s) && (p.s[p.pos] == '-' || p.s[p.pos] >= '0' && p.s[p.pos] <= '9') {
		for p.pos < len(p.s) && strings.IndexByte("-+.0123456789abcdefABCDEFxX", p.s[p.pos]) >= 0 {
			p.pos++
		}
		if p.accept(":") {
			if _, err := p.parseType(depth + 1); err != nil {
				return nil, err
			}
		}
		return mOther{"number " + p.s[start:p.pos]}, nil
	}
	save := p.pos
	switch word := p.ident(); word {
	case "unit", "true", "false":
		return mOther{word}, nil
	case "array", "affine_map", "affine_set", "strided", "distinct", "sparse", "dense_array":
		if p.accept("<") {
			if err := p.balanced('>'); err != nil {
				return nil, err
			}
			return mOther{word}, nil
		}
	}
	p.pos = save
	t, err := p.parseType(depth + 1)
	if err != nil {
		return nil, err
	}
	return mTypeAttr{t}, nil
}

func (p *asmParser) symbolName() (string, error) {
	if p.pos < len(p.s) && p.s[p.pos] == '"' {
		p.pos++
		return p.stringBody()
	}
	s := p.ident()
	if s == "" {
		return "", p.errf("expected a symbol name")
	}
	return s, nil
}

// denseBody parses the literal of dense<...> : type after "dense<".
func (p *asmParser) denseBody(depth int) (mAttr, error) {
	type lit struct {
		text string
		list []*lit
		leaf bool
	}
	var hex string
	var root *lit
	var parse func(d int) (*lit, error)
	parse = func(d int) (*lit, error) {
		if d > maxAsmDepth {
			return nil, p.errf("nesting too deep")
		}
		if p.accept("[") {
			l := &lit{}
			if p.accept("]") {
				return l, nil
			}
			for {
				e, err := parse(d + 1)
				if err != nil {
					return nil, err
				}
				l.list = append(l.list, e)
				if p.accept("]") {
					return l, nil
				}
				if err := p.expect(","); err != nil {
					return nil, err
				}
			}
		}
		p.skipSpace()
		i := p.pos
		for p.pos < len(p.s) && strings.IndexByte("-+.0123456789abcdefABCDEFxXtrulsn", p.s[p.pos]) >= 0 {
			p.pos++
		}
		if i == p.pos {
			return nil, p.errf("expected a dense element")
		}
		return &lit{text: p.s[i:p.pos], leaf: true}, nil
	}
	switch {
	case p.accept(">"):
	case p.accept("\""):
		s, err := p.stringBody()
		if err != nil {
			return nil, err
		}
		if !strings.HasPrefix(s, "0x") {
			return nil, p.errf("dense string elements are not supported")
		}
		hex = s[2:]
		if err := p.expect(">"); err != nil {
			return nil, err
		}
	default:
		l, err := parse(depth)
		if err != nil {
			return nil, err
		}
		root = l
		if err := p.expect(">"); err != nil {
			return nil, err
		}
	}
	if err := p.expect(":"); err != nil {
		return nil, err
	}
	t, err := p.parseType(depth + 1)
	if err != nil {
		return nil, err
	}
	if t.kind != mTensor || t.elem.kind != mElem || t.elem.dt == 0 {
		return mOther{"dense elements of " + t.String()}, nil
	}
	dt := t.elem.dt
	n, err := numElements(t.shape)
	if err != nil {
		return nil, p.errf("dense %s: %v", t, err)
	}
	if hex != "" || (root == nil && n > 0) {
		raw := make([]byte, len(hex)/2)
		if len(hex)%2 != 0 {
			return nil, p.errf("odd hex length")
		}
		for i := range raw {
			v, err := strconv.ParseUint(hex[2*i:2*i+2], 16, 8)
			if err != nil {
				return nil, p.errf("bad hex digits")
			}
			raw[i] = byte(v)
		}
		elems, err := fromMLIRStorage(dt, n, raw)
		if err != nil {
			return nil, p.errf("dense %s: %v", t, err)
		}
		return mDense{t: t, elems: elems}, nil
	}
	if root == nil {
		return mDense{t: t}, nil
	}
	// Flatten, checking the nesting against the shape; a single scalar is a splat.
	var elems []uint64
	var walk func(l *lit, dim int) error
	walk = func(l *lit, dim int) error {
		if l.leaf {
			if dim != len(t.shape) {
				return p.errf("dense literal does not match shape %v", t.shape)
			}
			v, err := parseElement(dt, l.text)
			if err != nil {
				return p.errf("%v", err)
			}
			elems = append(elems, v)
			return nil
		}
		if dim >= len(t.shape) || int64(len(l.list)) != t.shape[dim] {
			return p.errf("dense literal does not match shape %v", t.shape)
		}
		for _, e := range l.list {
			if err := walk(e, dim+1); err != nil {
				return err
			}
		}
		return nil
	}
	if root.leaf {
		v, err := parseElement(dt, root.text)
		if err != nil {
			return nil, p.errf("%v", err)
		}
		if n == 0 {
			return nil, p.errf("splat value for an empty tensor")
		}
		return mDense{t: t, elems: []uint64{v}}, nil
	}
	if err := walk(root, 0); err != nil {
		return nil, err
	}
	for _, e := range elems[1:] {
		if e != elems[0] {
			return mDense{t: t, elems: elems}, nil
		}
	}
	return mDense{t: t, elems: elems[:min(len(elems), 1)]}, nil
}

// parseElement reads one dense element literal of dtype dt as its bit pattern.
func parseElement(dt graph.DType, s string) (uint64, error) {
	bits := uint(dt.Bits())
	if dt == graph.I1 {
		switch s {
		case "true", "1":
			return 1, nil
		case "false", "0":
			return 0, nil
		}
		return 0, fmt.Errorf("bad i1 element %q", s)
	}
	if strings.HasPrefix(s, "0x") {
		v, err := strconv.ParseUint(s[2:], 16, 64)
		if err != nil || (bits < 64 && v>>bits != 0) {
			return 0, fmt.Errorf("bad %s element %q", dt, s)
		}
		return v, nil
	}
	if dt.IsFloat() {
		v := formatOf(dt).parse(s)
		if v == math.MaxUint64 {
			return 0, fmt.Errorf("bad %s element %q", dt, s)
		}
		return v, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad %s element %q", dt, s)
	}
	signed := strings.HasPrefix(dt.String(), "si")
	lo, hi := int64(0), int64(1)<<bits-1
	if signed {
		lo, hi = -(int64(1) << (bits - 1)), int64(1)<<(bits-1)-1
	}
	if v < lo || v > hi {
		return 0, fmt.Errorf("%s element %d out of range", dt, v)
	}
	return uint64(v) & (1<<bits - 1), nil
}
