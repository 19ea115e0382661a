package gating

import (
	"context"
	"fmt"
	"slices"

	"qconv/bundle"
	"qconv/graph"
	"qconv/graph/interp"
	"qconv/internal/kernels"
	"qconv/oracle"
)

// The macos-stock target's gate: the shipped bytes' @main is gated like any decode graph (one
// token per call, teacher-forced and free greedy against the fp32 reference), and the prompt fed
// as Apple's runner feeds it must decode the same tokens: through @prefill (all but the last
// token in one call, the last through @main), and through @main in one call.

// stockCandidate adapts a stock session to the gate: one token per @main call.
type stockCandidate struct{ s *interp.StockSession }

func (c stockCandidate) Step(id int) ([]float32, error) { return c.s.Step(id) }

// Feed is the gate's batched teacher-forced path (interp.StockSession.Feed).
func (c stockCandidate) Feed(ids []int, row func(i int, logits []float32) error) error {
	return c.s.Feed(ids, row)
}

func (c stockCandidate) Fork() (oracle.Candidate, error) {
	f, err := c.s.Fork()
	if err != nil {
		return nil, err
	}
	return stockCandidate{f}, nil
}

// GateStock gates a stock-contract module: the gate report of @main, and the entrypoint check.
func GateStock(ctx context.Context, m *graph.Module, ref *oracle.Model, prompts []oracle.GatePrompt, opt oracle.GateOptions) (*oracle.GateReport, *bundle.CompanionCheck, error) {
	rep, err := oracle.Gate(ref, func() (oracle.Candidate, error) {
		s, err := interp.NewStockSession(m)
		if err != nil {
			return nil, err
		}
		return WithContext(ctx, stockCandidate{s}), nil
	}, prompts, opt)
	if err != nil {
		return nil, nil, err
	}
	cc, err := CheckStockEntrypoints(m, prompts, opt, rep)
	if err != nil {
		return nil, nil, err
	}
	return rep, cc, nil
}

// CheckStockEntrypoints feeds every prompt of two or more tokens the two ways Apple's runner may:
// "@prefill then @main" (the prompt but its last token through @prefill in one call) and "@main,
// whole prompt" (one call), then decodes greedily one token per @main call. Each must give the
// token-by-token rollout's ids (from decodeGate when it holds the prompt, else decoded here), or
// first diverge at a tie (token-by-token margin below MinMargin), as the ios-gpu companion check
// requires; and the row after the prompt must be the token-by-token row (cosine at least the
// MinPathCosine). Each prompt gives two rows, named "<prompt> (@prefill then @main)" and
// "<prompt> (@main, whole prompt)".
func CheckStockEntrypoints(m *graph.Module, prompts []oracle.GatePrompt, opt oracle.GateOptions, decodeGate *oracle.GateReport) (*bundle.CompanionCheck, error) {
	tokens, minMargin := opt.Tokens, opt.MinMargin
	cc := &bundle.CompanionCheck{Passed: true, Prompts: []bundle.CompanionPrompt{}}
	for _, p := range prompts {
		if len(p.IDs) < 2 {
			continue
		}
		ids, margins := decodeOnlyRollout(decodeGate, p, tokens)
		var from string
		var end []float32
		if ids == nil {
			var err error
			if ids, margins, end, err = stockStepRollout(m, p.IDs, tokens); err != nil {
				return nil, err
			}
		} else {
			from = "the gate of @main (same bytes, same prompt)"
			end = decodeOnlyEndRow(decodeGate, p)
		}
		for _, mode := range []string{"@prefill then @main", "@main, whole prompt"} {
			s, err := interp.NewStockSession(m)
			if err != nil {
				return nil, err
			}
			var l []float32
			if mode == "@prefill then @main" {
				if !s.HasPrefill() {
					return nil, fmt.Errorf("the module has no @prefill entrypoint")
				}
				l, err = s.Prefill(p.IDs)
			} else {
				var rows [][]float32
				rows, err = s.Main(p.IDs)
				if err == nil {
					l = rows[len(rows)-1]
				}
			}
			if err != nil {
				return nil, fmt.Errorf("prompt %s, %s: %w", p.Name, mode, err)
			}
			cp := bundle.CompanionPrompt{Name: p.Name + " (" + mode + ")", Blocks: 1, FirstDivergence: -1, Passed: true, DecodeOnlyFrom: from}
			checkEndRow(&cp, end, l)
			for k := 0; k < tokens; k++ {
				ib := kernels.Argmax(l)
				cp.WithPrefill = append(cp.WithPrefill, ib)
				if ib != ids[k] {
					cp.FirstDivergence, cp.DivergenceMargin = k, margins[k]
					cp.Passed = cp.Passed && margins[k] < minMargin
					break
				}
				if k < tokens-1 {
					if l, err = s.Step(ib); err != nil {
						return nil, err
					}
				}
			}
			cp.DecodeOnly = slices.Clone(ids[:tokens])
			cp.Identical = slices.Equal(cp.DecodeOnly, cp.WithPrefill)
			if !cp.Passed {
				cc.Passed = false
			}
			cc.Prompts = append(cc.Prompts, cp)
		}
	}
	return cc, nil
}

// stockStepRollout decodes prompt then tokens greedy ids one token per @main call, with margins,
// and returns the row after the prompt.
func stockStepRollout(m *graph.Module, prompt []int, tokens int) ([]int, []float64, []float32, error) {
	s, err := interp.NewStockSession(m)
	if err != nil {
		return nil, nil, nil, err
	}
	var l []float32
	for _, id := range prompt {
		if l, err = s.Step(id); err != nil {
			return nil, nil, nil, err
		}
	}
	end := slices.Clone(l)
	var ids []int
	var margins []float64
	for k := 0; k < tokens; k++ {
		ids, margins = append(ids, kernels.Argmax(l)), append(margins, oracle.Margin(l))
		if k < tokens-1 {
			if l, err = s.Step(ids[k]); err != nil {
				return nil, nil, nil, err
			}
		}
	}
	return ids, margins, end, nil
}
