package graph

import (
	"fmt"
	"strings"
)

// Builder appends ops to a function, inferring result types. The first error sticks (later calls
// return placeholders) and is reported by Err, so lowering code reads straight through, like a
// bufio.Writer.
type Builder struct {
	F      *Func
	M      *Module
	err    error
	consts map[string]*Value // inline constants, deduplicated by type and bytes
}

// NewBuilder appends to f, whose resources live in m.
func NewBuilder(m *Module, f *Func) *Builder {
	return &Builder{F: f, M: m, consts: map[string]*Value{}}
}

// Err is the first error met while building.
func (b *Builder) Err() error { return b.err }

func (b *Builder) fail(err error) {
	if b.err == nil {
		b.err = err
	}
}

func (b *Builder) Placeholder(t Type) *Value { return &Value{Type: t} }

// Op appends an op whose single result type is inferred.
func (b *Builder) Op(name string, operands ...*Value) *Value {
	return b.OpN(name, nil, operands...)[0]
}

// OpAttrs appends a single-result op with attributes.
func (b *Builder) OpAttrs(name string, attrs map[string]Attr, operands ...*Value) *Value {
	return b.OpN(name, attrs, operands...)[0]
}

// OpN appends an op and returns all its results.
func (b *Builder) OpN(name string, attrs map[string]Attr, operands ...*Value) []*Value {
	op := &Op{Name: name, Operands: operands, Attrs: attrs}
	if b.err != nil {
		return []*Value{b.Placeholder(Type{}), b.Placeholder(Type{})}
	}
	ts, err := InferTypes(op, b.M)
	if err != nil {
		b.fail(fmt.Errorf("building @%s: %w", b.F.Name, err))
		return []*Value{b.Placeholder(Type{}), b.Placeholder(Type{})}
	}
	for _, t := range ts {
		op.Results = append(op.Results, &Value{Type: t})
	}
	b.F.Append(op)
	return op.Results
}

// Typed appends a single-result op with a declared result type, which must be compatible with
// what inference gives (it may be more static, e.g. a slice whose bounds come from get_shape).
func (b *Builder) Typed(name string, t Type, operands ...*Value) *Value {
	op := &Op{Name: name, Operands: operands, Results: []*Value{{Type: t}}}
	if b.err != nil {
		return b.Placeholder(t)
	}
	ts, err := InferTypes(op, b.M)
	if err == nil && !ts[0].Compatible(t) {
		err = fmt.Errorf("%s: declared %s, inferred %s", name, t, ts[0])
	}
	if err != nil {
		b.fail(fmt.Errorf("building @%s: %w", b.F.Name, err))
		return b.Placeholder(t)
	}
	b.F.Append(op)
	return op.Results[0]
}

// Const appends (or reuses) an inline dense constant.
func (b *Builder) Const(d DenseAttr) *Value {
	key := d.Type.String() + "|" + string(d.Data)
	if v, ok := b.consts[key]; ok {
		return v
	}
	v := b.OpAttrs(OpConstant, map[string]Attr{"value": d})
	b.consts[key] = v
	return v
}

// I32s is an si32 vector constant (axes, begin/end/strides).
func (b *Builder) I32s(vals ...int64) *Value {
	return b.Const(DenseInts(SI32, []int64{int64(len(vals))}, vals))
}

// I32 is an si32 scalar constant (an axis).
func (b *Builder) I32(v int64) *Value { return b.Const(DenseInts(SI32, nil, []int64{v})) }

// U32s is a ui32 vector constant (shapes, permutations).
func (b *Builder) U32s(vals ...int64) *Value {
	return b.Const(DenseInts(UI32, []int64{int64(len(vals))}, vals))
}

// Scalar is a rank-0 float constant of dtype dt.
func (b *Builder) Scalar(dt DType, v float64) *Value {
	return b.Const(DenseFloats(dt, nil, []float64{v}))
}

// Splat is a float constant of the given shape with every element v.
func (b *Builder) Splat(dt DType, v float64, shape ...int64) *Value {
	return b.Const(DenseFloats(dt, shape, []float64{v}))
}

// SplatInt is an integer constant of the given shape with every element v.
func (b *Builder) SplatInt(dt DType, v int64, shape ...int64) *Value {
	return b.Const(DenseInts(dt, shape, []int64{v}))
}

// Resource appends a dense_resource constant for a registered blob.
func (b *Builder) Resource(t Type, r *Resource) *Value {
	if r == nil {
		b.fail(fmt.Errorf("building @%s: nil resource for %s", b.F.Name, t))
		return b.Placeholder(t)
	}
	return b.OpAttrs(OpConstant, map[string]Attr{"value": ResourceAttr{Type: t, Res: r}})
}

// Reshape to a static shape.
func (b *Builder) Reshape(x *Value, shape ...int64) *Value {
	return b.Op(OpReshape, x, b.U32s(shape...))
}

// Transpose by perm.
func (b *Builder) Transpose(x *Value, perm ...int64) *Value {
	return b.Op(OpTranspose, x, b.U32s(perm...))
}

// Cast to dtype (a no-op returns x).
func (b *Builder) Cast(x *Value, dt DType) *Value {
	if x.Type.DType == dt {
		return x
	}
	return b.Typed(OpCast, Tensor(dt, x.Type.Shape...), x)
}

// Slice with constant bounds (end SliceEnd = to the end).
func (b *Builder) Slice(x *Value, begin, end []int64) *Value {
	strides := make([]int64, len(begin))
	for i := range strides {
		strides[i] = 1
	}
	return b.Op(OpSlice, x, b.I32s(begin...), b.I32s(end...), b.I32s(strides...))
}

// Binary helpers.
func (b *Builder) Add(x, y *Value) *Value { return b.Op(OpAdd, x, y) }
func (b *Builder) Sub(x, y *Value) *Value { return b.Op(OpSub, x, y) }
func (b *Builder) Mul(x, y *Value) *Value { return b.Op(OpMul, x, y) }
func (b *Builder) Div(x, y *Value) *Value { return b.Op(OpDiv, x, y) }

// Matmul is broadcasting_batch_matmul.
func (b *Builder) Matmul(x, y *Value) *Value { return b.Op(OpMatmul, x, y) }

// ReduceSum over axes, dims kept.
func (b *Builder) ReduceSum(x *Value, axes ...int64) *Value {
	return b.Op(OpReduceSum, x, b.I32s(axes...))
}

// ReduceMean over axes, dims kept.
func (b *Builder) ReduceMean(x *Value, axes ...int64) *Value {
	return b.Op(OpReduceMean, x, b.I32s(axes...))
}

// Concat along axis.
func (b *Builder) Concat(axis int64, xs ...*Value) *Value {
	return b.Op(OpConcat, append([]*Value{b.I32(axis)}, xs...)...)
}

// ReadState reads a state handle (ordered after tok) and returns its value and the new token.
func (b *Builder) ReadState(h, tok *Value) (*Value, *Value) {
	r := b.OpN(OpReadHandle, nil, h, tok)
	return r[0], r[1]
}

// WriteState writes v into state handle h and returns the token, which the caller adds as the
// function result named after the state.
func (b *Builder) WriteState(h, v, tok *Value) *Value {
	return b.OpN(OpWriteHandle, nil, h, v, tok)[0]
}

// SanitizeKey turns a tensor name into a resource key (letters, digits, '_' and '.').
func SanitizeKey(name string) string {
	var s strings.Builder
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '.':
			s.WriteRune(r)
		default:
			s.WriteByte('_')
		}
	}
	return s.String()
}
