package oracle

import (
	"fmt"
	"slices"
)

// count adds one prompt's report to the totals; it is the only place the gate's totals are
// summed, so a report built by Gate and a report checked by CheckTotals add up the same way.
func (t *GateTotals) count(pr GatePromptReport) {
	t.Prompts++
	if pr.Passed {
		t.PromptsPassed++
	} else if t.FirstFailure == "" && len(pr.Failures) > 0 {
		t.FirstFailure = fmt.Sprintf("prompt %s: %s", pr.Prompt.Name, pr.Failures[0])
	}
	t.TeacherForcedMatched += pr.TeacherForcedMatched
	t.TeacherForcedConfident += pr.TeacherForcedConfident
	t.TeacherForcedSteps += pr.TeacherForcedSteps
	t.GreedyMatch += pr.GreedyMatch
	t.GreedySteps += len(pr.CandGen)
	t.LowMarginSteps += pr.LowMarginSteps
	if !(pr.PrefillCosine >= t.MinPrefillCosine) {
		t.MinPrefillCosine = pr.PrefillCosine
	}
}

// CheckTotals recounts a report's totals and verdict from its prompts, as Gate adds them up, and
// says where a report (read back from a bundle's metadata) disagrees with its own prompts.
func (r *GateReport) CheckTotals() error {
	if len(r.Prompts) == 0 {
		return fmt.Errorf("no prompts")
	}
	want := GateTotals{MinPrefillCosine: 1}
	passed := true
	for _, p := range r.Prompts {
		want.count(p)
		passed = passed && p.Passed
	}
	want.Stats = r.Totals.Stats // held to the prompts' figures by checkStatsTotals
	if err := checkStatsTotals(r, &want, &passed); err != nil {
		return err
	}
	if want != r.Totals {
		return fmt.Errorf("totals %+v, the prompts add up to %+v", r.Totals, want)
	}
	if passed != r.Passed {
		return fmt.Errorf("passed %v, the prompts say %v", r.Passed, passed)
	}
	return nil
}

// checkStatsTotals holds a report's overall distribution figures to its prompts' (positions
// add up) and its overall failures to its options' thresholds, and folds those failures into
// the verdict being recomputed.
func checkStatsTotals(r *GateReport, want *GateTotals, passed *bool) error {
	n, have := 0, 0
	for _, p := range r.Prompts {
		if p.Stats != nil {
			n += p.Stats.Positions
			have++
		}
	}
	switch t := r.Totals.Stats; {
	case t == nil && have > 0:
		return fmt.Errorf("prompts carry distribution figures but the totals do not")
	case t != nil && t.Positions != n:
		return fmt.Errorf("distribution figures over %d positions, the prompts add up to %d", t.Positions, n)
	}
	if f := r.Options.StatFailures(r.Totals.Stats); !slices.Equal(f, r.Failures) {
		return fmt.Errorf("overall failures %q, the thresholds give %q", r.Failures, f)
	}
	if len(r.Failures) > 0 {
		*passed = false
		if want.FirstFailure == "" {
			want.FirstFailure = r.Failures[0]
		}
	}
	return nil
}
