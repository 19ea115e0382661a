package card

import (
	"fmt"
	"io"

	"qconv/oracle"
)

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
