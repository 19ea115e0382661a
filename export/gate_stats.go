package export

import (
	"fmt"
	"io"
	"slices"

	"qconv/internal/exitcode"
	"qconv/oracle"
)

// Equal compares two summaries field by field (Stats by value).
func (s GateSummary) Equal(o GateSummary) bool {
	a, b := s.Stats, o.Stats
	s.Stats, o.Stats = nil, nil
	if s != o || (a == nil) != (b == nil) {
		return false
	}
	return a == nil || *a == *b
}

// checkStatsTotals holds a report's overall distribution figures to its prompts' (positions
// add up) and its overall failures to its options' thresholds, and folds those failures into
// the verdict being recomputed.
func checkStatsTotals(r *oracle.GateReport, want *oracle.GateTotals, passed *bool) error {
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

// gateError classifies an error from oracle.Gate: prompts too weak for the checkpoint are bad
// input (exit 2), not a failed gate and not our bug.
func gateError(err error) error {
	if oracle.IsWeakPrompts(err) {
		return exitcode.Bad(err)
	}
	return err
}

// cardStatsHeader and cardStatsCells are the per-prompt distribution columns of the card.
var cardStatsHeader = []string{"KLD mean / max", "same top-1"}

func cardStatsCells(s *oracle.GateStats) []string {
	if s == nil {
		return []string{"—", "—"}
	}
	return []string{fmt.Sprintf("%.6f / %.6f", s.KLDMean, s.KLDMax), fmt.Sprintf("%.2f%%", s.SameTop1)}
}

// writeCardStats is the card's sentence of overall distribution figures.
func writeCardStats(w io.Writer, s *oracle.GateStats) {
	if s == nil {
		return
	}
	fmt.Fprintf(w, "Distribution over %d teacher-forced positions (KL divergence of the bundle from the fp32 reference in nats, as `llama-perplexity --kl-divergence` reports it; see docs/gate.md): mean %.6f, p99 %.6f, max %.6f; same top-1 %.2f%%; Δp of the reference's top token mean %+.4f, RMS %.4f; worst logit cosine %.6f.\n\n",
		s.Positions, s.KLDMean, s.KLDP99, s.KLDMax, s.SameTop1, s.DeltaPMean, s.DeltaPRMS, s.MinCosine)
}
