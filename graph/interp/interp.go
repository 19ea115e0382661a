package interp

// The CPU interpreter: it runs a lowered function on the exact bytes a bundle holds, so the gate
// judges the numbers the device computes.
//
// Numerics. Float tensors hold float32 values; every op whose result dtype is f16 rounds its
// result to fp16 (round to nearest even, overflow to ±Inf), so an fp16 tensor only ever holds
// fp16-representable values and "rounding where the graph casts" follows from the result types.
// A bf16 result is rounded to bf16 the same way (bf16.go, with the rule in graph/bf16.go).
// Reductions, softmax and matmuls accumulate in float32 and round their result once.
// Transcendentals (exp, log, sigmoid, ...) are evaluated in float64 and rounded to float32 (then
// to fp16 when the result is f16). Integer results wrap to their dtype's width.
//
// Fused weights. A matmul whose right operand is transpose(W, [1, 0]) of a constant weight W, and
// a gather_nd from such a W, never materialise W: W is a kernels.Matrix built once on the
// resource bytes (dense f16/f32, blockwise int8/int4 with fp16 scales, LUT ui8/ui4 with fp16
// tables). The product uses the exactly dequantized weight q·scale (exact in float32) even when
// the graph's dequantized dtype is f16: the device may round the dequantized weight to fp16
// before the product, which this interpreter does not do (a gathered row is rounded, as the
// graph says). Products with such a W therefore differ from the unfused f16 graph by at most
// the fp16 rounding of the weights.

import (
	"fmt"
	"slices"
	"strings"

	"qconv/graph"
)

// Array is a runtime tensor value: float elements in F (an f16 array holds fp16-representable
// values), integer elements (si*/ui*/i1) in I, row-major.
type Array struct {
	DType graph.DType
	Shape []int64
	F     []float32
	I     []int64
}

// NewArray returns a zero-filled array.
func NewArray(dt graph.DType, shape ...int64) *Array {
	a := &Array{DType: dt, Shape: slices.Clone(shape)}
	n := shapeElems(shape)
	if dt.IsFloat() {
		a.F = make([]float32, n)
	} else {
		a.I = make([]int64, n)
	}
	return a
}

// Len is the number of elements the shape describes.
func (a *Array) Len() int { return shapeElems(a.Shape) }

// String is the dtype and shape, e.g. f16[1 1 1024].
func (a *Array) String() string {
	return fmt.Sprintf("%s%v", a.DType, a.Shape)
}

// check reports whether a is a well-formed array of type t (dynamic dims match any size).
func (a *Array) check(t graph.Type) error {
	if a == nil {
		return fmt.Errorf("missing (nil)")
	}
	if a.DType != t.DType || len(a.Shape) != len(t.Shape) {
		return fmt.Errorf("is %s, want %s", a, t.TensorType())
	}
	for i, d := range t.Shape {
		if a.Shape[i] < 0 || (d != graph.Dyn && a.Shape[i] != d) {
			return fmt.Errorf("is %s, want %s", a, t.TensorType())
		}
	}
	n := a.Len()
	if t.DType.IsFloat() && len(a.F) != n || !t.DType.IsFloat() && len(a.I) != n {
		return fmt.Errorf("%s holds %d elements, its shape needs %d", a, max(len(a.F), len(a.I)), n)
	}
	return nil
}

func shapeElems(shape []int64) int {
	n := 1
	for _, d := range shape {
		n *= int(d)
	}
	return n
}

// Interpreter runs one function of a module. It plans once (fused weight products, constants
// folded, buffers reused across calls, slice_update in place where nothing else reads the old
// value) and is not safe for concurrent use.
//
// The fp16 rounding rule and the fused-weight numerics are described at the top of interp.go.
type Interpreter struct {
	plan     *interpPlan
	frame    *interpFrame
	out      map[string]*Array
	produced map[*Array]bool // state arrays this interpreter handed to the caller's map
	free     [][]float32     // buffers of old states, reused for new values
}

// interpOptions adjusts planning (tests use it to compare fused and unfused products).
type interpOptions struct {
	noFuse bool
	f16Acc bool // fp16 matmuls accumulate in fp16 (numerics.go)
}

// New plans function fn of m.
func New(m *graph.Module, fn string) (*Interpreter, error) {
	return newInterpreter(m, fn, interpOptions{})
}

func newInterpreter(m *graph.Module, fn string, opt interpOptions) (*Interpreter, error) {
	f := m.Func(fn)
	if f == nil {
		return nil, fmt.Errorf("interpreter: no function @%s in the module", fn)
	}
	pl := &planner{mod: m, opt: opt, plans: map[*graph.Func]*interpPlan{}, weights: map[*graph.Value]*fusedWeight{},
		resBytes: map[*graph.Resource][]byte{}, busy: map[*graph.Func]bool{}}
	p, err := pl.planFunc(f)
	if err != nil {
		return nil, err
	}
	it := &Interpreter{plan: p, out: map[string]*Array{}, produced: map[*Array]bool{}}
	it.frame = p.newFrame(it)
	return it, nil
}

// Run executes one call of the function. inputs holds the tensor arguments by coreai.name;
// states holds the buffers behind the !coreai.handle arguments by name: read_handle yields the
// current array and write_handle replaces it in the map, so the caller keeps the map across
// calls. Run returns the non-token results by name, in a map the next Run reuses.
//
// Ownership: the returned arrays and the arrays Run puts into states alias the interpreter's
// buffers; they stay valid until the next Run, which may reuse them (clone what you keep).
// State arrays are updated in place when the graph allows it, including arrays the caller put
// into the map, so give each sequence its own state arrays and never the same array to two
// states. Input arrays are never modified. f16 inputs and states must hold fp16-representable
// values. On error the states may be partly updated.
func (it *Interpreter) Run(inputs map[string]*Array, states map[string]*Array) (map[string]*Array, error) {
	p, fr := it.plan, it.frame
	f := p.fn
	pre := fr.preStates[:0]
	for i, a := range f.Args {
		switch a.Value.Type.Kind {
		case graph.HandleKind:
			t, ok := states[a.Name]
			if !ok || t == nil {
				return nil, fmt.Errorf("@%s: state %q is missing", f.Name, a.Name)
			}
			if err := t.check(a.Value.Type); err != nil {
				return nil, fmt.Errorf("@%s: state %q %v", f.Name, a.Name, err)
			}
			pre = append(pre, t)
		case graph.TensorKind:
			t, ok := inputs[a.Name]
			if !ok || t == nil {
				return nil, fmt.Errorf("@%s: input %q is missing", f.Name, a.Name)
			}
			if err := t.check(a.Value.Type); err != nil {
				return nil, fmt.Errorf("@%s: input %q %v", f.Name, a.Name, err)
			}
			fr.vals[i] = t
		default:
			return nil, fmt.Errorf("@%s: argument %q of type %s cannot be passed", f.Name, a.Name, a.Value.Type)
		}
	}
	fr.preStates = pre
	for name := range inputs {
		if a := f.Arg(name); a == nil || a.Value.Type.Kind != graph.TensorKind {
			return nil, fmt.Errorf("@%s: unknown input %q", f.Name, name)
		}
	}
	fr.states = states
	err := fr.run()
	fr.states = nil
	if err != nil {
		return nil, err
	}
	it.finishStates(states)
	clear(it.out)
	for _, r := range f.Results {
		if r.Value.Type.Kind == graph.TokenKind {
			continue
		}
		it.out[r.Name] = fr.vals[p.index[r.Value]]
	}
	return it.out, nil
}

// finishStates makes the arrays written into the state map independent of the buffers the next
// Run overwrites: a written value whose buffer is an op result's is handed over (that result
// gets a new buffer next time), one that aliases an input, a constant or another state is
// copied. Old state arrays this interpreter produced become spare buffers.
func (it *Interpreter) finishStates(states map[string]*Array) {
	p, fr := it.plan, it.frame
	handed := map[int]bool{}
	hi := 0
	for _, h := range p.handles {
		old := fr.preStates[hi]
		hi++
		if h.lastWrite < 0 {
			continue
		}
		name := p.fn.Args[h.arg].Name
		cur := states[name]
		r := p.root[h.lastWrite]
		switch {
		case !p.exact[h.lastWrite]:
			cur = it.copyArray(cur)
		case r == h.arg:
			// updated in place: same storage as the array the caller gave
			if cur != old {
				cur = it.header(cur)
			}
		case p.kind[r] == vSlot && !handed[r]:
			handed[r] = true
			cur = it.header(cur)
			fr.slots[r] = nil
		default:
			cur = it.copyArray(cur)
		}
		states[name] = cur
	}
	// Forget old state arrays we produced that the map no longer holds; their storage becomes
	// a spare buffer unless the new state, a returned value or a copy still uses it.
	hi = 0
	for _, h := range p.handles {
		old := fr.preStates[hi]
		hi++
		if h.lastWrite < 0 || states[p.fn.Args[h.arg].Name] == old || !it.produced[old] {
			continue
		}
		delete(it.produced, old)
		if p.root[h.lastWrite] != h.arg && !p.outRoots[h.arg] && old.F != nil && len(it.free) < 16 {
			it.free = append(it.free, old.F[:0])
		}
	}
}

func (it *Interpreter) header(t *Array) *Array {
	h := &Array{DType: t.DType, Shape: slices.Clone(t.Shape), F: t.F, I: t.I}
	it.produced[h] = true
	return h
}

func (it *Interpreter) copyArray(t *Array) *Array {
	h := &Array{DType: t.DType, Shape: slices.Clone(t.Shape)}
	if t.DType.IsFloat() {
		h.F = append(it.takeFree(len(t.F)), t.F...)
	} else {
		h.I = slices.Clone(t.I)
	}
	it.produced[h] = true
	return h
}

// takeFree returns an empty spare buffer with capacity for n floats, or nil.
func (it *Interpreter) takeFree(n int) []float32 {
	for i, b := range it.free {
		if cap(b) >= n {
			it.free = slices.Delete(it.free, i, i+1)
			return b[:0]
		}
	}
	return nil
}

// ---- planning

// valKind says where a value's elements live.
type valKind uint8

const (
	vDead    valKind = iota // not needed by any result or state write
	vInput                  // tensor argument: the caller's array, read-only
	vHandle                 // state handle argument (the root of the state's initial storage)
	vToken                  // ordering token: no data
	vConst                  // constant or folded at plan time: immutable
	vSlot                   // op result in its own buffer
	vView                   // reshape/expand_dims/shrink_dims/slice: operand 0's buffer (a slice may copy)
	vRead                   // read_handle: the state map's array
	vInPlace                // slice_update written into operand 0's buffer
)

type interpPlan struct {
	fn       *graph.Func
	index    map[*graph.Value]int
	kind     []valKind
	root     []int  // value owning the storage a value's elements live in
	exact    []bool // the elements are exactly the root's storage (a slice may be a copy)
	consts   []*Array
	steps    []*interpStep
	handles  []handleInfo
	outRoots map[int]bool // roots of returned values
	buf      []int        // shared buffer of a value (-1: its own), see planBuffers
	nbuf     int
}

type handleInfo struct {
	arg       int // value index of the handle argument
	lastWrite int // value index of the last value written (-1: never written)
}

// interpStep is one executed op.
type interpStep struct {
	op      *graph.Op
	pos     int // index in the function body, for messages
	in, out []int
	exec    opExec
	w       *fusedWeight   // fused matmul / gather
	transB  bool           // matmul reads operand 1 untransposed: it was transpose(b, swap last two)
	inPlace bool           // slice_update into operand 0's buffer
	callee  *interpPlan    // invoke
	comp    *compositeStep // invoke of a composite run by its declaration (composite_apple.go)
	handle  string         // read/write_handle: the state's name
}

type opExec func(fr *interpFrame, st *interpStep) error

// transposedLastTwo returns x when v = transpose(x, perm) with perm swapping the last two axes
// and keeping the others in place; else nil.
func transposedLastTwo(v *graph.Value) *graph.Value {
	if v.Def == nil || v.Def.Name != graph.OpTranspose {
		return nil
	}
	perm, ok := graph.ConstInts(v.Def.Operands[1])
	r := len(perm)
	if !ok || r < 2 || perm[r-1] != int64(r-2) || perm[r-2] != int64(r-1) {
		return nil
	}
	for i := 0; i < r-2; i++ {
		if perm[i] != int64(i) {
			return nil
		}
	}
	return v.Def.Operands[0]
}

func (st *interpStep) errorf(format string, args ...any) error {
	return fmt.Errorf("op #%d %s: %s", st.pos, st.op.Name, fmt.Sprintf(format, args...))
}

type planner struct {
	mod      *graph.Module
	opt      interpOptions
	plans    map[*graph.Func]*interpPlan
	busy     map[*graph.Func]bool
	weights  map[*graph.Value]*fusedWeight
	resBytes map[*graph.Resource][]byte
}

var opExecs map[string]opExec

func init() {
	opExecs = map[string]opExec{
		graph.OpConstant: nil, graph.OpCreateToken: execNop,
		graph.OpExp: execUnary, graph.OpLog: execUnary, graph.OpSqrt: execUnary, graph.OpRsqrt: execUnary, graph.OpSigmoid: execUnary,
		graph.OpSilu: execUnary, graph.OpSin: execUnary, graph.OpCos: execUnary,
		graph.OpAdd: execBinary, graph.OpSub: execBinary, graph.OpMul: execBinary, graph.OpDiv: execBinary, graph.OpMax: execBinary,
		graph.OpMatmul: execMatmul, graph.OpTranspose: execTranspose, graph.OpReshape: execReshape,
		graph.OpExpandDims: execExpandDims, graph.OpShrinkDims: execShrinkDims, graph.OpConcat: execConcat,
		graph.OpSlice: execSlice, graph.OpSliceUpdate: execSliceUpdate, graph.OpGatherND: execGather,
		graph.OpSoftmax: execSoftmax, graph.OpReduceSum: execReduce, graph.OpReduceMean: execReduce, graph.OpReduceMax: execReduce,
		graph.OpArgmax: execArgmax, graph.OpCast: execCast, graph.OpGetShape: execGetShape, graph.OpBlockwise: execBlockwise,
		graph.OpLUTToDense: execLUTToDense, graph.OpReadHandle: execReadHandle, graph.OpWriteHandle: execWriteHandle,
		graph.OpInvoke: execInvoke,
	}
}

func isView(name string) bool {
	return name == graph.OpReshape || name == graph.OpExpandDims || name == graph.OpShrinkDims
}

func (pl *planner) planFunc(f *graph.Func) (*interpPlan, error) {
	if p, ok := pl.plans[f]; ok {
		return p, nil
	}
	if pl.busy[f] {
		return nil, fmt.Errorf("interpreter: @%s invokes itself", f.Name)
	}
	if f.Opaque != "" {
		return nil, fmt.Errorf("interpreter: @%s cannot run: %s, and qconv does not run its composite %q by declaration", f.Name, f.Opaque, graph.CompositeName(f.Composite))
	}
	pl.busy[f] = true
	defer delete(pl.busy, f)

	p := &interpPlan{fn: f, index: map[*graph.Value]int{}, outRoots: map[int]bool{}}
	n := 0
	add := func(v *graph.Value) {
		p.index[v] = n
		n++
	}
	for _, a := range f.Args {
		add(a.Value)
	}
	for _, op := range f.Body {
		for _, r := range op.Results {
			add(r)
		}
	}
	p.kind = make([]valKind, n)
	p.root = make([]int, n)
	p.exact = make([]bool, n)
	p.consts = make([]*Array, n)
	for i := range p.root {
		p.root[i], p.exact[i] = i, true
	}
	fail := func(i int, op *graph.Op, format string, args ...any) error {
		return fmt.Errorf("interpreter: @%s op #%d %s: %s", f.Name, i, op.Name, fmt.Sprintf(format, args...))
	}

	// Every op must be known, whether or not it is needed.
	steps := make([]*interpStep, len(f.Body))
	for i, op := range f.Body {
		ex, ok := opExecs[op.Name]
		if !ok {
			return nil, fail(i, op, "op is not implemented by the interpreter")
		}
		st := &interpStep{op: op, pos: i, exec: ex}
		for _, v := range op.Operands {
			j, ok := p.index[v]
			if !ok || v == nil {
				return nil, fail(i, op, "operand is not defined in @%s", f.Name)
			}
			st.in = append(st.in, j)
		}
		for _, r := range op.Results {
			st.out = append(st.out, p.index[r])
		}
		if err := pl.checkStep(f, st); err != nil {
			return nil, fail(i, op, "%v", err)
		}
		steps[i] = st
	}
	for _, r := range f.Results {
		if _, ok := p.index[r.Value]; !ok {
			return nil, fmt.Errorf("interpreter: @%s result %q is not defined in the function", f.Name, r.Name)
		}
	}

	// Fused weight products, and matmuls by a transposed activation (attention's q·kᵀ) that read
	// the untransposed operand instead of materialising the transpose.
	if !pl.opt.noFuse {
		for _, st := range steps {
			if err := pl.fuse(st); err != nil {
				return nil, fmt.Errorf("interpreter: @%s op #%d %s: %w", f.Name, st.pos, st.op.Name, err)
			}
			if st.op.Name == graph.OpMatmul && st.w == nil {
				if src := transposedLastTwo(st.op.Operands[1]); src != nil {
					st.in[1], st.transB = p.index[src], true
				}
			}
		}
	}

	if pl.opt.f16Acc {
		markF16Accumulate(steps)
	}

	// Needed values: backwards from the results and the state writes.
	needed := make([]bool, n)
	for _, r := range f.Results {
		needed[p.index[r.Value]] = true
	}
	live := make([]bool, len(steps))
	for i := len(steps) - 1; i >= 0; i-- {
		st := steps[i]
		use := st.op.Name == graph.OpWriteHandle
		for _, o := range st.out {
			use = use || needed[o]
		}
		if !use {
			continue
		}
		live[i] = true
		for k, j := range st.in {
			if st.w != nil && k != activationOperand(st.op.Name) {
				continue
			}
			needed[j] = true
		}
	}

	// Kinds, constants and folding, in program order.
	for i, a := range f.Args {
		switch a.Value.Type.Kind {
		case graph.HandleKind:
			p.kind[i] = vHandle
			p.handles = append(p.handles, handleInfo{arg: i, lastWrite: -1})
		case graph.TokenKind:
			p.kind[i] = vToken
		default:
			p.kind[i] = vInput
		}
	}
	fold := p.newFrame(nil) // runs foldable ops once; holds every constant so far
	for i, st := range steps {
		if !live[i] {
			continue
		}
		op := st.op
		for k, o := range st.out {
			if op.Results[k].Type.Kind == graph.TokenKind {
				p.kind[o] = vToken
			}
		}
		switch {
		case op.Name == graph.OpConstant:
			a, err := pl.constArray(op)
			if err != nil {
				return nil, fail(i, op, "%v", err)
			}
			p.kind[st.out[0]], p.consts[st.out[0]] = vConst, a
			fold.vals[st.out[0]] = a
			continue
		case pl.foldable(p, st):
			if err := st.exec(fold, st); err != nil {
				return nil, fmt.Errorf("interpreter: @%s: folding constants: %w", f.Name, err)
			}
			o := st.out[0]
			if err := fold.vals[o].check(op.Results[0].Type); err != nil {
				return nil, fmt.Errorf("interpreter: @%s: folding constants: %w", f.Name, st.errorf("result %v", err))
			}
			p.kind[o], p.consts[o] = vConst, fold.vals[o]
			fold.slots[o] = nil
			continue
		}
		p.steps = append(p.steps, st)
		switch {
		case op.Name == graph.OpInvoke:
			callee := pl.mod.Func(op.Attrs["callee"].(graph.SymbolRefAttr).Name)
			decl, err := planComposite(callee, st) // run by its declaration (composite_apple.go)
			if err != nil {
				return nil, fail(i, op, "%v", err)
			}
			cp, err := pl.planFunc(callee)
			if err != nil && decl == nil {
				return nil, err
			}
			// A declared composite whose body the interpreter cannot run (Apple's bodies use ops
			// qconv does not implement) runs by its declaration alone.
			st.callee = cp
			if decl != nil {
				st.exec = decl
			}
			for _, o := range st.out {
				p.kind[o] = vSlot
			}
		case isView(op.Name) || op.Name == graph.OpSlice:
			// A slice is a view when its region is contiguous at run time, else a copy: count
			// it as aliasing its operand, but not as exactly sharing its storage.
			o := st.out[0]
			p.kind[o], p.root[o] = vView, p.root[st.in[0]]
			p.exact[o] = p.exact[st.in[0]] && op.Name != graph.OpSlice
		case op.Name == graph.OpReadHandle || op.Name == graph.OpWriteHandle:
			h := st.in[0]
			st.handle = f.Args[h].Name
			hi := slices.IndexFunc(p.handles, func(x handleInfo) bool { return x.arg == h })
			if op.Name == graph.OpReadHandle {
				o := st.out[0]
				p.kind[o] = vRead
				if w := p.handles[hi].lastWrite; w >= 0 {
					p.root[o], p.exact[o] = p.root[w], p.exact[w]
				} else {
					p.root[o] = h
				}
			} else {
				p.handles[hi].lastWrite = st.in[1]
			}
		case op.Name == graph.OpCreateToken:
		default:
			for _, o := range st.out {
				p.kind[o] = vSlot
			}
		}
	}
	u := p.usage()
	p.planInPlace(u)
	p.planBuffers(u)
	pl.plans[f] = p
	return p, nil
}

// activationOperand is the operand a fused product still reads at run time.
func activationOperand(name string) int {
	if name == graph.OpGatherND {
		return 1
	}
	return 0
}

// checkStep checks what the executors rely on beyond the type rules.
func (pl *planner) checkStep(f *graph.Func, st *interpStep) error {
	op := st.op
	switch op.Name {
	case graph.OpInvoke:
		ref, ok := op.Attrs["callee"].(graph.SymbolRefAttr)
		if !ok {
			return fmt.Errorf("invoke without a callee")
		}
		callee := pl.mod.Func(ref.Name)
		if callee == nil {
			return fmt.Errorf("invoke of unknown @%s", ref.Name)
		}
		if len(callee.Args) != len(op.Operands) || len(callee.Results) != len(op.Results) {
			return fmt.Errorf("invoke of @%s with %d operands and %d results, it takes %d and returns %d",
				ref.Name, len(op.Operands), len(op.Results), len(callee.Args), len(callee.Results))
		}
		for _, a := range callee.Args {
			if a.Value.Type.Kind != graph.TensorKind {
				return fmt.Errorf("invoke of @%s: argument %q is %s; the interpreter passes tensors only", ref.Name, a.Name, a.Value.Type)
			}
		}
		for _, r := range callee.Results {
			if r.Value.Type.Kind != graph.TensorKind {
				return fmt.Errorf("invoke of @%s: result %q is %s; the interpreter returns tensors only", ref.Name, r.Name, r.Value.Type)
			}
		}
	case graph.OpReadHandle, graph.OpWriteHandle:
		h := op.Operands[0]
		if h.Def != nil || h.Type.Kind != graph.HandleKind || st.in[0] >= len(f.Args) {
			return fmt.Errorf("handle operand must be a state argument of @%s", f.Name)
		}
	case graph.OpConstant:
		if len(op.Results) != 1 {
			return fmt.Errorf("constant with %d results", len(op.Results))
		}
	}
	if op.Name != graph.OpInvoke && op.Name != graph.OpReadHandle && len(op.Results) != 1 {
		return fmt.Errorf("%d results, want 1", len(op.Results))
	}
	for i, v := range op.Operands {
		if v.Type.Kind != graph.TensorKind && op.Name != graph.OpReadHandle && op.Name != graph.OpWriteHandle {
			return fmt.Errorf("operand %d is %s, not a tensor", i, v.Type)
		}
	}
	return nil
}

// foldable: a pure op whose operands are all constants runs once, at plan time.
func (pl *planner) foldable(p *interpPlan, st *interpStep) bool {
	switch st.op.Name {
	case graph.OpReadHandle, graph.OpWriteHandle, graph.OpCreateToken, graph.OpInvoke:
		return false
	}
	if st.w != nil || len(st.in) == 0 {
		return false
	}
	for _, j := range st.in {
		if p.kind[j] != vConst {
			return false
		}
	}
	return true
}

// constVals fills vals with the constants known so far.
func (p *interpPlan) constVals(vals []*Array) []*Array {
	for i, c := range p.consts {
		if c != nil {
			vals[i] = c
		}
	}
	return vals
}

// usage is where each value is used, for the in-place and buffer-sharing decisions.
type usage struct {
	stepOf  []int   // defining step (-1 for arguments and constants)
	lastUse []int   // last step reading the value, write_handle aside (-1: none)
	writes  [][]int // steps writing the value into a state
	isOut   []bool  // returned by the function
	hAccess map[int][]handleAccess
}

type handleAccess struct{ pos, write int } // write: 0 read_handle, 1 write_handle

func (p *interpPlan) usage() *usage {
	nv := len(p.kind)
	u := &usage{stepOf: make([]int, nv), lastUse: make([]int, nv), writes: make([][]int, nv), isOut: make([]bool, nv),
		hAccess: map[int][]handleAccess{}}
	for i := range nv {
		u.stepOf[i], u.lastUse[i] = -1, -1
	}
	for si, st := range p.steps {
		for _, o := range st.out {
			u.stepOf[o] = si
		}
		for k, j := range st.in {
			if st.op.Name == graph.OpWriteHandle && k == 1 {
				u.writes[j] = append(u.writes[j], si)
				continue
			}
			if (st.op.Name == graph.OpWriteHandle || st.op.Name == graph.OpReadHandle) && k == 0 {
				continue
			}
			if st.w != nil && k != activationOperand(st.op.Name) {
				continue
			}
			u.lastUse[j] = si
		}
		switch st.op.Name {
		case graph.OpReadHandle:
			u.hAccess[st.in[0]] = append(u.hAccess[st.in[0]], handleAccess{si, 0})
		case graph.OpWriteHandle:
			u.hAccess[st.in[0]] = append(u.hAccess[st.in[0]], handleAccess{si, 1})
		}
	}
	for _, r := range p.fn.Results {
		u.isOut[p.index[r.Value]] = true
	}
	return u
}

// planInPlace decides which slice_updates write into their operand's buffer: only when no value
// sharing that buffer is read afterwards, no result returns it, and no state map keeps it
// without a later write replacing it.
func (p *interpPlan) planInPlace(u *usage) {
	stepOf, lastUse, writes, isOut, hAccess := u.stepOf, u.lastUse, u.writes, u.isOut, u.hAccess
	const never = 1 << 62
	// nextWrite is the first write of handle h after position pos (never if none); readsIn
	// reports a read of h strictly between a and b.
	nextWrite := func(h, pos int) int {
		for _, a := range hAccess[h] {
			if a.write == 1 && a.pos > pos {
				return a.pos
			}
		}
		return never
	}
	readsIn := func(h, a, b int) bool {
		for _, x := range hAccess[h] {
			if x.write == 0 && x.pos > a && x.pos < b {
				return true
			}
		}
		return false
	}
	// holdOK: the map of handle h holds the buffer from position start on; mutating it at si
	// is safe only if a later write replaces it before anyone reads h again.
	holdOK := func(h, start, si int) bool {
		end := nextWrite(h, start)
		if end < si {
			return true
		}
		return end != never && !readsIn(h, si, end)
	}
	members := map[int][]int{}
	for v := range p.kind {
		if p.kind[v] != vDead {
			members[p.root[v]] = append(members[p.root[v]], v)
		}
	}
	for si, st := range p.steps {
		if st.op.Name != graph.OpSliceUpdate {
			continue
		}
		x := st.in[0]
		r := p.root[x]
		ok := (p.kind[r] == vSlot || p.kind[r] == vHandle) && p.exact[x]
		for _, j := range st.in[1:] {
			ok = ok && p.root[j] != r
		}
		if ok && p.kind[r] == vHandle {
			ok = holdOK(r, -1, si)
		}
		for _, u := range members[r] {
			if !ok {
				break
			}
			if stepOf[u] > si {
				continue
			}
			if isOut[u] || lastUse[u] > si {
				ok = false
				break
			}
			for _, w := range writes[u] {
				h := p.steps[w].in[0]
				if w > si || !holdOK(h, w, si) {
					ok = false
					break
				}
			}
		}
		if !ok {
			continue
		}
		o := st.out[0]
		st.inPlace = true
		p.kind[o], p.root[o] = vInPlace, r
		members[r] = append(members[r], o)
		// Values defined later from o (views, reads after a write of o) already carry root o;
		// move them to r.
		for _, u := range members[o] {
			if u != o {
				p.root[u] = r
				members[r] = append(members[r], u)
			}
		}
		delete(members, o)
	}
	// Reads after writes took their roots before the in-place decisions; outRoots too.
	clear(p.outRoots)
	for _, rr := range p.fn.Results {
		p.outRoots[p.root[p.index[rr.Value]]] = true
	}
}

// planBuffers lets op results whose lifetimes do not overlap share buffers, so a step's
// temporaries stay in cache. A root's lifetime runs to the last use of any value aliasing it;
// roots that are returned or written to a state keep buffers of their own.
func (p *interpPlan) planBuffers(u *usage) {
	nv := len(p.kind)
	p.buf = make([]int, nv)
	last := make([]int, nv)
	own := make([]bool, nv)
	for v := range nv {
		p.buf[v], last[v] = -1, -1
	}
	for v, k := range p.kind {
		if k == vDead {
			continue
		}
		r := p.root[v]
		last[r] = max(last[r], u.lastUse[v])
		own[r] = own[r] || u.isOut[v] || len(u.writes[v]) > 0
	}
	type live struct {
		last, id int
		float    bool
	}
	var active []live
	var freeF, freeI []int
	for si, st := range p.steps {
		keep := active[:0]
		for _, a := range active {
			switch {
			case a.last >= si:
				keep = append(keep, a)
			case a.float:
				freeF = append(freeF, a.id)
			default:
				freeI = append(freeI, a.id)
			}
		}
		active = keep
		for k, o := range st.out {
			if p.kind[o] != vSlot || p.root[o] != o || own[o] || last[o] < si {
				continue
			}
			float := st.op.Results[k].Type.DType.IsFloat()
			free := &freeI
			if float {
				free = &freeF
			}
			id := p.nbuf
			if n := len(*free); n > 0 {
				id, *free = (*free)[n-1], (*free)[:n-1]
			} else {
				p.nbuf++
			}
			p.buf[o] = id
			active = append(active, live{last[o], id, float})
		}
	}
}

// ---- run time

type interpFrame struct {
	p         *interpPlan
	it        *Interpreter
	vals      []*Array
	slots     []*Array // buffers owned by value, reused across runs
	copies    []*Array // slices that were not contiguous: their own buffers
	states    map[string]*Array
	subs      map[*interpPlan]*interpFrame
	poolF     [][]float32 // shared buffers by id
	poolI     [][]int64
	preStates []*Array
	scratch   []float32
	acc64     []float64 // float64 accumulators of sums (reduce_sum/mean, softmax)
}

func (p *interpPlan) newFrame(it *Interpreter) *interpFrame {
	fr := &interpFrame{p: p, it: it, vals: make([]*Array, len(p.kind)), slots: make([]*Array, len(p.kind)), copies: make([]*Array, len(p.kind)),
		subs: map[*interpPlan]*interpFrame{}, poolF: make([][]float32, p.nbuf), poolI: make([][]int64, p.nbuf)}
	p.constVals(fr.vals)
	return fr
}

func (fr *interpFrame) run() error {
	for _, st := range fr.p.steps {
		if err := execChecked(fr, st); err != nil {
			return err
		}
	}
	return nil
}

// alloc returns value o's own buffer shaped dt[shape], reusing its storage from earlier runs.
// The elements are not cleared.
func (fr *interpFrame) alloc(o int, dt graph.DType, shape []int64) *Array {
	t := fr.slots[o]
	if t == nil {
		t = &Array{}
		fr.slots[o] = t
	}
	t.DType = dt
	t.Shape = append(t.Shape[:0], shape...)
	n := shapeElems(shape)
	if id := fr.p.buf; id != nil && id[o] >= 0 && len(fr.poolF) > id[o] {
		if dt.IsFloat() {
			fr.poolF[id[o]] = growF(fr.poolF[id[o]], n)
			t.F, t.I = fr.poolF[id[o]], nil
		} else {
			fr.poolI[id[o]] = growI(fr.poolI[id[o]], n)
			t.I, t.F = fr.poolI[id[o]], nil
		}
		fr.vals[o] = t
		return t
	}
	if dt.IsFloat() {
		if cap(t.F) < n && fr.it != nil {
			if b := fr.it.takeFree(n); b != nil {
				t.F = b
			}
		}
		t.F = growF(t.F, n)
		t.I = nil
	} else {
		t.I = growI(t.I, n)
		t.F = nil
	}
	fr.vals[o] = t
	return t
}

// view returns value o as a reshaped alias of a.
func (fr *interpFrame) view(o int, a *Array, shape []int64) *Array {
	t := fr.slots[o]
	if t == nil {
		t = &Array{}
		fr.slots[o] = t
	}
	t.DType, t.F, t.I = a.DType, a.F, a.I
	t.Shape = append(t.Shape[:0], shape...)
	fr.vals[o] = t
	return t
}

// growF returns b resized to n, reallocating with headroom so a dimension that grows by one
// per call (the KV positions) does not reallocate every call.
func growF(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n, n+n/4)
	}
	return b[:n]
}

func growI(b []int64, n int) []int64 {
	if cap(b) < n {
		return make([]int64, n, n+n/4)
	}
	return b[:n]
}

// scratchF is a per-frame temporary buffer (contents undefined).
func (fr *interpFrame) scratchF(n int) []float32 {
	fr.scratch = growF(fr.scratch, n)
	return fr.scratch
}

func execNop(*interpFrame, *interpStep) error { return nil }

func execReadHandle(fr *interpFrame, st *interpStep) error {
	t, ok := fr.states[st.handle]
	if !ok || t == nil {
		return st.errorf("state %q is missing", st.handle)
	}
	fr.vals[st.out[0]] = t
	return nil
}

func execWriteHandle(fr *interpFrame, st *interpStep) error {
	v := fr.vals[st.in[1]]
	if err := v.check(st.op.Operands[0].Type); err != nil {
		return st.errorf("value written to state %q %v", st.handle, err)
	}
	fr.states[st.handle] = v
	return nil
}

func execInvoke(fr *interpFrame, st *interpStep) error {
	cp := st.callee
	sub := fr.subs[cp]
	if sub == nil {
		sub = cp.newFrame(fr.it)
		fr.subs[cp] = sub
	}
	for i, j := range st.in {
		a := fr.vals[j]
		if err := a.check(cp.fn.Args[i].Value.Type); err != nil {
			return st.errorf("argument %q of @%s %v", cp.fn.Args[i].Name, cp.fn.Name, err)
		}
		sub.vals[i] = a
	}
	if err := sub.run(); err != nil {
		return st.errorf("%v", err)
	}
	// Copy the results out: the callee's buffers are reused by its next invocation.
	for k, r := range cp.fn.Results {
		src := sub.vals[cp.index[r.Value]]
		dst := fr.alloc(st.out[k], src.DType, src.Shape)
		copy(dst.F, src.F)
		copy(dst.I, src.I)
	}
	return nil
}

// describeKinds is a debugging aid: the kind of every value, one line each.
func (p *interpPlan) describeKinds() string {
	var b strings.Builder
	names := [...]string{"dead", "input", "handle", "token", "const", "slot", "view", "read", "inplace"}
	for v, k := range p.kind {
		fmt.Fprintf(&b, "%d %s root=%d\n", v, names[k], p.root[v])
	}
	return b.String()
}
