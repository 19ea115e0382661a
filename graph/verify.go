package graph

import (
	"errors"
	"fmt"
	"strings"
)

// Device is the compute unit a graph is lowered for; some rules depend on it.
type Device uint8

const (
	GPU Device = iota + 1
	ANE
)

func (d Device) String() string {
	switch d {
	case GPU:
		return "GPU"
	case ANE:
		return "ANE"
	}
	return fmt.Sprintf("Device(%d)", uint8(d))
}

// Rules the verifier enforces, named in every violation. The device rules are numbered as in
// docs/constraints.md.
const (
	RuleTypes          = "types"                  // every op's types infer and agree with what it declares
	RuleNoLoops        = "no-loops"               // constraint 1: no coreai.while (or any region op)
	RuleStates         = "states"                 // state inputs and outputs agree in name, shape and dtype
	RuleShapeIndex     = "shape-derived-kv-index" // constraint 2: slice_update bounds never come from input values
	RulePerChannelGPU  = "per-channel-int8-gpu"   // constraint 3: per-channel int8 is broken on the GPU delegate
	RuleRecurrenceType = "recurrence-dtype"       // constraint 7: fp32 recurrence on GPU, fp16 on the ANE
	// RuleFixedStateWrite: a fixed-shape state is written whole, once per step, never through
	// chained slice_updates (fuse_states.go).
	RuleFixedStateWrite = "one-write-per-fixed-state"
)

// VerifyOptions say what the graph targets.
type VerifyOptions struct {
	Device Device
	// AllowPerChannelGPU overrides RulePerChannelGPU (--allow-known-delegate-bugs).
	AllowPerChannelGPU bool
	// Compute is the graph's compute dtype (F16 when zero); with Device it decides the
	// recurrence dtype through RecurrenceDType.
	Compute DType
}

// Violation is one broken rule at one op.
type Violation struct {
	Func string
	Op   int    // index in the body; -1 for a function-level problem
	Name string // op name
	Rule string
	Msg  string
}

func (v Violation) Error() string {
	if v.Op < 0 {
		return fmt.Sprintf("@%s: rule %s: %s", v.Func, v.Rule, v.Msg)
	}
	return fmt.Sprintf("@%s op #%d %s: rule %s: %s", v.Func, v.Op, v.Name, v.Rule, v.Msg)
}

// VerifyError lists every violation found.
type VerifyError struct{ Violations []Violation }

func (e *VerifyError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "graph verification failed (%d violation(s)):", len(e.Violations))
	for i, v := range e.Violations {
		if i == 20 {
			fmt.Fprintf(&b, "\n  ... and %d more", len(e.Violations)-20)
			break
		}
		b.WriteString("\n  ")
		b.WriteString(v.Error())
	}
	return b.String()
}

// Verify checks every function of m against the rules; it returns a *VerifyError or nil.
func Verify(m *Module, opt VerifyOptions) error {
	var vs []Violation
	for _, f := range m.Funcs {
		vs = append(vs, verifyFunc(m, f, opt)...)
	}
	if len(vs) > 0 {
		return &VerifyError{vs}
	}
	return nil
}

// HasRule reports whether err (from Verify) contains a violation of rule.
func HasRule(err error, rule string) bool {
	var ve *VerifyError
	if !errors.As(err, &ve) {
		return false
	}
	for _, v := range ve.Violations {
		if v.Rule == rule {
			return true
		}
	}
	return false
}

func verifyFunc(m *Module, f *Func, opt VerifyOptions) []Violation {
	var vs []Violation
	bad := func(i int, op *Op, rule, format string, args ...any) {
		name := ""
		if op != nil {
			name = op.Name
		}
		vs = append(vs, Violation{Func: f.Name, Op: i, Name: name, Rule: rule, Msg: fmt.Sprintf(format, args...)})
	}

	if f.Opaque != "" { // a composite read without its body (graph/mlir): its loop is all there is to check
		bad(-1, nil, RuleNoLoops, "%s (read without its body); it runs only where the runtime replaces the composite %q with its own kernel", f.Opaque, CompositeName(f.Composite))
		return vs
	}
	// Values usable so far: SSA in a straight-line body means defined earlier.
	defined := map[*Value]bool{}
	for _, a := range f.Args {
		defined[a.Value] = true
	}
	for i, op := range f.Body {
		if op.Name == OpWhile || strings.HasSuffix(op.Name, ".if") {
			bad(i, op, RuleNoLoops, "loops and branches do not lower on the device GPU/ANE delegates; emit explicit (unrolled) steps")
			continue
		}
		for j, v := range op.Operands {
			if v == nil || !defined[v] {
				bad(i, op, RuleTypes, "operand %d is not defined before use", j)
			}
		}
		ts, err := InferTypes(op, m)
		switch {
		case err != nil:
			bad(i, op, RuleTypes, "%v", err)
		case len(ts) != len(op.Results):
			bad(i, op, RuleTypes, "declares %d results, infers %d", len(op.Results), len(ts))
		default:
			for j, t := range ts {
				if !t.Compatible(op.Results[j].Type) {
					bad(i, op, RuleTypes, "result %d declared %s, infers %s", j, op.Results[j].Type, t)
				}
			}
		}
		for _, r := range op.Results {
			defined[r] = true
		}
	}
	for _, r := range f.Results {
		if r.Value == nil || !defined[r.Value] {
			bad(-1, nil, RuleTypes, "result %q is not defined in the body", r.Name)
		}
	}

	vs = append(vs, verifyStates(f, opt)...)
	vs = append(vs, verifyIndices(f)...)
	vs = append(vs, fixedStateChains(f)...)

	for i, op := range f.Body {
		if op.Name != OpBlockwise || opt.Device != GPU || opt.AllowPerChannelGPU {
			continue
		}
		data, scale := op.Operands[0].Type, op.Operands[1].Type
		if data.Rank() == 2 && scale.Rank() == 2 && scale.Shape[1] == 1 && !OneBlockRows(data.Shape[1]) {
			bad(i, op, RulePerChannelGPU, "int weights %s with one scale per output channel (%s): per-channel int8 gives garbage logits on the current GPU delegate; use per-block-32 or pass --allow-known-delegate-bugs", data, scale)
		}
	}
	return vs
}

// verifyStates checks each state handle (read once, written once with a value of its own type,
// returned as a token of its own name) and the host-cache input/output pairs.
func verifyStates(f *Func, opt VerifyOptions) []Violation {
	var vs []Violation
	bad := func(i int, name, format string, args ...any) {
		vs = append(vs, Violation{Func: f.Name, Op: i, Name: name, Rule: RuleStates, Msg: fmt.Sprintf(format, args...)})
	}
	for _, a := range f.Args {
		t := a.Value.Type
		if t.Kind != HandleKind {
			if a.Mutation != "" {
				bad(-1, "", "argument %q has a buffer_mutation but is not a state handle", a.Name)
			}
			continue
		}
		if a.Mutation != a.Name {
			bad(-1, "", "state %q: MutableBuffers.buffer_mutation is %q, want its own name", a.Name, a.Mutation)
		}
		var reads, writes int
		var lastWrite *Op
		for i, op := range f.Body {
			for j, v := range op.Operands {
				if v != a.Value {
					continue
				}
				switch {
				case op.Name == OpReadHandle && j == 0:
					reads++
				case op.Name == OpWriteHandle && j == 0:
					writes++
					lastWrite = op
					if w := op.Operands[1].Type; !w.Compatible(t.TensorType()) {
						bad(i, op.Name, "state %q holds %s but is written with %s", a.Name, t.TensorType(), w)
					}
				default:
					bad(i, op.Name, "state handle %q used as an ordinary operand", a.Name)
				}
			}
		}
		if writes != 1 || reads > 1 {
			bad(-1, "", "state %q is read %d and written %d times; want at most one read and exactly one write", a.Name, reads, writes)
		}
		r := f.Result(a.Name)
		switch {
		case r == nil:
			bad(-1, "", "state %q has no result token of the same name", a.Name)
		case r.Value.Type.Kind != TokenKind:
			bad(-1, "", "state %q's result is %s, want !coreai.token", a.Name, r.Value.Type)
		case lastWrite != nil && r.Value != lastWrite.Results[0]:
			bad(-1, "", "state %q's result token is not the one its write_handle produces", a.Name)
		}
		if a.Name == StateRec || a.Name == StateRecurrentStates {
			vs = append(vs, recurrenceType(f, a.Name, t, opt)...)
		}
	}
	// Host-cache contract: the new states must have the shapes and dtypes of the inputs they replace.
	for _, p := range [][2]string{{InConvState, OutConvCur}, {InRecState, OutRecCur}} {
		in, out := f.Arg(p[0]), f.Result(p[1])
		if in == nil && out == nil {
			continue
		}
		if in == nil || out == nil {
			bad(-1, "", "host-cache state %s/%s: one side is missing", p[0], p[1])
			continue
		}
		if !in.Value.Type.Equal(out.Value.Type) {
			bad(-1, "", "host-cache state %s is %s but %s is %s", p[0], in.Value.Type, p[1], out.Value.Type)
		}
		if p[0] == InRecState {
			vs = append(vs, recurrenceType(f, p[0], in.Value.Type, opt)...)
		}
	}
	for _, p := range [][2]string{{InPastK, OutKCur}, {InPastV, OutVCur}} {
		in, out := f.Arg(p[0]), f.Result(p[1])
		if in == nil && out == nil {
			continue
		}
		if in == nil || out == nil {
			bad(-1, "", "host-cache cache %s/%s: one side is missing", p[0], p[1])
			continue
		}
		a, b := in.Value.Type, out.Value.Type
		if a.DType != b.DType || a.Rank() != 5 || b.Rank() != 5 || a.Shape[0] != b.Shape[0] || a.Shape[2] != b.Shape[2] || a.Shape[4] != b.Shape[4] {
			bad(-1, "", "host-cache cache %s %s and its new columns %s %s disagree", p[0], a, p[1], b)
		}
	}
	return vs
}

func recurrenceType(f *Func, name string, t Type, opt VerifyOptions) []Violation {
	compute := opt.Compute
	if compute == 0 {
		compute = F16
	}
	want := RecurrenceDType(opt.Device, compute)
	if opt.Device == 0 || t.DType == want {
		return nil
	}
	why := "the GPU graphs keep the gated-delta state and its update in fp32"
	switch {
	case compute == F32:
		why = "the fp32 validation form keeps the recurrence in fp32"
	case compute == BF16:
		why = "the bf16 form stores the gated-delta state in bf16, as Apple's stock contract does"
	case opt.Device == ANE:
		why = "the fp32-SSM form is wrong on the ANE; keep the recurrence in fp16"
	}
	return []Violation{{Func: f.Name, Op: -1, Rule: RuleRecurrenceType,
		Msg: fmt.Sprintf("state %q is %s on the %s: %s", name, t.DType, opt.Device, why)}}
}

// verifyIndices checks that no slice_update takes its bounds from a runtime value: a value is
// "data" when it is an input, a state's contents, or computed from data, except that get_shape
// of anything is a shape (docs/constraints.md, constraint 2: value-derived write indices crash the GPU and ANE).
func verifyIndices(f *Func) []Violation {
	var vs []Violation
	dataFrom := map[*Value]string{} // value -> the input it depends on
	for _, a := range f.Args {
		dataFrom[a.Value] = a.Name
	}
	for i, op := range f.Body {
		if op.Name == OpSliceUpdate {
			for j, what := range map[int]string{2: "begin", 3: "end", 4: "strides"} {
				if src, ok := dataFrom[op.Operands[j]]; ok {
					vs = append(vs, Violation{Func: f.Name, Op: i, Name: op.Name, Rule: RuleShapeIndex,
						Msg: fmt.Sprintf("%s depends on the value of %q; derive it from tensor shapes (get_shape) or use the host-cache contract", what, src)})
				}
			}
		}
		if op.Name == OpGetShape || op.Name == OpConstant {
			continue
		}
		src := ""
		for _, v := range op.Operands {
			if s, ok := dataFrom[v]; ok {
				src = s
				break
			}
		}
		if src == "" {
			continue
		}
		for _, r := range op.Results {
			dataFrom[r] = src
		}
	}
	return vs
}

// OneBlockRows reports whether rows of width cols with one scale each are one block of the
// block-32 scheme rather than per-channel: a row of at most 32 weights holds a single block, so
// block-32 and per-channel store it identically ([out, in] data, [out, 1] scales) and it is
// named block32 (docs/naming.md). The per-channel GPU rule applies to wider rows only.
func OneBlockRows(cols int64) bool { return cols <= 32 }
