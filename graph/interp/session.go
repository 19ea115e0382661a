package interp

import (
	"fmt"
	"slices"

	"qconv/graph"
)

// Session runs a lowered module token by token the way its engine does: for the pipelined
// contract it feeds input_ids [1,1] and position_ids [1,P] and keeps the four states; for the
// host-cache contracts it keeps past K/V, builds the causal mask, writes each returned K/V column
// at its position and carries the SSM states, using the prefill companion for full blocks when
// one is given. It is what `qconv run --target` and the gate drive.
type Session struct {
	vocab    int
	contract graph.Contract
	dec      *graph.Module
	pre      *graph.Module // HostPrefill companion, or nil
	decIt    *Interpreter
	preIt    *Interpreter
	pos      int // tokens fed so far
	numerics Numerics
	feed     feedState // Feed's batched path (feed.go)

	// pipelined
	states map[string]*Array
	kvCap  int64

	// host cache
	ctx, block              int
	pastK, pastV, conv, rec *Array // past_k/past_v hold win slots (session_window.go)
	cd                      graph.DType
	win                     int          // cache slots the graphs run with: ctx, or a window below it
	windows                 *hostWindows // nil: the graphs run with all ctx slots
	decWin, preWin          *Interpreter // the graphs specialized to win slots (nil until used)
	hostFeed                hostFeed     // Feed's state form of the decode graph (feed_host.go)
}

// NewSession prepares a session on dec (a Pipelined or HostDecode module); pre, if non-nil, is the
// HostPrefill companion used for whole blocks of prompt tokens.
func NewSession(dec, pre *graph.Module) (*Session, error) { return NewSessionNumerics(dec, pre, Exact) }

// NewSessionNumerics is NewSession with the interpreter numerics n (numerics.go).
func NewSessionNumerics(dec, pre *graph.Module, n Numerics) (*Session, error) {
	f := dec.Func("main")
	if f == nil {
		return nil, fmt.Errorf("session: module has no @main")
	}
	logits := f.Result(graph.OutLogits)
	if logits == nil || logits.Value.Type.Rank() != 3 || logits.Value.Type.Shape[2] <= 0 {
		return nil, fmt.Errorf("session: @main has no logits [1, q, V] result")
	}
	s := &Session{vocab: int(logits.Value.Type.Shape[2]), dec: dec, pre: pre, numerics: n}
	it, err := NewNumerics(dec, "main", n)
	if err != nil {
		return nil, err
	}
	s.decIt = it
	switch {
	case f.Arg(graph.StateKey) != nil:
		s.contract = graph.Pipelined
		if pre != nil {
			return nil, fmt.Errorf("session: a prefill companion goes with the host-cache contract, not the pipelined one")
		}
		s.states = map[string]*Array{}
		s.kvCap = 64
		for _, a := range f.Args {
			if a.Value.Type.Kind != graph.HandleKind {
				continue
			}
			shape := slices.Clone(a.Value.Type.Shape)
			for i, d := range shape {
				if d == graph.Dyn {
					shape[i] = s.kvCap
				}
			}
			s.states[a.Name] = NewArray(a.Value.Type.DType, shape...)
		}
	case f.Arg(graph.InPastK) != nil:
		s.contract = graph.HostDecode
		pk := f.Arg(graph.InPastK).Value.Type
		s.ctx = int(pk.Shape[3])
		s.cd = pk.DType
		s.win = s.ctx
		ct, rt := f.Arg(graph.InConvState).Value.Type, f.Arg(graph.InRecState).Value.Type
		s.conv = NewArray(ct.DType, ct.Shape...)
		s.rec = NewArray(rt.DType, rt.Shape...)
		if pre != nil {
			pf := pre.Func("main")
			if pf == nil || pf.Arg(graph.InPastK) == nil || !pf.Arg(graph.InPastK).Value.Type.Equal(pk) {
				return nil, fmt.Errorf("session: the prefill companion's past_k does not match the decode graph's %s", pk)
			}
			s.block = int(pf.Arg(graph.InInputIDs).Value.Type.Shape[1])
			if s.preIt, err = NewNumerics(pre, "main", n); err != nil {
				return nil, err
			}
		}
		if s.windows, err = newHostWindows(dec, pre, s.ctx); err != nil {
			return nil, err
		}
		if s.windows != nil {
			s.win = hostWindow(1, s.ctx)
		}
		shape := slices.Clone(pk.Shape)
		shape[3] = int64(s.win)
		s.pastK = NewArray(pk.DType, shape...)
		s.pastV = NewArray(pk.DType, shape...)
	default:
		return nil, fmt.Errorf("session: @main follows neither the pipelined nor the host-cache contract")
	}
	return s, nil
}

// VocabSize is the logits' width.
func (s *Session) VocabSize() int { return s.vocab }

// Pos is the number of tokens fed so far.
func (s *Session) Pos() int { return s.pos }

// Fork returns an independent session at the same position (its own interpreters and states).
func (s *Session) Fork() (*Session, error) {
	n, err := NewSessionNumerics(s.dec, s.pre, s.numerics)
	if err != nil {
		return nil, err
	}
	n.pos, n.kvCap, n.win, n.windows = s.pos, s.kvCap, s.win, s.windows
	for k, v := range s.states {
		n.states[k] = cloneArray(v)
	}
	if s.contract != graph.Pipelined {
		n.pastK, n.pastV, n.conv, n.rec = cloneArray(s.pastK), cloneArray(s.pastV), cloneArray(s.conv), cloneArray(s.rec)
	}
	return n, nil
}

func cloneArray(a *Array) *Array {
	return &Array{DType: a.DType, Shape: slices.Clone(a.Shape), F: slices.Clone(a.F), I: slices.Clone(a.I)}
}

func ids2D(ids []int) *Array {
	a := NewArray(graph.SI32, 1, int64(len(ids)))
	for i, id := range ids {
		a.I[i] = int64(id)
	}
	return a
}

// Step feeds one token through the decode graph and returns the next-token logits (a fresh slice).
func (s *Session) Step(id int) ([]float32, error) {
	if id < 0 || id >= s.vocab {
		return nil, fmt.Errorf("token id %d out of range [0, %d)", id, s.vocab)
	}
	switch s.contract {
	case graph.Pipelined:
		return s.stepPipelined(id)
	default:
		return s.stepHost(id)
	}
}

func (s *Session) stepPipelined(id int) ([]float32, error) {
	if int64(s.pos+1) > s.kvCap {
		s.growKV(max(2*s.kvCap, int64(s.pos+1)))
	}
	positions := make([]int, s.pos+1)
	for i := range positions {
		positions[i] = i
	}
	out, err := s.decIt.Run(map[string]*Array{graph.InInputIDs: ids2D([]int{id}), graph.InPositionIDs: ids2D(positions)}, s.states)
	if err != nil {
		return nil, err
	}
	s.pos++
	return slices.Clone(out[graph.OutLogits].F), nil
}

// growKV enlarges the dynamic sequence dim of the KV states (the engine reallocates too).
func (s *Session) growKV(capacity int64) {
	for _, name := range []string{graph.StateKey, graph.StateValue} {
		old := s.states[name]
		shape := slices.Clone(old.Shape)
		shape[3] = capacity
		n := NewArray(old.DType, shape...)
		// copy [l, b, h, 0:oldCap, :] row blocks
		inner := old.Shape[4]
		oldCap := old.Shape[3]
		outer := old.Shape[0] * old.Shape[1] * old.Shape[2]
		for o := int64(0); o < outer; o++ {
			copy(n.F[o*capacity*inner:], old.F[o*oldCap*inner:(o+1)*oldCap*inner])
		}
		s.states[name] = n
	}
	s.kvCap = capacity
}

// hostMask builds the additive mask for q tokens at positions pos..pos+q-1: the past slots below
// pos are visible, the rest of the past masked, and within the block token i sees tokens <= i.
func (s *Session) hostMask(q int) *Array {
	m := NewArray(s.cd, 1, 1, int64(q), int64(s.win+q))
	w := s.win + q
	for i := 0; i < q; i++ {
		row := m.F[i*w : (i+1)*w]
		for j := range row {
			switch {
			case j < s.pos:
				row[j] = 0
			case j < s.win:
				row[j] = graph.MaskedScore
			case j-s.win <= i:
				row[j] = 0
			default:
				row[j] = graph.MaskedScore
			}
		}
	}
	return m
}

func (s *Session) runHost(prefill bool, ids []int) (map[string]*Array, error) {
	q := len(ids)
	if s.pos+q > s.ctx {
		return nil, fmt.Errorf("context full: %d tokens fed, the graph's static context is %d", s.pos+q, s.ctx)
	}
	if s.pos+q > s.win {
		s.growHost(hostWindow(s.pos+q, s.ctx))
	}
	it, err := s.hostInterp(prefill)
	if err != nil {
		return nil, err
	}
	positions := make([]int, q)
	for i := range positions {
		positions[i] = s.pos + i
	}
	in := map[string]*Array{
		graph.InInputIDs: ids2D(ids), graph.InPositionIDs: ids2D(positions), graph.InCausalMask: s.hostMask(q),
		graph.InPastK: s.pastK, graph.InPastV: s.pastV, graph.InConvState: s.conv, graph.InRecState: s.rec,
	}
	out, err := it.Run(in, nil)
	if err != nil {
		return nil, err
	}
	// The host writes the returned K/V columns into its caches at their positions.
	for _, p := range [][2]*Array{{out[graph.OutKCur], s.pastK}, {out[graph.OutVCur], s.pastV}} {
		cur, past := p[0], p[1]
		L, H, D := past.Shape[0]*past.Shape[1], past.Shape[2], past.Shape[4]
		ctx := past.Shape[3]
		for l := int64(0); l < L; l++ {
			for h := int64(0); h < H; h++ {
				for t := 0; t < q; t++ {
					src := cur.F[((l*H+h)*int64(q)+int64(t))*D:][:D]
					copy(past.F[((l*H+h)*ctx+int64(s.pos+t))*D:], src)
				}
			}
		}
	}
	// The outputs alias interpreter buffers the next run reuses: copy them into the session's own.
	copy(s.conv.F, out[graph.OutConvCur].F)
	copy(s.rec.F, out[graph.OutRecCur].F)
	s.pos += q
	return out, nil
}

func (s *Session) stepHost(id int) ([]float32, error) {
	out, err := s.runHost(false, []int{id})
	if err != nil {
		return nil, err
	}
	return slices.Clone(out[graph.OutLogits].F), nil
}

// Prefill feeds ids and returns the logits after the last one. With a prefill companion, whole
// blocks go through it and the remainder through the decode graph (the published rule); without
// one, every token is a decode step.
func (s *Session) Prefill(ids []int) ([]float32, error) {
	if len(ids) == 0 {
		return nil, fmt.Errorf("prefill of no tokens")
	}
	for _, id := range ids {
		if id < 0 || id >= s.vocab {
			return nil, fmt.Errorf("token id %d out of range [0, %d)", id, s.vocab)
		}
	}
	var logits []float32
	i := 0
	if s.preIt != nil {
		for ; i+s.block <= len(ids); i += s.block {
			out, err := s.runHost(true, ids[i:i+s.block])
			if err != nil {
				return nil, err
			}
			logits = slices.Clone(out[graph.OutLogits].F)
		}
	}
	for ; i < len(ids); i++ {
		var err error
		if logits, err = s.Step(ids[i]); err != nil {
			return nil, err
		}
	}
	return logits, nil
}

// SSMState returns a copy of the conv and recurrent states (for tests comparing contracts).
func (s *Session) SSMState() (conv, rec []float32) {
	if s.contract == graph.Pipelined {
		return slices.Clone(s.states[graph.StateConv].F), slices.Clone(s.states[graph.StateRec].F)
	}
	return slices.Clone(s.conv.F), slices.Clone(s.rec.F)
}
