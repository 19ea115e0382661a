package gating

import (
	"context"

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

// WithContext is c stopped once ctx is cancelled.
func WithContext(ctx context.Context, c oracle.Candidate) oracle.Candidate {
	return ctxCandidate{ctx, c}
}
