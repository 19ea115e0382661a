package main

import (
	"math"

	"github.com/spf13/cobra"

	"qconv/internal/exitcode"
	"qconv/oracle"
)

// gateStatFlags are the gate's minimum of confident positions and its optional thresholds on
// the distribution figures (docs/gate.md).
type gateStatFlags struct {
	minConfident            int
	maxKLD, maxKLDP99       float64
	minSameTop, maxDeltaRMS float64
}

func (g *gateStatFlags) register(cmd *cobra.Command, d oracle.GateOptions) {
	fl := cmd.Flags()
	fl.IntVar(&g.minConfident, "gate-min-confident", d.MinConfident, "fewest confident teacher-forced positions the prompts must give the reference, else exit 2 (0: measure without judging vacuity)")
	fl.Float64Var(&g.maxKLD, "gate-max-kld", 0, "fail the gate when the mean KL divergence (nats, candidate from reference, over teacher-forced positions) exceeds this (0: off)")
	fl.Float64Var(&g.maxKLDP99, "gate-max-kld-p99", 0, "fail the gate when the 99th-percentile KL divergence exceeds this (0: off)")
	fl.Float64Var(&g.minSameTop, "gate-min-same-top", 0, "fail the gate when the same-top-1 percentage is below this (0: off)")
	fl.Float64Var(&g.maxDeltaRMS, "gate-max-delta-p-rms", 0, "fail the gate when the RMS Δp of the reference's top token exceeds this probability (0: off)")
}

func (g *gateStatFlags) apply(opt *oracle.GateOptions) error {
	if g.minConfident < 0 {
		return exitcode.Badf("flag --gate-min-confident: %d is negative", g.minConfident)
	}
	for _, f := range []struct {
		name   string
		v, top float64
	}{{"--gate-max-kld", g.maxKLD, math.Inf(1)}, {"--gate-max-kld-p99", g.maxKLDP99, math.Inf(1)}, {"--gate-min-same-top", g.minSameTop, 100}, {"--gate-max-delta-p-rms", g.maxDeltaRMS, 1}} {
		if !(f.v >= 0 && f.v <= f.top) || math.IsInf(f.v, 0) {
			return exitcode.Badf("flag %s: %g is out of range [0, %g]", f.name, f.v, f.top)
		}
	}
	opt.MinConfident = g.minConfident
	opt.MaxKLD, opt.MaxKLDP99, opt.MinSameTop1, opt.MaxDeltaPRMS = g.maxKLD, g.maxKLDP99, g.minSameTop, g.maxDeltaRMS
	return nil
}
