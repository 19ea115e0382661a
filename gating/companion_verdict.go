package gating

import (
	"fmt"
	"qconv/bundle"
	"qconv/oracle"
)

// companionFailure is the verdict a prefill companion gets when decoding after it differs from
// decoding without it where the decode-only margin was confident (a divergence at a tie passes,
// as in the gate).
const companionFailure = "decoding after the prefill companion differs from decoding without it at a confident step"

// MinPathCosine is the floor on the cosine between the row a prompt reaches through a bundle's
// other entrypoint (the prefill companion, @prefill, whole-prompt @main) and its token-by-token
// row. Both paths compute the same function of the same bytes, in a different order of additions
// and, for the recurrence, through an exact multi-token form instead of the one-token body, so
// they agree to the compute dtype's rounding, not bit for bit. Measured on the trained fixture
// (export/stock_test.go logs them): bf16 paths down to 0.99989, fp16 paths above 0.99999; an
// attention that sees future keys in a multi-token call gave 0.9856 (cmd/qconv/foreign_test.go).
// The gate's MinCosine (0.9999, candidate against the fp32 reference) is too tight for bf16.
const MinPathCosine = 0.999

// endRowFailure is the verdict when the row a prompt reaches through the other path is not the
// token-by-token row (cosine below the gate's floor), whatever greedy decoding does after it.
const endRowFailure = "the prompt's last row through the prefill path differs from the token-by-token row"

// checkEndRow records the cosine and largest difference of the row after the prompt through the
// other path (got) against the token-by-token row (want, nil when not available), and fails the
// prompt below MinPathCosine.
func checkEndRow(cp *bundle.CompanionPrompt, want, got []float32) {
	if want == nil {
		return
	}
	c := oracle.RowCosine(want, got)
	cp.EndCosine = &c
	cp.MaxLogitDiff = max(cp.MaxLogitDiff, MaxDiff(want, got))
	if !(c >= MinPathCosine) {
		cp.Passed = false
	}
}

// companionFailureOf is the failure text of the first prompt cc fails.
func companionFailureOf(cc *bundle.CompanionCheck) string {
	for _, p := range cc.Prompts {
		if p.Passed {
			continue
		}
		if p.EndCosine != nil && !(*p.EndCosine >= MinPathCosine) {
			return endRowFailure
		}
		return companionFailure
	}
	return companionFailure
}

// SummaryOf is the one verdict for a bundle's gate: the report's summary, and for a prefill
// companion (cc non-nil) the decode partner's report joined with the companion check. export
// records it, and the card and inspect recompute it from the same inputs to check the record.
func SummaryOf(rep *oracle.GateReport, cc *bundle.CompanionCheck) bundle.GateSummary {
	s := Summarize(rep)
	if cc != nil {
		s.Passed = s.Passed && cc.Passed
		if !cc.Passed && s.FirstFailure == "" {
			s.FirstFailure = companionFailureOf(cc)
		}
	}
	return s
}

// CompanionLine is the one-line verdict of a companion or entrypoint check: whether it passed, the
// worst end-row cosine it measured, and the first failing prompt with its reason.
func CompanionLine(cc *bundle.CompanionCheck) string {
	worst, n := 1.0, 0
	for _, p := range cc.Prompts {
		if p.EndCosine != nil {
			worst, n = min(worst, *p.EndCosine), n+1
		}
	}
	s := fmt.Sprintf("prefill companion: decoding after it equals decoding without it: %v", cc.Passed)
	if n > 0 {
		s += fmt.Sprintf("; row after the prompt: worst cosine %.6f over %d paths (min %.6f)", worst, n, MinPathCosine)
	}
	for _, p := range cc.Prompts {
		if p.Passed {
			continue
		}
		why := companionFailureOf(&bundle.CompanionCheck{Prompts: []bundle.CompanionPrompt{p}})
		if p.EndCosine != nil && !(*p.EndCosine >= MinPathCosine) {
			why += fmt.Sprintf(" (cosine %.6f)", *p.EndCosine)
		} else if p.FirstDivergence >= 0 {
			why += fmt.Sprintf(" (step %d, margin %.3f)", p.FirstDivergence, p.DivergenceMargin)
		}
		s += "\n  first failure: prompt " + p.Name + ": " + why
		break
	}
	return s
}
