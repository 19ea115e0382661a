package gating

import (
	"fmt"
	"qconv/bundle"
	"qconv/graph"
	"qconv/graph/interp"
	"qconv/internal/kernels"
	"qconv/oracle"
	"qconv/recipe"
	"slices"
)

// sessionCandidate adapts a graph session to the gate.
type sessionCandidate struct{ s *interp.Session }

func (c sessionCandidate) Step(id int) ([]float32, error) { return c.s.Step(id) }

// Feed is the gate's batched teacher-forced path (interp.Session.Feed).
func (c sessionCandidate) Feed(ids []int, row func(i int, logits []float32) error) error {
	return c.s.Feed(ids, row)
}

func (c sessionCandidate) Fork() (oracle.Candidate, error) {
	f, err := c.s.Fork()
	if err != nil {
		return nil, err
	}
	return sessionCandidate{f}, nil
}

// CheckCompanion runs every prompt long enough for a block through the decode graph alone and
// through the prefill companion then the decode graph, and requires the same row after the
// prompt (cosine at least MinPathCosine) and identical greedy tokens, or a first
// divergence at a tie (decode-only margin below MinMargin), as the gate does.
//
// The decode-only side is the decode graph's free greedy rollout, which the decode bundle's gate
// already ran on the same bytes: when decodeGate holds the prompt, its candidate ids, margins and
// row after the prompt are used instead of decoding again (then MaxLogitDiff covers that row only).
func CheckCompanion(dec, pre *graph.Module, prompts []oracle.GatePrompt, opt oracle.GateOptions, decodeGate *oracle.GateReport) (*bundle.CompanionCheck, error) {
	tokens, minMargin := opt.Tokens, opt.MinMargin
	cc := &bundle.CompanionCheck{Passed: true, Prompts: []bundle.CompanionPrompt{}}
	for _, p := range prompts {
		if len(p.IDs) < recipe.PrefillTokens {
			continue
		}
		cp := bundle.CompanionPrompt{Name: p.Name, Blocks: len(p.IDs) / recipe.PrefillTokens, FirstDivergence: -1, Passed: true}
		b, err := interp.NewSession(dec, pre)
		if err != nil {
			return nil, err
		}
		lb, err := b.Prefill(p.IDs)
		if err != nil {
			return nil, err
		}
		var a *interp.Session
		var la []float32
		ids, margins := decodeOnlyRollout(decodeGate, p, tokens)
		if ids == nil {
			if a, err = interp.NewSession(dec, nil); err != nil {
				return nil, err
			}
			if la, err = a.Prefill(p.IDs); err != nil {
				return nil, err
			}
		} else {
			cp.DecodeOnlyFrom = "the decode bundle's gate (same bytes, same prompt)"
		}
		end := la
		if a == nil {
			end = decodeOnlyEndRow(decodeGate, p)
		}
		checkEndRow(&cp, end, lb)
		for k := 0; k < tokens; k++ {
			var ia int
			var margin float64
			if a != nil {
				ia, margin = kernels.Argmax(la), oracle.Margin(la)
			} else {
				ia, margin = ids[k], margins[k]
			}
			ib := kernels.Argmax(lb)
			cp.DecodeOnly, cp.WithPrefill = append(cp.DecodeOnly, ia), append(cp.WithPrefill, ib)
			if cp.FirstDivergence < 0 {
				if a != nil {
					cp.MaxLogitDiff = max(cp.MaxLogitDiff, MaxDiff(la, lb))
				}
				if ia != ib {
					cp.FirstDivergence, cp.DivergenceMargin = k, margin
					cp.Passed = cp.Passed && margin < minMargin
				}
			}
			if k == tokens-1 || cp.FirstDivergence >= 0 && a == nil {
				// Without our own decode-only session the paths cannot be compared past a divergence.
				if k < tokens-1 {
					cp.DecodeOnly = append(cp.DecodeOnly, ids[k+1:]...)
				}
				break
			}
			if a != nil {
				if la, err = a.Step(ia); err != nil {
					return nil, err
				}
			}
			if lb, err = b.Step(ib); err != nil {
				return nil, err
			}
		}
		cp.Identical = slices.Equal(cp.DecodeOnly, cp.WithPrefill)
		if !cp.Passed {
			cc.Passed = false
		}
		cc.Prompts = append(cc.Prompts, cp)
	}
	return cc, nil
}

// decodeOnlyRollout returns the decode graph's free greedy ids and their margins for prompt p
// from its gate report, or nil when the report does not hold this prompt with enough steps.
func decodeOnlyRollout(rep *oracle.GateReport, p oracle.GatePrompt, tokens int) ([]int, []float64) {
	if rep == nil {
		return nil, nil
	}
	for _, pr := range rep.Prompts {
		if pr.Prompt.Name != p.Name || !slices.Equal(pr.Prompt.IDs, p.IDs) || len(pr.CandGen) < tokens {
			continue
		}
		var margins []float64
		for _, st := range pr.Steps {
			if st.Phase == "greedy" {
				margins = append(margins, st.CandMargin)
			}
		}
		if len(margins) < tokens {
			return nil, nil
		}
		return pr.CandGen[:tokens], margins[:tokens]
	}
	return nil, nil
}

// decodeOnlyEndRow is the decode graph's row after prompt p from its gate report (nil when the
// report does not hold it).
func decodeOnlyEndRow(rep *oracle.GateReport, p oracle.GatePrompt) []float32 {
	if rep == nil {
		return nil
	}
	for _, pr := range rep.Prompts {
		if pr.Prompt.Name == p.Name && slices.Equal(pr.Prompt.IDs, p.IDs) {
			return pr.EndRow
		}
	}
	return nil
}

// FitPrompts drops prompts whose tokens and generation do not fit a static context (host-cache
// graphs).
func FitPrompts(prompts []oracle.GatePrompt, c graph.Contract, context, tokens int) []oracle.GatePrompt {
	if c == graph.Pipelined || c == graph.Stock {
		return prompts // dynamic KV: no static context to fit
	}
	var out []oracle.GatePrompt
	for _, p := range prompts {
		if len(p.IDs)+tokens+1 <= context {
			out = append(out, p)
		}
	}
	return out
}

// Summarize is a gate report's verdict and counts as a bundle records them.
func Summarize(r *oracle.GateReport) bundle.GateSummary {
	t := r.Totals
	return bundle.GateSummary{
		Passed: r.Passed, Prompts: t.Prompts,
		TeacherForced:    fmt.Sprintf("%d/%d", t.TeacherForcedMatched, t.TeacherForcedConfident),
		Greedy:           fmt.Sprintf("%d/%d", t.GreedyMatch, t.GreedySteps),
		MinPrefillCosine: t.MinPrefillCosine, FirstFailure: t.FirstFailure, Stats: t.Stats,
		GateRecord: bundle.GateRecord{Weakened: bundle.WeakenedGate(r.Options)},
	}
}

// MaxDiff is the largest absolute difference between two logit rows.
func MaxDiff(a, b []float32) float64 {
	m := 0.0
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		if d < 0 {
			d = -d
		}
		m = max(m, d)
	}
	return m
}

// SessionCandidate is a graph session as the gate's candidate.
func SessionCandidate(s *interp.Session) oracle.Candidate { return sessionCandidate{s} }
