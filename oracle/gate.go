package oracle

import (
	"errors"
	"fmt"
	"math"
	"sync"

	"qconv/internal/kernels"
)

// Candidate is the model the gate judges, stepped one token at a time from an empty state: the
// lowered graph run by the interpreter on the exact bytes of a bundle. The oracle package does
// not know graphs; callers adapt them to this interface.
type Candidate interface {
	// Step feeds one token and returns the logits for the next position.
	Step(id int) ([]float32, error)
	// Fork returns an independent candidate at the same position.
	Fork() (Candidate, error)
}

// GateOptions are the gate's thresholds (docs/gate.md).
type GateOptions struct {
	Tokens    int     `json:"tokens"`     // greedy tokens decoded per prompt (16)
	MinMargin float64 `json:"min_margin"` // steps whose reference top-2 probability margin is below this are ties (0.1)
	MinCosine float64 `json:"min_cosine"` // prefill logit cosine floor (0.9999)
	// MinConfident is the fewest confident teacher-forced positions over all prompts that make a
	// verdict (DefaultMinConfident); fewer is a *WeakPromptsError. 0 measures without a minimum.
	MinConfident int `json:"min_confident"`
	// Optional thresholds on the overall distribution figures (GateStats); 0 is not set.
	MaxKLD       float64 `json:"max_kld_mean,omitempty"`
	MaxKLDP99    float64 `json:"max_kld_p99,omitempty"`
	MinSameTop1  float64 `json:"min_same_top1_pct,omitempty"`
	MaxDeltaPRMS float64 `json:"max_delta_p_rms,omitempty"`
	// Progress, when set, is told after each prompt how many candidate steps are done of the
	// total (for a progress bar; not part of the report).
	Progress func(done, total int) `json:"-"`
}

// DefaultGateOptions are the published thresholds.
func DefaultGateOptions() GateOptions {
	return GateOptions{Tokens: 16, MinMargin: 0.1, MinCosine: 0.9999, MinConfident: DefaultMinConfident}
}

// GatePrompt is one prompt: token ids, and the text they came from when there is one.
type GatePrompt struct {
	Name string `json:"name"`
	Text string `json:"text,omitempty"`
	IDs  []int  `json:"ids"`
}

// Step verdicts.
const (
	VerdictMatch    = "match"    // candidate top-1 equals the reference's
	VerdictTie      = "tie"      // they differ where the reference margin is below MinMargin
	VerdictMismatch = "mismatch" // they differ at a confident step: a failure
)

// GateStep is one position of a prompt's report.
type GateStep struct {
	Pos       int     `json:"pos"`   // tokens fed before this prediction, minus one
	Phase     string  `json:"phase"` // "prompt" (teacher-forced on the prompt), "decode" (teacher-forced on the reference's continuation) or "greedy" (free rollout)
	RefID     int     `json:"ref_id"`
	CandID    int     `json:"cand_id"`
	RefMargin float64 `json:"ref_margin"`
	// CandMargin is the candidate's own top-2 probability margin.
	CandMargin float64 `json:"cand_margin"`
	Verdict    string  `json:"verdict"`
	// KLD is KL(P_ref || P_cand) at a teacher-forced position (nats; GateStats).
	KLD float64 `json:"kld,omitempty"`
}

// GatePromptReport is the gate's judgement of one prompt.
type GatePromptReport struct {
	Prompt GatePrompt `json:"prompt"`
	RefGen []int      `json:"ref_gen_ids"`
	// CandGen is the candidate's free greedy rollout.
	CandGen []int `json:"cand_gen_ids"`
	// TeacherForced counts prompt and decode positions fed the reference trajectory: matches at
	// confident steps over confident steps, and over all steps.
	TeacherForcedMatched   int `json:"teacher_forced_matched"`
	TeacherForcedConfident int `json:"teacher_forced_confident"`
	TeacherForcedSteps     int `json:"teacher_forced_steps"`
	TeacherForcedAllMatch  int `json:"teacher_forced_all_match"`
	// DecodeTop1Match counts the 1+Tokens positions after the prompt (the goldens' 17 rows) whose
	// candidate top-1 equals the reference's, regardless of margin.
	DecodeTop1Match int `json:"decode_top1_match"`
	DecodeSteps     int `json:"decode_steps"`
	// GreedyMatch counts generated positions where the candidate chose the reference's token;
	// FirstDivergence is the first such position that differs (-1 when none).
	GreedyMatch     int        `json:"greedy_match"`
	FirstDivergence int        `json:"first_divergence"`
	PrefillCosine   float64    `json:"prefill_cosine"`
	Passed          bool       `json:"passed"`
	Failures        []string   `json:"failures,omitempty"`
	LowMarginSteps  int        `json:"low_margin_steps"`
	Steps           []GateStep `json:"steps"`
	// Length is the prompt's token count; Stats the distribution figures over its teacher-forced
	// positions.
	Length int        `json:"length"`
	Stats  *GateStats `json:"stats,omitempty"`
	// EndRow is the candidate's logits after the prompt's last token, kept in memory (not
	// recorded) for the checks that feed the same prompt through another entrypoint and must
	// arrive at the same row (gating's companion and entrypoint checks).
	EndRow []float32 `json:"-"`

	acc *statsAcc
}

// GateReport is the whole gate's verdict.
type GateReport struct {
	Passed  bool               `json:"passed"`
	Options GateOptions        `json:"options"`
	Prompts []GatePromptReport `json:"prompts"`
	Totals  GateTotals         `json:"totals"`
	// Failures are the overall figures' threshold failures (--gate-max-kld, ...).
	Failures []string `json:"failures,omitempty"`

	acc *statsAcc
}

// GateTotals summarise the prompts.
type GateTotals struct {
	Prompts                int     `json:"prompts"`
	PromptsPassed          int     `json:"prompts_passed"`
	TeacherForcedMatched   int     `json:"teacher_forced_matched"`
	TeacherForcedConfident int     `json:"teacher_forced_confident"`
	TeacherForcedSteps     int     `json:"teacher_forced_steps"`
	GreedyMatch            int     `json:"greedy_match"`
	GreedySteps            int     `json:"greedy_steps"`
	LowMarginSteps         int     `json:"low_margin_steps"`
	MinPrefillCosine       float64 `json:"min_prefill_cosine"`
	FirstFailure           string  `json:"first_failure,omitempty"`
	// Stats are the distribution figures over every prompt's teacher-forced positions.
	Stats *GateStats `json:"stats,omitempty"`
}

// refTrajectory is the reference's side of one prompt.
type refTrajectory struct {
	// rows are the logits after each fed token: prompt positions (nil: they stream to the
	// judge, gate_stream.go, or come back from a spill file, gate_spill.go), then after each generated token.
	rows    [][]float32
	tops    []int // each row's top-1
	gen     []int
	margins []float64
}

// candPass is the candidate's side of one prompt.
type candPass struct {
	prompt     promptJudge // the prompt positions, judged as the reference's rows allow
	greedy     []int
	greedyRows [][]float32
	decodeRows [][]float32 // teacher-forced on the reference continuation
	free       Candidate   // the free rollout's candidate, fed greedy[:len(greedy)-1]
}

// Gate runs every prompt through the reference and a fresh candidate from newCand and judges:
// teacher-forced top-1 along the reference trajectory at every confident position, the free
// greedy rollout (equal, or first diverging at a tie), and the prefill logit cosine. The
// reference and the candidate of a prompt run concurrently; the reference's prompt rows reach
// the judge in chunks (gate_stream.go), and a SequenceCandidate is fed through Feed
// (gate_feed.go).
func Gate(ref *Model, newCand func() (Candidate, error), prompts []GatePrompt, opt GateOptions) (*GateReport, error) {
	if opt.Tokens < 1 {
		return nil, fmt.Errorf("gate: %d tokens per prompt, need at least 1", opt.Tokens)
	}
	if len(prompts) == 0 {
		return nil, fmt.Errorf("gate: no prompts")
	}
	rep := &GateReport{Passed: true, Options: opt, Totals: GateTotals{MinPrefillCosine: 1}}
	rep.Options.Progress = nil
	done, total := 0, 0
	for _, p := range prompts {
		total += len(p.IDs) + 2*opt.Tokens
	}
	for _, p := range prompts {
		if len(p.IDs) == 0 {
			return nil, fmt.Errorf("gate: prompt %s has no tokens", p.Name)
		}
		if err := ref.CheckIDs(p.IDs); err != nil {
			return nil, fmt.Errorf("gate: prompt %s: %w", p.Name, err)
		}
	}
	// The reference runs every prompt ahead of the candidate (gate_shared.go): its count of
	// confident positions can refuse the prompts before the candidate has stepped them all.
	rr := ref.startReference(prompts, opt)
	defer rr.close()
	weakErr := func() (*GateReport, error) {
		r, err := rep.finish(opt)
		if err == nil { // the measured prompts alone have enough; the whole set has not
			err = &WeakPromptsError{Confident: rr.confident, Min: opt.MinConfident, Report: r}
		}
		if w := (*WeakPromptsError)(nil); errors.As(err, &w) {
			w.Confident = rr.confident
		}
		return nil, err
	}
	for i, p := range prompts {
		fut := rr.futs[i]
		var candErr error
		cp := &candPass{prompt: newPromptJudge(fut.chunks, len(p.IDs))}
		var cand Candidate
		var wg sync.WaitGroup
		wg.Go(func() {
			// The candidate's prompt pass is judged as the reference's rows come; its free
			// rollout needs nothing from the reference.
			if cand, candErr = newCand(); candErr != nil {
				return
			}
			if candErr = cp.feedPrompt(cand, p.IDs, &rr.weak); candErr != nil {
				return
			}
			if !cp.prompt.finish() {
				return // the reference failed; Gate reports its error
			}
			free, err := cand.Fork()
			if err != nil {
				candErr = err
				return
			}
			cp.free = free
			last := cp.prompt.last
			for k := 0; k < opt.Tokens; k++ {
				id := kernels.Argmax(last)
				cp.greedy = append(cp.greedy, id)
				cp.greedyRows = append(cp.greedyRows, last)
				if k == opt.Tokens-1 {
					break
				}
				if last, err = free.Step(id); err != nil {
					candErr = err
					return
				}
			}
		})
		wg.Wait()
		if candErr == errWeakStop || rr.weak.Load() {
			return weakErr()
		}
		if candErr != nil {
			// The reference may be waiting for the judge to give its buffers back: do not wait
			// for it, but report its own failure first when it has one.
			select {
			case <-fut.done:
				if fut.err != nil && fut.err != errReferenceStopped {
					return nil, fmt.Errorf("gate: prompt %s: reference: %w", p.Name, fut.err)
				}
			default:
			}
			return nil, fmt.Errorf("gate: prompt %s: candidate: %w", p.Name, candErr)
		}
		<-fut.done
		tr, refErr := fut.tr, fut.err
		if rr.weak.Load() { // a reference that found the prompts weak stops mid-set
			return weakErr()
		}
		if refErr != nil {
			return nil, fmt.Errorf("gate: prompt %s: reference: %w", p.Name, refErr)
		}
		// Teacher forcing on the reference's continuation.
		if err := cp.teacherForce(cand, tr.gen); err != nil {
			return nil, fmt.Errorf("gate: prompt %s: candidate: %w", p.Name, err)
		}
		pr := judge(p, tr, cp, opt)
		fut.tr = nil // garbage now (a shared prompt keeps its tops, margins and ids in ref's memo)
		rep.add(pr)
		if opt.Progress != nil {
			done += len(p.IDs) + 2*opt.Tokens
			opt.Progress(done, total)
		}
	}
	return rep.finish(opt)
}

func judge(p GatePrompt, tr *refTrajectory, cp *candPass, opt GateOptions) GatePromptReport {
	L := len(p.IDs)
	pr := GatePromptReport{Prompt: p, RefGen: tr.gen, CandGen: cp.greedy, FirstDivergence: -1, Passed: true, Length: L, acc: &statsAcc{}}
	if len(cp.greedyRows) > 0 {
		pr.EndRow = cp.greedyRows[0]
	}
	more := 0
	fail := func(format string, args ...any) {
		pr.Passed = false
		if len(pr.Failures) >= maxFailureMessages {
			more++ // a long prompt can fail at hundreds of positions; the report stays small
			return
		}
		pr.Failures = append(pr.Failures, fmt.Sprintf(format, args...))
	}
	decode := judgeRows(tr.rows[L:], cp.decodeRows)
	for pos := range L + len(cp.decodeRows) {
		var j rowJudgement
		phase := "prompt"
		if pos < L {
			j = cp.prompt.rows[pos]
		} else {
			phase = "decode"
			j = decode[pos-L]
		}
		refID, candID := tr.tops[pos], j.candID
		st := GateStep{Pos: pos, Phase: phase, RefID: refID, CandID: candID, RefMargin: tr.margins[pos], CandMargin: j.candMargin}
		st.Verdict = verdict(refID, candID, st.RefMargin, opt.MinMargin, j.nan)
		pr.TeacherForcedSteps++
		if st.RefMargin < opt.MinMargin {
			pr.LowMarginSteps++
		} else {
			pr.TeacherForcedConfident++
		}
		if st.Verdict == VerdictMatch {
			pr.TeacherForcedAllMatch++
			if st.RefMargin >= opt.MinMargin {
				pr.TeacherForcedMatched++
			}
		}
		if pos >= L-1 {
			pr.DecodeSteps++
			if st.Verdict == VerdictMatch {
				pr.DecodeTop1Match++
			}
		}
		if st.Verdict == VerdictMismatch {
			fail("teacher-forced %s position %d: candidate top-1 %d, reference %d at margin %.3f", phase, pos, candID, refID, st.RefMargin)
		}
		st.KLD = pr.acc.add(pos, refID, j)
		pr.Steps = append(pr.Steps, st)
	}
	pr.Stats = pr.acc.stats()
	for k, id := range cp.greedy {
		pos := L - 1 + k
		refMargin := tr.margins[pos]
		st := GateStep{Pos: pos, Phase: "greedy", RefID: tr.gen[k], CandID: id, RefMargin: refMargin, CandMargin: Margin(cp.greedyRows[k])}
		if id == tr.gen[k] {
			pr.GreedyMatch++
			st.Verdict = VerdictMatch
		} else {
			st.Verdict = VerdictTie
			if pr.FirstDivergence < 0 {
				pr.FirstDivergence = k
				if refMargin >= opt.MinMargin {
					st.Verdict = VerdictMismatch
					fail("greedy step %d: candidate %d, reference %d at margin %.3f (not a tie)", k, id, tr.gen[k], refMargin)
				}
			}
		}
		// After a tie-divergence the trajectories differ; later steps are informational.
		if pr.FirstDivergence >= 0 && k > pr.FirstDivergence && id != tr.gen[k] {
			st.Verdict = "diverged"
		}
		pr.Steps = append(pr.Steps, st)
	}
	pr.PrefillCosine = cp.prompt.cosine()
	switch {
	case math.IsNaN(pr.PrefillCosine):
		// NaN or all-zero candidate logits; the report must stay valid JSON.
		pr.PrefillCosine = 0
		fail("prefill logits are NaN or all zero: cosine undefined")
	case !(pr.PrefillCosine >= opt.MinCosine):
		fail("prefill logit cosine %.6f < %.6f", pr.PrefillCosine, opt.MinCosine)
	}
	if more > 0 {
		pr.Failures = append(pr.Failures, fmt.Sprintf("and %d more failures", more))
	}
	for i := range pr.Steps {
		pr.Steps[i].RefMargin, pr.Steps[i].CandMargin = finite(pr.Steps[i].RefMargin), finite(pr.Steps[i].CandMargin)
	}
	return pr
}

// finite maps NaN and infinities (from broken candidate logits) to 0 so reports encode as JSON.
func finite(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	return x
}

func verdict(refID, candID int, refMargin, minMargin float64, nan bool) string {
	if nan {
		return VerdictMismatch // NaN logits are never a tie
	}
	switch {
	case refID == candID:
		return VerdictMatch
	case refMargin < minMargin:
		return VerdictTie
	}
	return VerdictMismatch
}

func (r *GateReport) add(pr GatePromptReport) {
	r.Totals.count(pr)
	if !pr.Passed {
		r.Passed = false
	}
	if r.acc == nil {
		r.acc = &statsAcc{}
	}
	if pr.acc != nil {
		r.acc.merge(pr.acc)
	}
	r.Prompts = append(r.Prompts, pr)
}

// Summary is a short human account of the report.
func (r *GateReport) Summary() string {
	t := r.Totals
	verdict := "PASSED"
	if !r.Passed {
		verdict = "FAILED"
	}
	s := fmt.Sprintf("gate %s: %d/%d prompts; teacher-forced top-1 %d/%d confident steps (%d low-margin ties); greedy %d/%d; min prefill cosine %.6f",
		verdict, t.PromptsPassed, t.Prompts, t.TeacherForcedMatched, t.TeacherForcedConfident, t.LowMarginSteps, t.GreedyMatch, t.GreedySteps, t.MinPrefillCosine)
	if t.Stats != nil {
		s += "\n  " + t.Stats.StatsLine()
	}
	if t.FirstFailure != "" {
		s += "\n  first failure: " + t.FirstFailure
	}
	return s
}
