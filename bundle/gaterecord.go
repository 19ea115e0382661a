package bundle

import (
	"fmt"
	"strings"

	"qconv/oracle"
)

// GateRecord is what a bundle's gate summary says beyond the counts, so the record cannot
// overstate the gate: thresholds weaker than the published defaults are named next to the
// verdict. (A bundle published with --no-gate records passed false, skipped true: notGated.)
type GateRecord struct {
	// Weakened names each threshold weaker than the defaults ("" for a full-strength gate), e.g.
	// "min margin 0.3 (default 0.1); 4 tokens per prompt (default 16)".
	Weakened string `json:"weakened,omitempty"`
}

// NotGated is the summary of a bundle published with --no-gate: it did not pass a gate.
func NotGated() GateSummary { return GateSummary{Passed: false, Skipped: true} }

// WeakenedGate describes the thresholds of o that are weaker than oracle.DefaultGateOptions
// (more ties excused, a lower cosine floor, fewer decoded tokens), or "" when none is.
func WeakenedGate(o oracle.GateOptions) string {
	d := oracle.DefaultGateOptions()
	var w []string
	if o.MinMargin > d.MinMargin {
		w = append(w, fmt.Sprintf("min margin %g (default %g)", o.MinMargin, d.MinMargin))
	}
	if o.MinCosine < d.MinCosine {
		w = append(w, fmt.Sprintf("min cosine %g (default %g)", o.MinCosine, d.MinCosine))
	}
	if o.Tokens < d.Tokens {
		w = append(w, fmt.Sprintf("%d tokens per prompt (default %d)", o.Tokens, d.Tokens))
	}
	return strings.Join(w, "; ")
}

// GateVerdict is the one-line verdict every reader prints for a recorded gate: "not gated",
// "passed", "FAILED", with "(WEAKENED gate: ...)" when the thresholds were weaker than the
// defaults.
func GateVerdict(g *GateSummary) string {
	if g == nil || g.Skipped {
		return "not gated"
	}
	v := "FAILED"
	if g.Passed {
		v = "passed"
	}
	if g.Weakened != "" {
		v += " (WEAKENED gate: " + g.Weakened + ")"
	}
	return v
}

// Equal compares two summaries field by field (Stats by value).
func (s GateSummary) Equal(o GateSummary) bool {
	a, b := s.Stats, o.Stats
	s.Stats, o.Stats = nil, nil
	if s != o || (a == nil) != (b == nil) {
		return false
	}
	return a == nil || *a == *b
}
