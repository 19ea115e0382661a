package gating

import (
	"context"

	"qconv/graph/interp"
	"qconv/oracle"
)

// ctxCandidate stops a gate once ctx is cancelled (Ctrl-C, SIGTERM): its next step fails with
// ctx's error, so an interrupted export exits promptly instead of finishing a long gate first.
type ctxCandidate struct {
	ctx context.Context
	c   oracle.Candidate
}

func (c ctxCandidate) Step(id int) ([]float32, error) {
	if err := c.ctx.Err(); err != nil {
		return nil, err
	}
	return c.c.Step(id)
}

func (c ctxCandidate) Fork() (oracle.Candidate, error) {
	f, err := c.c.Fork()
	if err != nil {
		return nil, err
	}
	return ctxCandidate{c.ctx, f}, nil
}

// The adapters offer the gate's batched path; the context wrapper forwards it.
var (
	_ oracle.SequenceCandidate = sessionCandidate{}
	_ oracle.SequenceCandidate = stockCandidate{}
	_ oracle.SequenceCandidate = ctxCandidate{}
)

// Feed forwards to c's Feed one chunk of interp.FeedChunk ids at a time, checking ctx before
// each chunk; a candidate without Feed is stepped, checking ctx before each step.
func (c ctxCandidate) Feed(ids []int, row func(i int, logits []float32) error) error {
	f, batched := c.c.(oracle.SequenceCandidate)
	for i := 0; i < len(ids); {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		if !batched {
			l, err := c.c.Step(ids[i])
			if err != nil {
				return err
			}
			if err := row(i, l); err != nil {
				return err
			}
			i++
			continue
		}
		n, at := min(max(interp.FeedChunk, 1), len(ids)-i), i
		if err := f.Feed(ids[i:i+n], func(j int, l []float32) error { return row(at+j, l) }); err != nil {
			return err
		}
		i += n
	}
	return nil
}

// WithContext is c stopped once ctx is cancelled.
func WithContext(ctx context.Context, c oracle.Candidate) oracle.Candidate {
	return ctxCandidate{ctx, c}
}
