package export

import (
	"context"
	"fmt"

	"qconv/bundle"
	"qconv/gating"
	"qconv/graph"
	"qconv/graph/interp"
	"qconv/internal/exitcode"
	"qconv/oracle"
)

// The delegate-numerics stress (docs/numerics.md): on device, fp16 matmuls in dynamic-shape
// graphs were measured to lose about 1.3% relative accuracy, consistent with fp16 accumulation.
// Every bundle whose graph is dynamic and multiplies in fp16 is gated a second time with the
// interpreter accumulating those matmuls in fp16 (interp.F16Accumulate). Both verdicts and the
// worst prefill cosine of each are recorded; by default only the exact-emulation verdict decides.

// StressMode says what the stress gate does (--gate-stress).
type StressMode string

const (
	// StressAuto (the default) is StressRecord where the stress is cheap (at most 2^26 weight
	// values, interp.F16AccumulateCached: seconds) and a recorded "not run" note past that (at
	// Qwen3.5-0.8B it costs about 2.3 times the exact gate, tripling a gated export's time).
	StressAuto   StressMode = "auto"
	StressRecord StressMode = "record" // run it and record it; the exact verdict decides
	StressGates  StressMode = "gate"   // run it; the bundle passes only if both verdicts pass
	StressOff    StressMode = "off"    // do not run it
)

// ParseStressMode reads a --gate-stress value ("" is the default, auto).
func ParseStressMode(s string) (StressMode, error) {
	switch StressMode(s) {
	case "", StressAuto:
		return StressAuto, nil
	case StressRecord, StressGates, StressOff:
		return StressMode(s), nil
	}
	return "", exitcode.Badf("flag --gate-stress: %q is not one of auto, record, gate, off", s)
}

// stressApplies reports whether the stress changes anything for m: a dynamic graph with fp16
// matmuls (the pipelined fp16 bundles; the static ios-gpu graphs and fp32 forms are exact).
func stressApplies(m *graph.Module) bool { return m.Dynamic() && m.HasF16Matmul() }

// stressGate gates j's shipped graph under fp16 accumulation and folds the verdict into
// j.result.Gate when mode is StressGate. It records nothing when the stress does not apply.
func (j *job) stressGate(ctx context.Context, ref *oracle.Model, prompts []oracle.GatePrompt, gopt oracle.GateOptions, mode StressMode) error {
	if mode == StressOff || j.contract == graph.HostPrefill || !stressApplies(j.shipped) {
		return nil
	}
	if mode == StressAuto && !interp.F16AccumulateCached(j.shipped) {
		j.result.Warnings = append(j.result.Warnings, "fp16-accumulation stress gate not run: past 2^26 weight values it costs about 2.3 times the exact gate; --gate-stress record runs it anyway")
		return nil
	}
	if mode == StressAuto {
		mode = StressRecord
	}
	gopt.Progress = nil
	rep, err := oracle.Gate(ref, func() (oracle.Candidate, error) {
		s, err := interp.NewSessionNumerics(j.shipped, nil, interp.F16Accumulate)
		if err != nil {
			return nil, err
		}
		return gating.WithContext(ctx, gating.SessionCandidate(s)), nil // SIGINT/SIGTERM stop it at the next step
	}, prompts, gopt)
	if err != nil {
		return gating.GateError(fmt.Errorf("gating %s under fp16 accumulation: %w", j.name, err))
	}
	s := gating.Summarize(rep)
	st := &bundle.StressGate{
		Numerics: interp.F16Accumulate.String(), Gates: mode == StressGates, Passed: s.Passed,
		TeacherForced: s.TeacherForced, Greedy: s.Greedy, MinPrefillCosine: s.MinPrefillCosine,
		ExactMinPrefillCosine: j.result.Gate.MinPrefillCosine, FirstFailure: s.FirstFailure,
	}
	j.result.Stress = st
	if st.Gates && !st.Passed {
		j.result.Gate.Passed = false
		if j.result.Gate.FirstFailure == "" {
			j.result.Gate.FirstFailure = "under fp16 accumulation (--gate-stress gate): " + st.FirstFailure
		}
	}
	return nil
}
