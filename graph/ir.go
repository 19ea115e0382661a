// Package graph holds qconv's graph IR: functions of coreai ops over typed tensors, with states and
// weight resources, built with a Builder, compared with EqualModules, checked by the verifier that
// enforces the device constraints, and the engine contracts (I/O names and shapes) a lowered module
// implements. Its neighbours, as go/parser, go/printer and go/types are go/ast's: qconv/lower
// builds a module from a Qwen3.5 checkpoint, graph/interp runs one on the CPU, and graph/mlir writes
// it as MLIR text and bytecode and reads the bytecode back.
//
// The IR mirrors the MLIR that ships one to one: an op is a coreai op with its operands in the
// printed order, every value has an explicit type, constants carry their value attribute, and a
// state is a !coreai.handle argument that the function reads once (coreai.read_handle) and writes
// once (coreai.write_handle), returning a !coreai.token result of the same name, as Apple's
// converter emits it. Writing and reading MLIR is therefore a syntax question, never a semantic one.
package graph

import (
	"fmt"
	"strconv"
	"strings"
)

// DType is a tensor element type, spelled as MLIR spells it.
type DType uint8

const (
	F32 DType = iota + 1
	F16
	SI32
	UI32
	SI16
	SI8
	UI8
	SI4
	UI4
	I1
	BF16 // bfloat16: f32's exponent range, 8 significant bits (graph/bf16.go)
)

var dtypeInfo = [...]struct {
	name  string
	bits  int
	float bool
}{
	F32: {"f32", 32, true}, F16: {"f16", 16, true}, SI32: {"si32", 32, false}, UI32: {"ui32", 32, false},
	SI16: {"si16", 16, false}, SI8: {"si8", 8, false}, UI8: {"ui8", 8, false}, SI4: {"si4", 4, false},
	UI4: {"ui4", 4, false}, I1: {"i1", 1, false}, BF16: {"bf16", 16, true},
}

func (d DType) Valid() bool { return d > 0 && int(d) < len(dtypeInfo) }

// String is the MLIR spelling (f16, si8, ui4, ...).
func (d DType) String() string {
	if !d.Valid() {
		return fmt.Sprintf("dtype(%d)", uint8(d))
	}
	return dtypeInfo[d].name
}

// Bits is the element width.
func (d DType) Bits() int { return dtypeInfo[d].bits }

// IsFloat reports f16, bf16 and f32.
func (d DType) IsFloat() bool { return d.Valid() && dtypeInfo[d].float }

// ParseDType reads an MLIR element type spelling.
func ParseDType(s string) (DType, bool) {
	for d := F32; d.Valid(); d++ {
		if dtypeInfo[d].name == s {
			return d, true
		}
	}
	return 0, false
}

// Dyn marks a dynamic dimension (MLIR's '?').
const Dyn int64 = -1

// TypeKind distinguishes tensors from state handles and ordering tokens.
type TypeKind uint8

const (
	TensorKind TypeKind = iota
	HandleKind          // !coreai.handle<tensor<...>>: a mutable state buffer
	TokenKind           // !coreai.token: orders state accesses
)

// Type is a value's type. A handle's DType and Shape describe the tensor it holds.
type Type struct {
	Kind  TypeKind
	DType DType
	Shape []int64
}

// Tensor makes a ranked tensor type.
func Tensor(dt DType, shape ...int64) Type {
	return Type{Kind: TensorKind, DType: dt, Shape: append([]int64{}, shape...)}
}

// HandleOf makes the state handle type holding tensor type t.
func HandleOf(t Type) Type { t.Kind = HandleKind; t.Shape = append([]int64{}, t.Shape...); return t }

// TokenType is !coreai.token.
func TokenType() Type { return Type{Kind: TokenKind} }

// TensorType is the tensor a handle holds (t itself for a tensor).
func (t Type) TensorType() Type { t.Kind = TensorKind; return t }

// Rank is the number of dimensions.
func (t Type) Rank() int { return len(t.Shape) }

// Static reports whether no dimension is dynamic.
func (t Type) Static() bool {
	for _, d := range t.Shape {
		if d == Dyn {
			return false
		}
	}
	return true
}

// NumElements is the element count of a static shape (-1 when dynamic).
func (t Type) NumElements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		if d == Dyn {
			return -1
		}
		n *= d
	}
	return n
}

// Equal compares types exactly (a dynamic dim equals only a dynamic dim).
func (t Type) Equal(u Type) bool {
	if t.Kind != u.Kind {
		return false
	}
	if t.Kind == TokenKind {
		return true
	}
	if t.DType != u.DType || len(t.Shape) != len(u.Shape) {
		return false
	}
	for i := range t.Shape {
		if t.Shape[i] != u.Shape[i] {
			return false
		}
	}
	return true
}

// Compatible is Equal where a dynamic dim on either side matches any size.
func (t Type) Compatible(u Type) bool {
	if t.Kind != u.Kind || t.DType != u.DType || len(t.Shape) != len(u.Shape) {
		return t.Kind == TokenKind && u.Kind == TokenKind
	}
	for i := range t.Shape {
		if t.Shape[i] != u.Shape[i] && t.Shape[i] != Dyn && u.Shape[i] != Dyn {
			return false
		}
	}
	return true
}

// String prints the MLIR spelling: tensor<1x?xf16>, tensor<si32>, !coreai.handle<tensor<...>>, !coreai.token.
func (t Type) String() string {
	switch t.Kind {
	case TokenKind:
		return "!coreai.token"
	case HandleKind:
		return "!coreai.handle<" + t.TensorType().String() + ">"
	}
	var b strings.Builder
	b.WriteString("tensor<")
	for _, d := range t.Shape {
		if d == Dyn {
			b.WriteByte('?')
		} else {
			b.WriteString(strconv.FormatInt(d, 10))
		}
		b.WriteByte('x')
	}
	b.WriteString(t.DType.String())
	b.WriteByte('>')
	return b.String()
}

// Value is an SSA value: a function argument or an op result.
type Value struct {
	Type  Type
	Def   *Op // defining op; nil for an argument
	Index int // result index in Def, or argument index
	ID    int // unique within its function, in definition order
}

func (v *Value) String() string {
	if v.Def == nil {
		return fmt.Sprintf("%%arg%d", v.Index)
	}
	return fmt.Sprintf("%%%d", v.ID)
}

// Op is one coreai operation. Attrs holds its inherent attributes (the constant's "value", the
// invoke's "callee"); keys print sorted.
type Op struct {
	Name     string
	Operands []*Value
	Results  []*Value
	Attrs    map[string]Attr
}

// Result returns the single result of a one-result op.
func (o *Op) Result() *Value { return o.Results[0] }

// Arg is a function argument with its coreai.name, and for a state the name of its mutation.
type Arg struct {
	Value    *Value
	Name     string // coreai.name
	Mutation string // MutableBuffers.buffer_mutation ("" unless a state handle)
}

// Result is a function result with its coreai.name.
type Result struct {
	Value *Value
	Name  string
}

// Func is a coreai.graph: arguments, a straight-line body (regions are not part of qconv's IR:
// no loops, no branches), and the results coreai.output returns.
type Func struct {
	Name    string
	Private bool
	Args    []Arg
	Body    []*Op
	Results []Result
	nextID  int

	// NoInline and Composite mark a private graph that declares a composite op (the callee of a
	// coreai.invoke): Composite is the #coreai.composite_declaration attribute's text
	// (see composite.go).
	NoInline  bool
	Composite string
	// Opaque, set only by the bytecode reader, says why a composite's body was not read (it holds
	// a region op, such as another tool's coreai.while loop): Body is empty and the results are
	// bare typed values. Such a graph runs only by its declaration and cannot be written.
	Opaque string
}

// NewFunc starts an empty function.
func NewFunc(name string) *Func { return &Func{Name: name} }

// AddArg appends an argument.
func (f *Func) AddArg(name string, t Type) *Value {
	v := &Value{Type: t, Index: len(f.Args), ID: f.nextID}
	f.nextID++
	f.Args = append(f.Args, Arg{Value: v, Name: name})
	return v
}

// AddState appends a state handle argument named name holding tensor type t. Its mutation and
// its token result carry the same name (see Builder.WriteState).
func (f *Func) AddState(name string, t Type) *Value {
	v := f.AddArg(name, HandleOf(t))
	f.Args[len(f.Args)-1].Mutation = name
	return v
}

// Append adds an op built elsewhere, numbering its results.
func (f *Func) Append(op *Op) *Op {
	for i, r := range op.Results {
		r.Def, r.Index, r.ID = op, i, f.nextID
		f.nextID++
	}
	f.Body = append(f.Body, op)
	return op
}

// NewOp makes an op with results of the given types (appended with Append).
func NewOp(name string, operands []*Value, results []Type, attrs map[string]Attr) *Op {
	op := &Op{Name: name, Operands: operands, Attrs: attrs}
	for _, t := range results {
		op.Results = append(op.Results, &Value{Type: t})
	}
	return op
}

// AddResult appends a function result.
func (f *Func) AddResult(name string, v *Value) { f.Results = append(f.Results, Result{v, name}) }

// NumValues is the number of values defined in the function (arguments and results).
func (f *Func) NumValues() int { return f.nextID }

// Renumber assigns IDs in definition order (arguments, then op results), e.g. after a reader
// built the function or a pass removed ops.
func (f *Func) Renumber() {
	id := 0
	for i := range f.Args {
		f.Args[i].Value.ID, f.Args[i].Value.Index = id, i
		id++
	}
	for _, op := range f.Body {
		for i, r := range op.Results {
			r.Def, r.Index, r.ID = op, i, id
			id++
		}
	}
	f.nextID = id
}

// Arg returns the argument named name, or nil.
func (f *Func) Arg(name string) *Arg {
	for i := range f.Args {
		if f.Args[i].Name == name {
			return &f.Args[i]
		}
	}
	return nil
}

// Result returns the result named name, or nil.
func (f *Func) Result(name string) *Result {
	for i := range f.Results {
		if f.Results[i].Name == name {
			return &f.Results[i]
		}
	}
	return nil
}

// Module is what one main.mlirb holds: functions and the weight blobs their constants reference.
type Module struct {
	Funcs     []*Func
	Resources []*Resource // in resource-handle order
}

// Func returns the function named name, or nil.
func (m *Module) Func(name string) *Func {
	for _, f := range m.Funcs {
		if f.Name == name {
			return f
		}
	}
	return nil
}

// Resource returns the resource with key, or nil.
func (m *Module) Resource(key string) *Resource {
	for _, r := range m.Resources {
		if r.Key == key {
			return r
		}
	}
	return nil
}

// AddResource registers a blob; keys must be unique.
func (m *Module) AddResource(r *Resource) (*Resource, error) {
	if m.Resource(r.Key) != nil {
		return nil, fmt.Errorf("resource %q defined twice", r.Key)
	}
	if r.Align == 0 {
		r.Align = DefaultAlign
	}
	m.Resources = append(m.Resources, r)
	return r, nil
}
