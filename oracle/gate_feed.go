package oracle

import (
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
)

// SequenceCandidate is a Candidate that can also be fed many tokens in one call, reading each
// weight once for all of them instead of once per token. Gate feeds it the prompt, and the
// reference's continuation when it has to be teacher-forced, through Feed; Step otherwise.
type SequenceCandidate interface {
	Candidate
	// Feed feeds ids in order and calls row(i, logits) with the logits for the position after
	// ids[i], for every i in order: each row bit-identical to what Step(ids[i]) would return at
	// that point. logits is valid only during the call (the candidate may reuse it). An error
	// from row stops the feed and is returned; the candidate's position is then undefined.
	Feed(ids []int, row func(i int, logits []float32) error) error
}

// errJudgeStopped ends a prompt feed whose reference has failed; Gate reports the reference's
// error.
var errJudgeStopped = errors.New("the reference failed: candidate stopped")

// feedPrompt feeds the prompt to cand, handing each row to cp.prompt as it comes, through Feed
// when cand has it. It stops early, with errWeakStop, once weak is set, and without an error once
// the judge has seen the reference fail (cp.prompt.finish then says so).
func (cp *candPass) feedPrompt(cand Candidate, ids []int, weak *atomic.Bool) (err error) {
	pj := &cp.prompt
	defer func() {
		if err != nil {
			pj.wait() // no worker outlives a gate that stops here
		}
	}()
	if sc, ok := cand.(SequenceCandidate); ok {
		next := 0
		err := sc.Feed(ids, func(i int, logits []float32) error {
			if i != next {
				return fmt.Errorf("candidate fed row %d, want row %d", i, next)
			}
			next++
			if weak.Load() {
				return errWeakStop
			}
			if pj.add(logits, true); pj.failed {
				return errJudgeStopped
			}
			return nil
		})
		switch {
		case errors.Is(err, errJudgeStopped):
			return nil
		case err != nil:
			return err
		case next != len(ids):
			return fmt.Errorf("candidate fed %d rows for %d tokens", next, len(ids))
		}
		return nil
	}
	for _, id := range ids {
		if weak.Load() {
			return errWeakStop
		}
		row, err := cand.Step(id)
		if err != nil {
			return err
		}
		if pj.add(row, false); pj.failed {
			return nil
		}
	}
	return nil
}

// feedAll feeds ids to cand and returns a copy of every row, through Feed when cand has it.
func feedAll(cand Candidate, ids []int) ([][]float32, error) {
	out := make([][]float32, 0, len(ids))
	if sc, ok := cand.(SequenceCandidate); ok {
		err := sc.Feed(ids, func(i int, logits []float32) error {
			if i != len(out) {
				return fmt.Errorf("candidate fed row %d, want row %d", i, len(out))
			}
			out = append(out, slices.Clone(logits))
			return nil
		})
		if err == nil && len(out) != len(ids) {
			err = fmt.Errorf("candidate fed %d rows for %d tokens", len(out), len(ids))
		}
		return out, err
	}
	for _, id := range ids {
		row, err := cand.Step(id)
		if err != nil {
			return nil, err
		}
		out = append(out, row)
	}
	return out, nil
}
