package interp

import (
	"fmt"
	"slices"

	"qconv/graph"
)

// StockSession runs a Stock module the way Apple's runner does: it keeps the four states, feeds
// @main any number of tokens per call (input_ids [1,q], position_ids [1,P] = 0..P-1), and, when
// the module has @prefill, may fill the states with all prompt tokens but the last through it and
// hold the last back for @main, whose logits seed decoding.
type StockSession struct {
	mod        *graph.Module
	main, fill *Interpreter
	states     map[string]*Array
	kvCap      int64
	pos        int
	vocab      int
	feed       feedState // Feed's batched path (feed.go)
}

// IsStock reports whether m's @main follows the Stock contract (its states are Apple's four).
func IsStock(m *graph.Module) bool {
	f := m.Func(graph.FuncMain)
	return f != nil && f.Arg(graph.StateConvStates) != nil && f.Arg(graph.StateRecurrentStates) != nil && f.Arg(graph.StateKey) != nil
}

// NewStockSession prepares a session on m.
func NewStockSession(m *graph.Module) (*StockSession, error) {
	if !IsStock(m) {
		return nil, fmt.Errorf("session: @main does not carry the stock contract's states %s, %s, %s, %s", graph.StateKey, graph.StateValue, graph.StateConvStates, graph.StateRecurrentStates)
	}
	f := m.Func(graph.FuncMain)
	logits := f.Result(graph.OutLogits)
	if logits == nil || logits.Value.Type.Rank() != 3 || logits.Value.Type.Shape[2] <= 0 {
		return nil, fmt.Errorf("session: @main has no logits [1, q, V] result")
	}
	s := &StockSession{mod: m, vocab: int(logits.Value.Type.Shape[2]), states: map[string]*Array{}, kvCap: 64}
	var err error
	if s.main, err = New(m, graph.FuncMain); err != nil {
		return nil, err
	}
	if pf := m.Func(graph.FuncPrefill); pf != nil {
		for _, a := range f.Args {
			pa := pf.Arg(a.Name)
			if pa == nil || !pa.Value.Type.Equal(a.Value.Type) {
				return nil, fmt.Errorf("session: @prefill's %q does not match @main's %s", a.Name, a.Value.Type)
			}
		}
		if len(pf.Args) != len(f.Args) {
			return nil, fmt.Errorf("session: @prefill takes %d arguments, @main %d", len(pf.Args), len(f.Args))
		}
		if s.fill, err = New(m, graph.FuncPrefill); err != nil {
			return nil, err
		}
	}
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
	return s, nil
}

// VocabSize is the logits' width.
func (s *StockSession) VocabSize() int { return s.vocab }

// HasPrefill reports whether the module has the @prefill entrypoint.
func (s *StockSession) HasPrefill() bool { return s.fill != nil }

// Fork returns an independent session at the same position.
func (s *StockSession) Fork() (*StockSession, error) {
	n, err := NewStockSession(s.mod)
	if err != nil {
		return nil, err
	}
	n.pos, n.kvCap = s.pos, s.kvCap
	for k, v := range s.states {
		n.states[k] = cloneArray(v)
	}
	return n, nil
}

func (s *StockSession) run(it *Interpreter, ids []int) (map[string]*Array, error) {
	if len(ids) == 0 {
		return nil, fmt.Errorf("no tokens to feed")
	}
	for _, id := range ids {
		if id < 0 || id >= s.vocab {
			return nil, fmt.Errorf("token id %d out of range [0, %d)", id, s.vocab)
		}
	}
	need := int64(s.pos + len(ids))
	if need > s.kvCap {
		s.growKV(max(2*s.kvCap, need))
	}
	positions := make([]int, need)
	for i := range positions {
		positions[i] = i
	}
	out, err := it.Run(map[string]*Array{graph.InInputIDs: ids2D(ids), graph.InPositionIDs: ids2D(positions)}, s.states)
	if err != nil {
		return nil, err
	}
	s.pos += len(ids)
	return out, nil
}

func (s *StockSession) growKV(capacity int64) {
	for _, name := range []string{graph.StateKey, graph.StateValue} {
		old := s.states[name]
		shape := slices.Clone(old.Shape)
		shape[3] = capacity
		n := NewArray(old.DType, shape...)
		inner, oldCap := old.Shape[4], old.Shape[3]
		outer := old.Shape[0] * old.Shape[1] * old.Shape[2]
		for o := int64(0); o < outer; o++ {
			copy(n.F[o*capacity*inner:], old.F[o*oldCap*inner:(o+1)*oldCap*inner])
		}
		s.states[name] = n
	}
	s.kvCap = capacity
}

// Step feeds one token through @main and returns the next-token logits (a fresh slice).
func (s *StockSession) Step(id int) ([]float32, error) {
	rows, err := s.Main([]int{id})
	if err != nil {
		return nil, err
	}
	return rows[0], nil
}

// Main feeds ids through @main in one call and returns the logits after each of them.
func (s *StockSession) Main(ids []int) ([][]float32, error) {
	out, err := s.run(s.main, ids)
	if err != nil {
		return nil, err
	}
	l := out[graph.OutLogits]
	if want := len(ids) * s.vocab; len(l.F) != want {
		return nil, fmt.Errorf("@main returned %d logits for %d tokens, want %d", len(l.F), len(ids), want)
	}
	rows := make([][]float32, len(ids))
	for i := range rows {
		rows[i] = slices.Clone(l.F[i*s.vocab : (i+1)*s.vocab])
	}
	return rows, nil
}

// Prefill feeds a prompt as the runner does with a prefill entrypoint: all tokens but the last
// through @prefill in one call, the last through @main; it returns the logits after the last.
func (s *StockSession) Prefill(ids []int) ([]float32, error) {
	if s.fill == nil {
		return nil, fmt.Errorf("session: the module has no @prefill")
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("prefill of no tokens")
	}
	if len(ids) > 1 {
		if _, err := s.run(s.fill, ids[:len(ids)-1]); err != nil {
			return nil, err
		}
	}
	return s.Step(ids[len(ids)-1])
}
