package interp

import (
	"fmt"

	"qconv/graph"
)

// Time-batched feeding of the host-cache decode graph (ios-gpu).
//
// A host-cache step takes its caches and SSM states as inputs and returns the new K/V column and
// states as outputs, which the host writes back (Session.runHost). For Feed, the session runs an
// equivalent function with the host's side written into the graph: past_k, past_v, the conv and
// the recurrent state become state handles read at the start; each layer's K/V column is written
// by a slice_update at [layer, 0, 0, position, 0] (the host's copy), and the fused conv and
// recurrent outputs are written back whole (the host's carry). That is the shape the pipelined
// planner understands (feed_plan.go): one sub-state per layer, a region per sub-state run frame
// after frame, weight products batched across frames. Frame t then reads each cache as frames
// before it left it, exactly what the host gives step t, and the rows are bit-identical to
// Step's (TestFeedMatchesStepEveryTarget). The function is built for the session's window
// (session_window.go) and never leaves the process: its slice_update index comes from
// position_ids' value, which only the host may do in a published graph.

// hostFeedStates are the host-cache inputs that become states, with the result that carries each.
var hostFeedStates = []struct{ in, out string }{
	{graph.InPastK, graph.OutKCur},
	{graph.InPastV, graph.OutVCur},
	{graph.InConvState, graph.OutConvCur},
	{graph.InRecState, graph.OutRecCur},
}

// hostFeedModule returns m (a one-token host-cache decode module) with @main rewritten as above.
func hostFeedModule(m *graph.Module) (*graph.Module, error) {
	f := m.Func("main")
	if f == nil {
		return nil, fmt.Errorf("no @main")
	}
	pos := f.Arg(graph.InPositionIDs)
	if pos == nil || !pos.Value.Type.Static() || pos.Value.Type.NumElements() != 1 {
		return nil, fmt.Errorf("@main is not a one-token step (position_ids %v)", pos)
	}
	nf := &graph.Func{Name: f.Name, Private: f.Private, NoInline: f.NoInline}
	nm := &graph.Module{Resources: m.Resources}
	for _, g := range m.Funcs {
		if g == f {
			g = nf
		}
		nm.Funcs = append(nm.Funcs, g)
	}
	b := graph.NewBuilder(nm, nf)
	vmap := make(map[*graph.Value]*graph.Value, f.NumValues())
	handles := map[string]*graph.Value{}
	isState := map[string]bool{}
	for _, s := range hostFeedStates {
		isState[s.in] = true
	}
	for _, a := range f.Args {
		if isState[a.Name] {
			if a.Value.Type.Kind != graph.TensorKind || !a.Value.Type.Static() {
				return nil, fmt.Errorf("input %q %s is not a static tensor", a.Name, a.Value.Type)
			}
			handles[a.Name] = nf.AddState(a.Name, a.Value.Type)
			continue
		}
		vmap[a.Value] = nf.AddArg(a.Name, a.Value.Type)
	}
	if len(handles) != len(hostFeedStates) {
		return nil, fmt.Errorf("@main lacks some of the host-cache inputs")
	}
	tok := b.Op(graph.OpCreateToken)
	for _, s := range hostFeedStates {
		var v *graph.Value
		v, tok = b.ReadState(handles[s.in], tok)
		vmap[f.Arg(s.in).Value] = v
	}
	for _, op := range f.Body {
		operands := make([]*graph.Value, len(op.Operands))
		for i, o := range op.Operands {
			if operands[i] = vmap[o]; operands[i] == nil {
				return nil, fmt.Errorf("operand %s of %s defined after its use", o, op.Name)
			}
		}
		types := make([]graph.Type, len(op.Results))
		for i, r := range op.Results {
			types[i] = r.Type
		}
		nop := nf.Append(graph.NewOp(op.Name, operands, types, op.Attrs))
		for i, r := range op.Results {
			vmap[r] = nop.Results[i]
		}
	}
	carried := map[string]bool{}
	p := b.Reshape(vmap[pos.Value], 1)
	p1 := b.Add(p, b.I32s(1))
	for _, s := range hostFeedStates {
		r := f.Result(s.out)
		if r == nil {
			return nil, fmt.Errorf("@main has no %s result", s.out)
		}
		carried[s.out] = true
		written := vmap[r.Value]
		if s.in == graph.InPastK || s.in == graph.InPastV {
			written = vmap[f.Arg(s.in).Value]
			// The host writes layer l's column at [l, 0, 0, position, 0].
			cat := r.Value.Def
			if cat == nil || cat.Name != graph.OpConcat {
				return nil, fmt.Errorf("%s is not a concat of the layers' columns", s.out)
			}
			t := f.Arg(s.in).Value.Type // [L, 1, Hkv, slots, D]
			if t.Rank() != 5 {
				return nil, fmt.Errorf("%s %s is not [layers, 1, heads, slots, dim]", s.in, t)
			}
			ones := b.I32s(1, 1, 1, 1, 1)
			for l, piece := range cat.Operands[1:] {
				pt := piece.Type
				if pt.Rank() != 5 || pt.Shape[0] != 1 || pt.Shape[3] != 1 {
					return nil, fmt.Errorf("%s: layer %d's column %s is not one position of one layer", s.out, l, pt)
				}
				li := int64(l)
				begin := b.Concat(0, b.I32s(li, 0, 0), p, b.I32s(0))
				end := b.Concat(0, b.I32s(li+1, t.Shape[1], t.Shape[2]), p1, b.I32s(t.Shape[4]))
				written = b.Op(graph.OpSliceUpdate, written, vmap[piece], begin, end, ones)
			}
		}
		tok = b.WriteState(handles[s.in], written, tok)
		nf.AddResult(s.in, tok)
	}
	for _, r := range f.Results {
		if !carried[r.Name] {
			nf.AddResult(r.Name, vmap[r.Value])
		}
	}
	if err := b.Err(); err != nil {
		return nil, err
	}
	return nm, nil
}

// hostFeed is a host-cache session's batched-feeding machinery for one window: the state form
// of the decode graph at win slots, its interpreter and its plan. A wider window replaces it.
type hostFeed struct {
	win  int
	it   *Interpreter
	feed feedState
	err  error // why this window's graph has no state form
}

// hostFeedState returns the batched-feeding state for the session's current window, building
// the state form of the decode graph on first use.
func (s *Session) hostFeedState() (*feedState, *Interpreter, error) {
	hf := &s.hostFeed
	if hf.win != s.win || (hf.it == nil && hf.err == nil) {
		*hf = hostFeed{win: s.win}
		m := s.dec
		if s.win != s.ctx {
			var err error
			if m, err = s.windows.module(false, s.win); err != nil {
				return nil, nil, err
			}
		}
		fm, err := hostFeedModule(m)
		if err == nil {
			hf.it, err = NewNumerics(fm, "main", s.numerics)
		}
		if err != nil {
			hf.err = fmt.Errorf("the host-cache graph has no state form: %v", err)
		}
	}
	if hf.err != nil {
		return nil, nil, hf.err
	}
	return &hf.feed, hf.it, nil
}

// hostChunk readies a host-cache session for n more tokens (its window holds them all) and
// returns the feeder of its state form, or nil (step instead) when there is none.
func (s *Session) hostChunk(n int) (*feeder, map[string]*Array, error) {
	if s.pos+n > s.ctx {
		return nil, nil, nil // Step reports the full context
	}
	if s.pos+n > s.win {
		s.growHost(hostWindow(s.pos+n, s.ctx))
	}
	fs, it, err := s.hostFeedState()
	if err != nil {
		return nil, nil, nil
	}
	fd := fs.feeder(it, false)
	if fd == nil {
		return nil, nil, nil
	}
	fd.frameInputs = s.hostFrameInputs
	return fd, map[string]*Array{graph.InPastK: s.pastK, graph.InPastV: s.pastV, graph.InConvState: s.conv, graph.InRecState: s.rec}, nil
}

// hostFrameInputs sets a frame's position_ids [1,1] and causal_mask [1,1,1,win+1] for the token at
// position pos, as runHost builds them for one token.
func (s *Session) hostFrameInputs(in map[string]*Array, pos int) {
	p := NewArray(graph.SI32, 1, 1)
	p.I[0] = int64(pos)
	in[graph.InPositionIDs] = p
	m := NewArray(s.cd, 1, 1, 1, int64(s.win+1))
	for j := range m.F {
		if j >= pos && j < s.win {
			m.F[j] = graph.MaskedScore
		}
	}
	in[graph.InCausalMask] = m
}
