package oracle

import (
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// A gate on shared trajectories reports exactly what a gate with its own reference pass
// reports, and the second gate on a sharing model runs no reference: its trajectories are the
// very ones the first computed.
func TestGateSharedTrajectoriesExact(t *testing.T) {
	m, prompts, _ := gateFixture(t)
	opt := DefaultGateOptions()
	opt.MinConfident = 0
	damaged := func() (Candidate, error) {
		return &refCandidate{m: m, st: m.NewState(), damage: func(pos int, l []float32) { l[pos%len(l)] += 0.5 }}, nil
	}
	fresh, err := Gate(m, damaged, prompts, opt)
	if err != nil {
		t.Fatal(err)
	}
	m.ShareTrajectories()
	defer m.ReleaseTrajectories()
	first, err := Gate(m, damaged, prompts, opt)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(m.shared.m); n != len(prompts) {
		t.Fatalf("%d shared trajectories, want %d", n, len(prompts))
	}
	held := map[string]*refTrajectory{}
	for k, tr := range m.shared.m {
		held[k] = tr
	}
	second, err := Gate(m, damaged, prompts, opt)
	if err != nil {
		t.Fatal(err)
	}
	for k, tr := range m.shared.m {
		if held[k] != tr {
			t.Fatalf("trajectory %s computed again", k)
		}
	}
	want, _ := json.Marshal(fresh)
	for name, r := range map[string]*GateReport{"first": first, "second": second} {
		if got, _ := json.Marshal(r); string(got) != string(want) {
			t.Errorf("%s shared gate's report differs from the unshared one", name)
		}
	}
	if fresh.Totals.Stats.KLDMean == 0 || fresh.Totals.TeacherForcedSteps == 0 {
		t.Fatalf("the damage shows nowhere: %+v", fresh.Totals)
	}
}

// slowCandidate is refCandidate stepping no faster than one token per delay, counting steps.
type slowCandidate struct {
	refCandidate
	delay time.Duration
	steps *atomic.Int64
}

func (c *slowCandidate) Step(id int) ([]float32, error) {
	time.Sleep(c.delay)
	c.steps.Add(1)
	return c.refCandidate.Step(id)
}

func (c *slowCandidate) Fork() (Candidate, error) {
	return &slowCandidate{refCandidate{m: c.m, st: c.st.Clone()}, c.delay, c.steps}, nil
}

// Prompts too weak for the checkpoint are refused as soon as the reference has run them all,
// with the same count the whole gate gives, not after the candidate has stepped every prompt.
func TestGateWeakPromptsRefusedEarly(t *testing.T) {
	m, prompts, _ := gateFixture(t)
	opt := DefaultGateOptions()
	opt.MinConfident = 0
	full, err := Gate(m, func() (Candidate, error) { return &refCandidate{m: m, st: m.NewState()}, nil }, prompts, opt)
	if err != nil {
		t.Fatal(err)
	}
	total := int64(0)
	for _, p := range prompts {
		total += int64(len(p.IDs) + opt.Tokens) // the prompt, the free rollout's steps and the last teacher-forced one
	}
	opt.MinConfident = full.Totals.TeacherForcedConfident + 1
	var steps atomic.Int64
	_, err = Gate(m, func() (Candidate, error) {
		return &slowCandidate{refCandidate{m: m, st: m.NewState()}, 20 * time.Millisecond, &steps}, nil
	}, prompts, opt)
	var w *WeakPromptsError
	if !errors.As(err, &w) {
		t.Fatalf("err %v, want prompts too weak", err)
	}
	if w.Confident != full.Totals.TeacherForcedConfident || w.Min != opt.MinConfident || w.Report == nil {
		t.Errorf("refused with %d confident (min %d), the whole gate counts %d", w.Confident, w.Min, full.Totals.TeacherForcedConfident)
	}
	if n := steps.Load(); n >= total/2 {
		t.Errorf("the candidate stepped %d of %d tokens before the refusal", n, total)
	}
}
