package oracle

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// One position's figures against values worked by hand: P_ref = (1/4, 3/4), P_cand = (1/2, 1/2).
func TestRowStats(t *testing.T) {
	ref := []float32{0, float32(math.Log(3))}
	cand := []float32{1, 1}
	kld, dp, cos := rowStats(ref, cand)
	want := 0.25*math.Log(0.25/0.5) + 0.75*math.Log(0.75/0.5)
	if math.Abs(kld-want) > 1e-7 || math.Abs(dp-(-0.25)) > 1e-7 || math.Abs(cos-math.Sqrt(0.5)) > 1e-7 {
		t.Errorf("kld %g (want %g), Δp %g (want -0.25), cosine %g (want %g)", kld, want, dp, cos, math.Sqrt(0.5))
	}
	if kld, dp, _ := rowStats(ref, ref); kld != 0 || dp != 0 {
		t.Errorf("a row against itself: kld %g Δp %g", kld, dp)
	}
}

// Aggregation: nearest-rank p99, means, RMS, same-top-1 and non-finite rows.
func TestStatsAccumulate(t *testing.T) {
	var a statsAcc
	for i := 1; i <= 100; i++ {
		a.add(i, 0, judgeRow([]float32{1, 0}, []float32{1, 0}))
		a.klds[len(a.klds)-1] = float64(i) // the kld of position i is i, for the percentile
	}
	a.add(101, 1, judgeRow([]float32{0, 1}, []float32{float32(math.NaN()), 0}))
	s := a.stats()
	if s.Positions != 101 || s.NonFinite != 1 || s.KLDP99 != 99 || s.KLDMean != 50.5 || s.SameTop1 != 100 || s.DeltaPRMS != 0 || s.MinCosine != 1 {
		t.Errorf("%+v", *s)
	}
	opt := GateOptions{MaxKLD: 50, MaxKLDP99: 100, MinSameTop1: 100, MaxDeltaPRMS: 0.1}
	if f := opt.StatFailures(s); len(f) != 1 {
		t.Errorf("failures %q, want only the mean KLD's", f)
	}
}

// A gate whose prompts give too few confident positions is a WeakPromptsError, with the report.
func TestGateWeakPrompts(t *testing.T) {
	m, prompts, _ := gateFixture(t)
	opt := DefaultGateOptions()
	_, err := Gate(m, func() (Candidate, error) { return &refCandidate{m: m, st: m.NewState()}, nil }, prompts[:1], opt)
	var w *WeakPromptsError
	if !errors.As(err, &w) || w.Min != DefaultMinConfident || w.Confident >= DefaultMinConfident || w.Report == nil {
		t.Fatalf("err %v", err)
	}
	opt.MinConfident = 0
	rep, err := Gate(m, func() (Candidate, error) { return &refCandidate{m: m, st: m.NewState()}, nil }, prompts[:1], opt)
	if err != nil || !rep.Passed || rep.Totals.Stats.KLDMean != 0 || rep.Totals.Stats.SameTop1 != 100 {
		t.Fatalf("measured without a minimum: %v %+v", err, rep)
	}
}

// The judge takes the candidate row's log-sum-exp from Margin's pass of exp: it must equal
// logSumExp's bit for bit, or the recorded statistics would change.
func TestMarginLSEBitIdentical(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	for _, n := range []int{2, 3, 31, 1024, 248320} {
		for trial := range 4 {
			row := make([]float32, n)
			for i := range row {
				row[i] = float32(rng.NormFloat64() * 8)
				if trial == 1 && i%7 == 0 {
					row[i] = 0 // repeated values, a tie at the top below
				}
			}
			if trial == 2 {
				row[n-1] = row[0] // a tie for the top-2
			}
			if trial == 3 {
				row[0] = float32(math.Copysign(0, -1))
			}
			_, lse := marginLSE(row)
			if got, want := math.Float64bits(lse), math.Float64bits(logSumExp(row)); got != want {
				t.Errorf("n %d trial %d: lse %v, logSumExp %v", n, trial, lse, logSumExp(row))
			}
		}
	}
}
