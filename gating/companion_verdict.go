package gating

import (
	"qconv/bundle"
	"qconv/oracle"
)

// companionFailure is the verdict a prefill companion gets when decoding after it differs from
// decoding without it where the decode-only margin was confident (a divergence at a tie passes,
// as in the gate).
const companionFailure = "decoding after the prefill companion differs from decoding without it at a confident step"

// SummaryOf is the one verdict for a bundle's gate: the report's summary, and for a prefill
// companion (cc non-nil) the decode partner's report joined with the companion check. export
// records it, and the card and inspect recompute it from the same inputs to check the record.
func SummaryOf(rep *oracle.GateReport, cc *bundle.CompanionCheck) bundle.GateSummary {
	s := Summarize(rep)
	if cc != nil {
		s.Passed = s.Passed && cc.Passed
		if !cc.Passed && s.FirstFailure == "" {
			s.FirstFailure = companionFailure
		}
	}
	return s
}
