package oracle

import (
	"strings"
	"testing"
)

func TestCheckTotals(t *testing.T) {
	prompts := []GatePromptReport{
		{Prompt: GatePrompt{Name: "a"}, Passed: true, TeacherForcedMatched: 5, TeacherForcedConfident: 5, TeacherForcedSteps: 6, GreedyMatch: 3, CandGen: []int{1, 2, 3}, PrefillCosine: 0.99995},
		{Prompt: GatePrompt{Name: "b"}, Passed: false, Failures: []string{"greedy differs at step 2"}, TeacherForcedMatched: 4, TeacherForcedConfident: 5, TeacherForcedSteps: 5, GreedyMatch: 1, CandGen: []int{4, 5}, LowMarginSteps: 1, PrefillCosine: 0.9999},
	}
	rep := &GateReport{Passed: true, Totals: GateTotals{MinPrefillCosine: 1}}
	for _, p := range prompts {
		rep.add(p)
	}
	want := GateTotals{Prompts: 2, PromptsPassed: 1, TeacherForcedMatched: 9, TeacherForcedConfident: 10, TeacherForcedSteps: 11, GreedyMatch: 4, GreedySteps: 5, LowMarginSteps: 1, MinPrefillCosine: 0.9999, FirstFailure: "prompt b: greedy differs at step 2"}
	if rep.Totals != want || rep.Passed {
		t.Fatalf("add: totals %+v passed %v, want %+v passed false", rep.Totals, rep.Passed, want)
	}
	if err := rep.CheckTotals(); err != nil {
		t.Fatalf("CheckTotals on the gate's own report: %v", err)
	}
	tampered := *rep
	tampered.Totals.GreedyMatch = 5
	if err := tampered.CheckTotals(); err == nil || !strings.Contains(err.Error(), "add up to") {
		t.Errorf("tampered greedy count: %v", err)
	}
	tampered = *rep
	tampered.Passed = true
	if err := tampered.CheckTotals(); err == nil || !strings.Contains(err.Error(), "passed true") {
		t.Errorf("tampered verdict: %v", err)
	}
	if err := (&GateReport{}).CheckTotals(); err == nil {
		t.Error("a report without prompts passed CheckTotals")
	}
}
