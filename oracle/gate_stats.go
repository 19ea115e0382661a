package oracle

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"qconv/internal/kernels"
)

// DefaultMinConfident is the smallest number of confident teacher-forced positions (reference
// top-2 margin at least MinMargin) a prompt set must give for the gate to judge anything. Below
// it the gate has not looked, and Gate returns a *WeakPromptsError instead of a verdict.
const DefaultMinConfident = 32

// maxFailureMessages bounds the failures listed per prompt; the rest are counted.
const maxFailureMessages = 8

// WeakPromptsError says the prompt set gave the reference too few confident positions: a pass
// would be vacuous. Callers map it to bad input (exit 2).
type WeakPromptsError struct {
	Confident, Min int
	Report         *GateReport // the measurements made, for the record
}

func (e *WeakPromptsError) Error() string {
	return fmt.Sprintf("gate prompts too weak for this checkpoint: %d confident teacher-forced positions (reference top-2 margin >= %g), need at least %d; give longer or more predictable --gate-prompts, or --gate-min-confident 0 to measure without judging",
		e.Confident, e.Report.Options.MinMargin, e.Min)
}

// IsWeakPrompts reports whether err is (or wraps) a *WeakPromptsError.
func IsWeakPrompts(err error) bool {
	var w *WeakPromptsError
	return errors.As(err, &w)
}

// GateStats are distribution figures over teacher-forced positions (prompt and decode: the
// candidate and the reference fed the same tokens), as llama.cpp's `llama-perplexity
// --kl-divergence` reports them: KL divergence of the candidate's next-token distribution from
// the reference's, KL(P_ref || P_cand) in nats; "same top" (both top-1 equal, any margin); Δp =
// P_cand(t) − P_ref(t) for the reference's top token t. Rows with a non-finite candidate logit
// are counted in NonFinite and left out of the other figures (they already fail the gate).
type GateStats struct {
	Positions  int     `json:"positions"`
	NonFinite  int     `json:"non_finite_positions,omitempty"`
	KLDMean    float64 `json:"kld_mean"`
	KLDP99     float64 `json:"kld_p99"` // nearest-rank 99th percentile
	KLDMax     float64 `json:"kld_max"`
	KLDMaxPos  int     `json:"kld_max_pos"`
	SameTop1   float64 `json:"same_top1_pct"`
	DeltaPMean float64 `json:"delta_p_mean"`
	DeltaPRMS  float64 `json:"delta_p_rms"`
	// MinCosine is the worst cosine of one position's candidate logits with the reference's.
	MinCosine    float64 `json:"min_logit_cosine"`
	MinCosinePos int     `json:"min_logit_cosine_pos"`
}

// statsAcc accumulates GateStats; klds is kept for the percentile.
type statsAcc struct {
	klds               []float64
	sumDP, sumDP2      float64
	same, n, nonFinite int
	kldMax             float64
	kldMaxPos          int
	minCos             float64
	minCosPos          int
	started            bool
}

// add counts one judged position and returns its KL divergence (0 for a non-finite row).
func (a *statsAcc) add(pos, refTop int, j rowJudgement) float64 {
	if !a.started {
		a.minCos, a.started = 2, true
	}
	if j.nonFinite {
		a.nonFinite++
		return 0
	}
	a.n++
	a.klds = append(a.klds, j.kld)
	if j.kld > a.kldMax || a.n == 1 {
		a.kldMax, a.kldMaxPos = j.kld, pos
	}
	a.sumDP += j.dp
	a.sumDP2 += j.dp * j.dp
	if refTop == j.candID {
		a.same++
	}
	if j.cos < a.minCos {
		a.minCos, a.minCosPos = j.cos, pos
	}
	return j.kld
}

// merge folds b (another prompt) into a; positions keep b's numbering, so callers merge only
// for totals, where positions name no prompt.
func (a *statsAcc) merge(b *statsAcc) {
	if !b.started {
		return
	}
	if !a.started {
		a.minCos, a.started = 2, true
	}
	a.klds = append(a.klds, b.klds...)
	a.sumDP += b.sumDP
	a.sumDP2 += b.sumDP2
	a.same += b.same
	a.nonFinite += b.nonFinite
	if b.n > 0 && (a.n == 0 || b.kldMax > a.kldMax) {
		a.kldMax, a.kldMaxPos = b.kldMax, b.kldMaxPos
	}
	if b.minCos < a.minCos {
		a.minCos, a.minCosPos = b.minCos, b.minCosPos
	}
	a.n += b.n
}

func (a *statsAcc) stats() *GateStats {
	s := &GateStats{Positions: a.n + a.nonFinite, NonFinite: a.nonFinite, KLDMaxPos: -1, MinCosinePos: -1}
	if a.n == 0 {
		return s
	}
	var sum float64
	for _, k := range a.klds {
		sum += k
	}
	sorted := slices.Clone(a.klds)
	slices.Sort(sorted)
	rank := int(math.Ceil(0.99*float64(len(sorted)))) - 1
	n := float64(a.n)
	s.KLDMean = sum / n
	s.KLDP99 = sorted[max(rank, 0)]
	s.KLDMax, s.KLDMaxPos = a.kldMax, a.kldMaxPos
	s.SameTop1 = 100 * float64(a.same) / n
	s.DeltaPMean = a.sumDP / n
	s.DeltaPRMS = math.Sqrt(a.sumDP2 / n)
	s.MinCosine, s.MinCosinePos = finite(a.minCos), a.minCosPos
	return s
}

// rowStats returns KL(P_ref || P_cand) in nats, Δp of the reference's top token and the logit
// cosine of one position, in float64.
func rowStats(ref, cand []float32) (kld, dp, cos float64) {
	return rowStatsLSE(ref, cand, logSumExp(ref), logSumExp(cand))
}

// rowStatsLSE is rowStats given the rows' log-sum-exps lr and lc.
func rowStatsLSE(ref, cand []float32, lr, lc float64) (kld, dp, cos float64) {
	top := kernels.Argmax(ref)
	var ab, aa, bb float64
	for i := range ref {
		x, y := float64(ref[i]), float64(cand[i])
		lpr, lpc := x-lr, y-lc
		if p := math.Exp(lpr); p > 0 {
			kld += p * (lpr - lpc)
		}
		ab += x * y
		aa += x * x
		bb += y * y
	}
	dp = math.Exp(float64(cand[top])-lc) - math.Exp(float64(ref[top])-lr)
	cos = ab / math.Sqrt(aa*bb)
	if math.IsNaN(cos) {
		cos = 0
	}
	return max(kld, 0), dp, cos
}

func logSumExp(v []float32) float64 {
	mx := math.Inf(-1)
	for _, x := range v {
		mx = math.Max(mx, float64(x))
	}
	var s float64
	for _, x := range v {
		s += math.Exp(float64(x) - mx)
	}
	return mx + math.Log(s)
}

// StatFailures applies the optional distribution thresholds (zero: not set) to the overall
// figures and returns one failure per threshold exceeded.
func (opt GateOptions) StatFailures(s *GateStats) []string {
	var out []string
	if s == nil {
		return nil
	}
	if opt.MaxKLD > 0 && !(s.KLDMean <= opt.MaxKLD) {
		out = append(out, fmt.Sprintf("mean KL divergence %.6g > --gate-max-kld %g", s.KLDMean, opt.MaxKLD))
	}
	if opt.MaxKLDP99 > 0 && !(s.KLDP99 <= opt.MaxKLDP99) {
		out = append(out, fmt.Sprintf("p99 KL divergence %.6g > --gate-max-kld-p99 %g", s.KLDP99, opt.MaxKLDP99))
	}
	if opt.MinSameTop1 > 0 && !(s.SameTop1 >= opt.MinSameTop1) {
		out = append(out, fmt.Sprintf("same top-1 %.3f%% < --gate-min-same-top %g%%", s.SameTop1, opt.MinSameTop1))
	}
	if opt.MaxDeltaPRMS > 0 && !(s.DeltaPRMS <= opt.MaxDeltaPRMS) {
		out = append(out, fmt.Sprintf("RMS Δp %.6g > --gate-max-delta-p-rms %g", s.DeltaPRMS, opt.MaxDeltaPRMS))
	}
	return out
}

// StatsLine is the figures in one line, llama.cpp's order.
func (s *GateStats) StatsLine() string {
	if s == nil {
		return ""
	}
	return fmt.Sprintf("KLD mean %.6f p99 %.6f max %.6f; same top-1 %.2f%%; Δp mean %+.4f RMS %.4f; worst logit cosine %.6f (%d positions)",
		s.KLDMean, s.KLDP99, s.KLDMax, s.SameTop1, s.DeltaPMean, s.DeltaPRMS, s.MinCosine, s.Positions)
}

// finish computes the overall figures, applies the optional thresholds and the minimum of
// confident positions.
func (r *GateReport) finish(opt GateOptions) (*GateReport, error) {
	if r.acc != nil {
		r.Totals.Stats = r.acc.stats()
		r.Totals.Stats.KLDMaxPos, r.Totals.Stats.MinCosinePos = -1, -1 // positions name no prompt here
	}
	for _, f := range opt.StatFailures(r.Totals.Stats) {
		r.Passed = false
		r.Failures = append(r.Failures, f)
		if r.Totals.FirstFailure == "" {
			r.Totals.FirstFailure = f
		}
	}
	if c := r.Totals.TeacherForcedConfident; c < opt.MinConfident {
		return nil, &WeakPromptsError{Confident: c, Min: opt.MinConfident, Report: r}
	}
	return r, nil
}
