package graph

import (
	"fmt"
	"sort"
)

// Op names, as the coreai dialect prints them (binary elementwise ops and the matmul carry the
// "decomposable." prefix in Apple's converter output; Python's slice_ prints as coreai.slice).
// Operands are in the printed order.
const (
	OpConstant    = "coreai.constant" // () value=dense|dense_resource
	OpExp         = "coreai.exp"      // (x)
	OpLog         = "coreai.log"      // (x)
	OpSqrt        = "coreai.sqrt"     // (x)
	OpRsqrt       = "coreai.rsqrt"    // (x)
	OpSigmoid     = "coreai.sigmoid"  // (x)
	OpSilu        = "coreai.silu"     // (x)
	OpSin         = "coreai.sin"      // (x)
	OpCos         = "coreai.cos"      // (x)
	OpAdd         = "coreai.decomposable.broadcasting_add"
	OpSub         = "coreai.decomposable.broadcasting_sub"
	OpMul         = "coreai.decomposable.broadcasting_mul"
	OpDiv         = "coreai.decomposable.broadcasting_divide"
	OpMax         = "coreai.decomposable.broadcasting_maximum"
	OpMatmul      = "coreai.decomposable.broadcasting_batch_matmul" // (a [...,M,K], b [...,K,N])
	OpTranspose   = "coreai.transpose"                              // (x, perm ui32[rank])
	OpReshape     = "coreai.reshape"                                // (x, shape ui32[rank'])
	OpExpandDims  = "coreai.expand_dims"                            // (x, axes si32[k])
	OpShrinkDims  = "coreai.shrink_dims"                            // (x, axes si32[k])
	OpConcat      = "coreai.concat"                                 // (axis si32[], x0, x1, ...)
	OpSlice       = "coreai.slice"                                  // (x, begin, end, strides si32[rank])
	OpSliceUpdate = "coreai.slice_update"                           // (x, update, begin, end, strides si32[rank])
	OpGatherND    = "coreai.gather_nd"                              // (table, idx si32[..., 1])
	OpSoftmax     = "coreai.softmax"                                // (x, axis si32[])
	OpReduceSum   = "coreai.reduce_sum"                             // (x, axes si32[k]), dims kept
	OpReduceMean  = "coreai.reduce_mean"                            // (x, axes si32[k]), dims kept
	OpReduceMax   = "coreai.reduce_max"                             // (x, axes si32[k]), dims kept
	OpArgmax      = "coreai.argmax"                                 // (x, axis si32[]) -> ui32, dim kept
	OpCast        = "coreai.cast"                                   // (x) -> result type's dtype
	OpGetShape    = "coreai.get_shape"                              // (x) -> ui32[rank]
	OpBlockwise   = "coreai.blockwise_shift_scale"                  // (data, scale, offset1, offset2): (data-offset1)*scale+offset2
	OpLUTToDense  = "coreai.lut_to_dense"                           // (indices, lut, axis si16[])
	OpCreateToken = "coreai.create_token"                           // () -> token
	OpReadHandle  = "coreai.read_handle"                            // (handle, token) -> (tensor, token)
	OpWriteHandle = "coreai.write_handle"                           // (handle, value, token) -> token
	OpInvoke      = "coreai.invoke"                                 // (args...) callee=@name
	OpWhile       = "coreai.while"                                  // never emitted: does not lower on device (docs/constraints.md, constraint 1)
)

// SliceEnd is the end index meaning "to the end of the dimension".
const SliceEnd = 2147483647

// opSpec describes an op's arity and how its result types follow from its operands.
type opSpec struct {
	operands int // exact count; -1 = variadic
	infer    func(c *inferCtx) ([]Type, error)
}

// inferCtx gives an inference rule its operand types and the values of constant operands.
type inferCtx struct {
	op  *Op
	mod *Module
}

func (c *inferCtx) t(i int) Type { return c.op.Operands[i].Type }

// ints returns the values of operand i when it is an inline integer constant.
func (c *inferCtx) ints(i int) ([]int64, bool) { return ConstInts(c.op.Operands[i]) }

// ConstInts returns the integer values of v when v is defined by a dense integer constant.
func ConstInts(v *Value) ([]int64, bool) {
	if v.Def == nil || v.Def.Name != OpConstant {
		return nil, false
	}
	d, ok := v.Def.Attrs["value"].(DenseAttr)
	if !ok || d.Type.DType.IsFloat() {
		return nil, false
	}
	return d.Ints(), true
}

func same(c *inferCtx) ([]Type, error) { return []Type{c.t(0)}, nil }

func floatUnary(c *inferCtx) ([]Type, error) {
	if !c.t(0).DType.IsFloat() {
		return nil, fmt.Errorf("operand is %s, want a float tensor", c.t(0))
	}
	return same(c)
}

// broadcastShapes aligns shapes on the right (numpy rules); a dynamic dim is unknown.
func broadcastShapes(a, b []int64) ([]int64, error) {
	n := max(len(a), len(b))
	out := make([]int64, n)
	for i := 0; i < n; i++ {
		x, y := int64(1), int64(1)
		if j := len(a) - n + i; j >= 0 {
			x = a[j]
		}
		if j := len(b) - n + i; j >= 0 {
			y = b[j]
		}
		switch {
		case x == y:
			out[i] = x
		case x == 1:
			out[i] = y
		case y == 1:
			out[i] = x
		case x == Dyn:
			out[i] = y
		case y == Dyn:
			out[i] = x
		default:
			return nil, fmt.Errorf("shapes %v and %v do not broadcast", a, b)
		}
	}
	return out, nil
}

func binaryOp(c *inferCtx) ([]Type, error) {
	a, b := c.t(0), c.t(1)
	if a.DType != b.DType {
		return nil, fmt.Errorf("operand dtypes %s and %s differ", a.DType, b.DType)
	}
	s, err := broadcastShapes(a.Shape, b.Shape)
	if err != nil {
		return nil, err
	}
	return []Type{Tensor(a.DType, s...)}, nil
}

func matmul(c *inferCtx) ([]Type, error) {
	a, b := c.t(0), c.t(1)
	if a.DType != b.DType {
		return nil, fmt.Errorf("operand dtypes %s and %s differ", a.DType, b.DType)
	}
	if a.Rank() < 2 || b.Rank() < 2 {
		return nil, fmt.Errorf("operands %s and %s: rank < 2", a, b)
	}
	k1, k2 := a.Shape[a.Rank()-1], b.Shape[b.Rank()-2]
	if k1 != k2 && k1 != Dyn && k2 != Dyn {
		return nil, fmt.Errorf("contraction dims differ: %s x %s", a, b)
	}
	batch, err := broadcastShapes(a.Shape[:a.Rank()-2], b.Shape[:b.Rank()-2])
	if err != nil {
		return nil, err
	}
	return []Type{Tensor(a.DType, append(batch, a.Shape[a.Rank()-2], b.Shape[b.Rank()-1])...)}, nil
}

// NormAxis maps a possibly negative axis into [0, rank).
func NormAxis(ax int64, rank int) (int, error) {
	if ax < 0 {
		ax += int64(rank)
	}
	if ax < 0 || ax >= int64(rank) {
		return 0, fmt.Errorf("axis %d out of range for rank %d", ax, rank)
	}
	return int(ax), nil
}

func needConst(c *inferCtx, i int, what string) ([]int64, error) {
	v, ok := c.ints(i)
	if !ok {
		return nil, fmt.Errorf("%s (operand %d) must be an integer constant", what, i)
	}
	return v, nil
}

func transpose(c *inferCtx) ([]Type, error) {
	x := c.t(0)
	perm, err := needConst(c, 1, "perm")
	if err != nil {
		return nil, err
	}
	if len(perm) != x.Rank() {
		return nil, fmt.Errorf("perm %v for rank %d", perm, x.Rank())
	}
	seen := make([]bool, len(perm))
	out := make([]int64, len(perm))
	for i, p := range perm {
		if p < 0 || int(p) >= len(perm) || seen[p] {
			return nil, fmt.Errorf("perm %v is not a permutation", perm)
		}
		seen[p] = true
		out[i] = x.Shape[p]
	}
	return []Type{Tensor(x.DType, out...)}, nil
}

func reshape(c *inferCtx) ([]Type, error) {
	x, st := c.t(0), c.t(1)
	if st.Rank() != 1 || st.Shape[0] == Dyn {
		return nil, fmt.Errorf("shape operand %s must be a 1-D tensor of static length", st)
	}
	shape, ok := c.ints(1)
	if !ok {
		out := make([]int64, st.Shape[0])
		for i := range out {
			out[i] = Dyn
		}
		return []Type{Tensor(x.DType, out...)}, nil
	}
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return nil, fmt.Errorf("shape %v has a negative dim", shape)
		}
		n *= d
	}
	if m := x.NumElements(); m >= 0 && m != n {
		return nil, fmt.Errorf("reshape of %s (%d elements) to %v (%d)", x, m, shape, n)
	}
	return []Type{Tensor(x.DType, shape...)}, nil
}

func expandDims(c *inferCtx) ([]Type, error) {
	x := c.t(0)
	axes, err := needConst(c, 1, "axes")
	if err != nil {
		return nil, err
	}
	rank := x.Rank() + len(axes)
	ins := map[int]bool{}
	for _, a := range axes {
		ax, err := NormAxis(a, rank)
		if err != nil {
			return nil, err
		}
		ins[ax] = true
	}
	out := make([]int64, 0, rank)
	j := 0
	for i := 0; i < rank; i++ {
		if ins[i] {
			out = append(out, 1)
		} else {
			out = append(out, x.Shape[j])
			j++
		}
	}
	return []Type{Tensor(x.DType, out...)}, nil
}

func shrinkDims(c *inferCtx) ([]Type, error) {
	x := c.t(0)
	axes, err := needConst(c, 1, "axes")
	if err != nil {
		return nil, err
	}
	drop := map[int]bool{}
	for _, a := range axes {
		ax, err := NormAxis(a, x.Rank())
		if err != nil {
			return nil, err
		}
		if x.Shape[ax] != 1 && x.Shape[ax] != Dyn {
			return nil, fmt.Errorf("shrink_dims axis %d of %s is not 1", ax, x)
		}
		drop[ax] = true
	}
	var out []int64
	for i, d := range x.Shape {
		if !drop[i] {
			out = append(out, d)
		}
	}
	return []Type{Tensor(x.DType, out...)}, nil
}

func concat(c *inferCtx) ([]Type, error) {
	if len(c.op.Operands) < 2 {
		return nil, fmt.Errorf("concat needs an axis and at least one input")
	}
	axv, err := needConst(c, 0, "axis")
	if err != nil {
		return nil, err
	}
	first := c.t(1)
	ax, err := NormAxis(axv[0], first.Rank())
	if err != nil {
		return nil, err
	}
	out := append([]int64{}, first.Shape...)
	for i := 2; i < len(c.op.Operands); i++ {
		t := c.t(i)
		if t.DType != first.DType || t.Rank() != first.Rank() {
			return nil, fmt.Errorf("concat input %s differs from %s", t, first)
		}
		for d := range out {
			switch {
			case d == ax:
				if out[d] == Dyn || t.Shape[d] == Dyn {
					out[d] = Dyn
				} else {
					out[d] += t.Shape[d]
				}
			case out[d] == Dyn:
				out[d] = t.Shape[d]
			case t.Shape[d] != Dyn && t.Shape[d] != out[d]:
				return nil, fmt.Errorf("concat inputs %s and %s differ off the axis", first, t)
			}
		}
	}
	return []Type{Tensor(first.DType, out...)}, nil
}

func sliceOp(c *inferCtx) ([]Type, error) {
	x := c.t(0)
	for i := 1; i <= 3; i++ {
		if t := c.t(i); t.Rank() != 1 || t.Shape[0] != int64(x.Rank()) || (t.DType != SI32) {
			return nil, fmt.Errorf("begin/end/strides operand %s must be si32[%d]", t, x.Rank())
		}
	}
	out := make([]int64, x.Rank())
	begin, ok1 := c.ints(1)
	end, ok2 := c.ints(2)
	strides, ok3 := c.ints(3)
	for d := range out {
		out[d] = Dyn
		if !ok1 || !ok2 || !ok3 || x.Shape[d] == Dyn && end[d] == SliceEnd {
			continue
		}
		if strides[d] != 1 {
			return nil, fmt.Errorf("stride %d on axis %d: only unit strides are used", strides[d], d)
		}
		e := end[d]
		if e == SliceEnd {
			e = x.Shape[d]
		}
		if begin[d] < 0 || e < begin[d] || (x.Shape[d] != Dyn && e > x.Shape[d]) {
			return nil, fmt.Errorf("slice [%d, %d) out of range on axis %d of %s", begin[d], e, d, x)
		}
		out[d] = e - begin[d]
	}
	return []Type{Tensor(x.DType, out...)}, nil
}

func sliceUpdate(c *inferCtx) ([]Type, error) {
	x, u := c.t(0), c.t(1)
	if u.DType != x.DType || u.Rank() != x.Rank() {
		return nil, fmt.Errorf("update %s does not fit %s", u, x)
	}
	for i := 2; i <= 4; i++ {
		if t := c.t(i); t.Rank() != 1 || t.Shape[0] != int64(x.Rank()) || t.DType != SI32 {
			return nil, fmt.Errorf("begin/end/strides operand %s must be si32[%d]", t, x.Rank())
		}
	}
	return []Type{x}, nil
}

func gatherND(c *inferCtx) ([]Type, error) {
	tab, idx := c.t(0), c.t(1)
	if idx.DType != SI32 || idx.Rank() < 1 {
		return nil, fmt.Errorf("indices %s must be si32 with a trailing index dim", idx)
	}
	k := idx.Shape[idx.Rank()-1]
	if k == Dyn || k < 1 || int(k) > tab.Rank() {
		return nil, fmt.Errorf("index depth %d for table %s", k, tab)
	}
	out := append(append([]int64{}, idx.Shape[:idx.Rank()-1]...), tab.Shape[k:]...)
	return []Type{Tensor(tab.DType, out...)}, nil
}

func axisOp(c *inferCtx) (int, error) {
	v, err := needConst(c, 1, "axis")
	if err != nil {
		return 0, err
	}
	if c.t(1).Rank() != 0 || c.t(1).DType != SI32 {
		return 0, fmt.Errorf("axis operand %s must be a si32 scalar", c.t(1))
	}
	return NormAxis(v[0], c.t(0).Rank())
}

func softmax(c *inferCtx) ([]Type, error) {
	if _, err := axisOp(c); err != nil {
		return nil, err
	}
	return floatUnary(c)
}

func reduce(c *inferCtx) ([]Type, error) {
	x := c.t(0)
	axes, err := needConst(c, 1, "axes")
	if err != nil {
		return nil, err
	}
	out := append([]int64{}, x.Shape...)
	for _, a := range axes {
		ax, err := NormAxis(a, x.Rank())
		if err != nil {
			return nil, err
		}
		out[ax] = 1
	}
	return []Type{Tensor(x.DType, out...)}, nil
}

func argmax(c *inferCtx) ([]Type, error) {
	ax, err := axisOp(c)
	if err != nil {
		return nil, err
	}
	out := append([]int64{}, c.t(0).Shape...)
	out[ax] = 1
	return []Type{Tensor(UI32, out...)}, nil
}

func getShape(c *inferCtx) ([]Type, error) {
	return []Type{Tensor(UI32, int64(c.t(0).Rank()))}, nil
}

func blockwise(c *inferCtx) ([]Type, error) {
	data, scale, off1, off2 := c.t(0), c.t(1), c.t(2), c.t(3)
	if data.DType.IsFloat() || !scale.DType.IsFloat() {
		return nil, fmt.Errorf("data %s must be integer and scale %s float", data, scale)
	}
	if scale.Rank() != data.Rank() {
		return nil, fmt.Errorf("scale %s must have the rank of data %s", scale, data)
	}
	for i := range data.Shape {
		if scale.Shape[i] <= 0 || data.Shape[i]%scale.Shape[i] != 0 {
			return nil, fmt.Errorf("scale %s does not tile data %s in blocks", scale, data)
		}
	}
	if !off1.Equal(Tensor(data.DType, scale.Shape...)) || !off2.Equal(Tensor(scale.DType, scale.Shape...)) {
		return nil, fmt.Errorf("offsets %s, %s must match the scale's shape with the data's and the scale's dtypes", off1, off2)
	}
	return []Type{Tensor(scale.DType, data.Shape...)}, nil
}

func lutToDense(c *inferCtx) ([]Type, error) {
	idx, lut, axis := c.t(0), c.t(1), c.t(2)
	if idx.DType != UI8 && idx.DType != UI4 {
		return nil, fmt.Errorf("indices %s must be ui8 or ui4", idx)
	}
	if lut.Rank() != idx.Rank()+2 || !lut.DType.IsFloat() {
		return nil, fmt.Errorf("lut %s must be a float tensor of rank indices+2 (%d)", lut, idx.Rank()+2)
	}
	if lut.Shape[lut.Rank()-2] != int64(1)<<idx.DType.Bits() {
		return nil, fmt.Errorf("lut %s must have %d entries for %s indices", lut, 1<<idx.DType.Bits(), idx.DType)
	}
	for i := 0; i < idx.Rank(); i++ {
		if lut.Shape[i] <= 0 || idx.Shape[i]%lut.Shape[i] != 0 {
			return nil, fmt.Errorf("lut groups %s do not tile indices %s", lut, idx)
		}
	}
	if axis.Rank() != 0 || axis.DType != SI16 {
		return nil, fmt.Errorf("axis %s must be a si16 scalar", axis)
	}
	return []Type{Tensor(lut.DType, idx.Shape...)}, nil
}

func readHandle(c *inferCtx) ([]Type, error) {
	h, tok := c.t(0), c.t(1)
	if h.Kind != HandleKind || tok.Kind != TokenKind {
		return nil, fmt.Errorf("operands %s, %s must be a handle and a token", h, tok)
	}
	return []Type{h.TensorType(), TokenType()}, nil
}

func writeHandle(c *inferCtx) ([]Type, error) {
	h, v, tok := c.t(0), c.t(1), c.t(2)
	if h.Kind != HandleKind || tok.Kind != TokenKind {
		return nil, fmt.Errorf("operands %s, %s must be a handle and a token", h, tok)
	}
	if !v.Compatible(h.TensorType()) {
		return nil, fmt.Errorf("value %s does not fit state %s", v, h)
	}
	return []Type{TokenType()}, nil
}

func constant(c *inferCtx) ([]Type, error) {
	switch a := c.op.Attrs["value"].(type) {
	case DenseAttr:
		if n := a.Type.NumElements(); n < 0 || (a.Len() != int(n) && !a.Splat()) || len(a.Data) != BytesFor(a.Type.DType, a.Len()) {
			return nil, fmt.Errorf("dense value of %d bytes does not fit %s", len(a.Data), a.Type)
		}
		return []Type{a.Type}, nil
	case ResourceAttr:
		if a.Res == nil {
			return nil, fmt.Errorf("dense_resource without a blob")
		}
		if want := int64(BytesFor(a.Type.DType, int(a.Type.NumElements()))); a.Res.Size != want {
			return nil, fmt.Errorf("resource %s holds %d bytes, %s needs %d", a.Res.Key, a.Res.Size, a.Type, want)
		}
		return []Type{a.Type}, nil
	}
	return nil, fmt.Errorf("constant without a dense or dense_resource value")
}

func invoke(c *inferCtx) ([]Type, error) {
	ref, ok := c.op.Attrs["callee"].(SymbolRefAttr)
	if !ok {
		return nil, fmt.Errorf("invoke without a callee")
	}
	if c.mod == nil {
		return nil, fmt.Errorf("invoke of @%s outside a module", ref.Name)
	}
	f := c.mod.Func(ref.Name)
	if f == nil {
		return nil, fmt.Errorf("invoke of unknown @%s", ref.Name)
	}
	if len(f.Args) != len(c.op.Operands) {
		return nil, fmt.Errorf("invoke of @%s with %d operands, it takes %d", ref.Name, len(c.op.Operands), len(f.Args))
	}
	for i, a := range f.Args {
		if !c.t(i).Compatible(a.Value.Type) {
			return nil, fmt.Errorf("invoke of @%s: operand %d is %s, want %s", ref.Name, i, c.t(i), a.Value.Type)
		}
	}
	var out []Type
	for _, r := range f.Results {
		out = append(out, r.Value.Type)
	}
	return out, nil
}

var opSpecs = map[string]opSpec{
	OpConstant:    {0, constant},
	OpExp:         {1, floatUnary},
	OpLog:         {1, floatUnary},
	OpSqrt:        {1, floatUnary},
	OpRsqrt:       {1, floatUnary},
	OpSigmoid:     {1, floatUnary},
	OpSilu:        {1, floatUnary},
	OpSin:         {1, floatUnary},
	OpCos:         {1, floatUnary},
	OpAdd:         {2, binaryOp},
	OpSub:         {2, binaryOp},
	OpMul:         {2, binaryOp},
	OpDiv:         {2, binaryOp},
	OpMax:         {2, binaryOp},
	OpMatmul:      {2, matmul},
	OpTranspose:   {2, transpose},
	OpReshape:     {2, reshape},
	OpExpandDims:  {2, expandDims},
	OpShrinkDims:  {2, shrinkDims},
	OpConcat:      {-1, concat},
	OpSlice:       {4, sliceOp},
	OpSliceUpdate: {5, sliceUpdate},
	OpGatherND:    {2, gatherND},
	OpSoftmax:     {2, softmax},
	OpReduceSum:   {2, reduce},
	OpReduceMean:  {2, reduce},
	OpReduceMax:   {2, reduce},
	OpArgmax:      {2, argmax},
	OpCast:        {1, nil}, // result type is given
	OpGetShape:    {1, getShape},
	OpBlockwise:   {4, blockwise},
	OpLUTToDense:  {3, lutToDense},
	OpCreateToken: {0, func(*inferCtx) ([]Type, error) { return []Type{TokenType()}, nil }},
	OpReadHandle:  {2, readHandle},
	OpWriteHandle: {3, writeHandle},
	OpInvoke:      {-1, invoke},
}

// KnownOps lists the op names qconv emits, sorted.
func KnownOps() []string {
	var names []string
	for n := range opSpecs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// InferTypes computes an op's result types from its operands (and, for invoke, the module).
// For ops whose result type cannot be derived (cast), it returns the op's declared types after
// checking what can be checked.
func InferTypes(op *Op, mod *Module) ([]Type, error) {
	spec, ok := opSpecs[op.Name]
	if !ok {
		return nil, fmt.Errorf("unknown op %s", op.Name)
	}
	if spec.operands >= 0 && len(op.Operands) != spec.operands {
		return nil, fmt.Errorf("%s takes %d operands, has %d", op.Name, spec.operands, len(op.Operands))
	}
	for i, v := range op.Operands {
		if v == nil {
			return nil, fmt.Errorf("%s: operand %d is missing", op.Name, i)
		}
		if v.Type.Kind != TensorKind && op.Name != OpReadHandle && op.Name != OpWriteHandle {
			return nil, fmt.Errorf("%s: operand %d is %s, not a tensor", op.Name, i, v.Type)
		}
	}
	if op.Name == OpCast {
		if len(op.Results) != 1 {
			return nil, fmt.Errorf("cast needs one declared result")
		}
		in, out := op.Operands[0].Type, op.Results[0].Type
		if !Tensor(out.DType, in.Shape...).Compatible(out) {
			return nil, fmt.Errorf("cast from %s to %s changes the shape", in, out)
		}
		return []Type{out}, nil
	}
	ts, err := spec.infer(&inferCtx{op: op, mod: mod})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op.Name, err)
	}
	return ts, nil
}
