package export

import (
	"context"
	"fmt"
	"qconv/gating"
	"qconv/oracle"
)

func (j *job) gateStock(ctx context.Context, ref *oracle.Model, prompts []oracle.GatePrompt, opt Options) error {
	rep, cc, err := gating.GateStock(ctx, j.shipped, ref, gating.FitPrompts(prompts, j.contract, j.recipe.Context, opt.Gate.Tokens), opt.Gate)
	if err != nil {
		return fmt.Errorf("gating %s: %w", j.name, err)
	}
	j.report, j.extra = rep, cc
	s := gating.Summarize(rep)
	s.Passed = s.Passed && cc.Passed
	if !cc.Passed && s.FirstFailure == "" {
		s.FirstFailure = "decoding after @prefill (or a whole-prompt @main call) differs from decoding token by token at a confident step"
	}
	j.result.Gate = s
	j.result.Report = rep
	return nil
}
