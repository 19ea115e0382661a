package gating

import (
	"testing"

	"qconv/bundle"
	"qconv/oracle"
)

func TestGateSummaryOfCompanion(t *testing.T) {
	passed := &oracle.GateReport{Passed: true, Totals: oracle.GateTotals{Prompts: 2, TeacherForcedMatched: 30, TeacherForcedConfident: 30, GreedyMatch: 32, GreedySteps: 32, MinPrefillCosine: 0.99999}}
	failed := &oracle.GateReport{Passed: false, Totals: oracle.GateTotals{Prompts: 2, TeacherForcedMatched: 29, TeacherForcedConfident: 30, FirstFailure: "prompt p1: teacher-forced top-1 differs at step 3"}}
	for _, c := range []struct {
		name  string
		rep   *oracle.GateReport
		cc    *bundle.CompanionCheck
		pass  bool
		first string
	}{
		{"decode bundle", passed, nil, true, ""},
		{"companion identical", passed, &bundle.CompanionCheck{Passed: true}, true, ""},
		{"companion diverges", passed, &bundle.CompanionCheck{Passed: false}, false, companionFailure},
		// The partner's own failure is the first one; the companion does not hide it.
		{"partner failed", failed, &bundle.CompanionCheck{Passed: false}, false, failed.Totals.FirstFailure},
		{"partner failed, companion fine", failed, &bundle.CompanionCheck{Passed: true}, false, failed.Totals.FirstFailure},
	} {
		s := SummaryOf(c.rep, c.cc)
		if s.Passed != c.pass || s.FirstFailure != c.first {
			t.Errorf("%s: passed %v, first failure %q; want %v, %q", c.name, s.Passed, s.FirstFailure, c.pass, c.first)
		}
		if c.rep == passed && s.Greedy != "32/32" {
			t.Errorf("%s: greedy %q, want 32/32 from the partner's report", c.name, s.Greedy)
		}
	}
}
