package graph

import "fmt"

// Fixed-shape states are written once per step, whole.
//
// On the GPU delegate, several read_handle → slice_update → write_handle round trips chained on one
// fixed-shape state were measured to drop every write (the state stays zero) as soon as more than
// one layer updates it (docs/coreai-conformance.md, "state conventions"). The working form collects
// each layer's new slice and writes the whole state once: the per-layer reads stay narrow slices of
// the one read, and the write is a concat of the layers' new slices along the layer axis.
//
// FuseLayerSlices is that concat. Any lowering with per-layer slices of a fixed-shape state (the
// pipelined contract's convState and recState, the host-cache contracts' conv_cur and rec_cur, a
// future contract's) builds its one write value with it; the verifier rejects the chained form
// under RuleFixedStateWrite.

// LayerAxis is the axis of a layered state ([layers, ...]) that per-layer slices are stacked on.
const LayerAxis = 0

// FuseLayerSlices stacks per-layer new slices (each [1, ...], in layer order) into the full state
// [len(parts), ...]. It returns fallback (the state as read) when no layer updates the state.
func FuseLayerSlices(b *Builder, parts []*Value, fallback *Value) *Value {
	switch len(parts) {
	case 0:
		return fallback
	case 1:
		return parts[0]
	}
	return b.Concat(LayerAxis, parts...)
}

// fixedStateChains finds, for each fixed-shape (static) state of f, the slice_update ops that
// update it in a chain: the state's read value, or a value a slice_update made from it, fed to
// another slice_update as the tensor it updates. It returns one violation per chained
// slice_update and one per state written through more than one slice_update.
func fixedStateChains(f *Func) []Violation {
	var vs []Violation
	root := map[*Value]string{} // value -> the fixed-shape state it is (an update of) the read of
	count := map[string]int{}
	for _, a := range f.Args {
		if a.Value.Type.Kind == HandleKind && a.Value.Type.Static() {
			root[a.Value] = a.Name
		}
	}
	for i, op := range f.Body {
		switch op.Name {
		case OpReadHandle:
			if name, ok := root[op.Operands[0]]; ok && len(op.Results) > 0 {
				root[op.Results[0]] = name
			}
		case OpSliceUpdate:
			in := op.Operands[0]
			name, ok := root[in]
			if !ok {
				continue
			}
			count[name]++
			if in.Def != nil && in.Def.Name == OpSliceUpdate {
				vs = append(vs, Violation{Func: f.Name, Op: i, Name: op.Name, Rule: RuleFixedStateWrite,
					Msg: fmt.Sprintf("slice_update on fixed-shape state %q takes another slice_update as its input; the GPU delegate drops chained writes on a fixed-shape state: collect each layer's new slice and write the whole state once", name)})
			}
			root[op.Results[0]] = name
		}
	}
	for _, a := range f.Args {
		if n := count[a.Name]; n > 1 {
			vs = append(vs, Violation{Func: f.Name, Op: -1, Rule: RuleFixedStateWrite,
				Msg: fmt.Sprintf("fixed-shape state %q is updated by %d slice_update ops in one step; want one fused full-state write", a.Name, n)})
		}
	}
	return vs
}
