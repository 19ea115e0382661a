package oracle

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"sync/atomic"
	"testing"
	"time"
)

// A gate on shared trajectories reports exactly what a gate with its own reference pass
// reports; the first gate on a sharing model spills every row it computes, the second reads
// every one of them back and computes none, and holds no more prompt rows than a streaming gate.
func TestGateSharedTrajectoriesExact(t *testing.T) {
	m, prompts, _ := gateFixture(t)
	prompts = append(prompts, longPrompt(prompts)) // 519 tokens: 9 chunks of rows
	opt := DefaultGateOptions()
	opt.MinConfident = 0
	fresh, err := Gate(m, damagedCandidate(m), prompts, opt)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	if err := m.ShareTrajectories(); err != nil {
		t.Fatal(err)
	}
	defer m.ReleaseTrajectories()
	first, err := Gate(m, damagedCandidate(m), prompts, opt)
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("the spill file has a name in TMPDIR: %v (a killed process would leave it)", left)
	}
	if err != nil {
		t.Fatal(err)
	}
	spans, bytes := spillSize(m, prompts, opt.Tokens)
	if s := m.SharingStats(); s.Trajectories != len(prompts) || s.Writes != spans || s.Reads != 0 || s.Bytes != bytes {
		t.Fatalf("after the first gate: %+v, want %d trajectories, %d spans written, %d bytes, none read", s, len(prompts), spans, bytes)
	}
	base := rowsHeld.n.Load() // rows an earlier test's failed gate left unreleased
	rowsHeld.peak.Store(base)
	second, err := Gate(m, damagedCandidate(m), prompts, opt)
	if err != nil {
		t.Fatal(err)
	}
	if s := m.SharingStats(); s.Writes != spans || s.Reads != spans {
		t.Fatalf("after the second gate: %+v, want all %d spans read back and none written again", s, spans)
	}
	if peak, after := rowsHeld.peak.Load()-base, rowsHeld.n.Load()-base; peak > int64(maxHeldRows) || peak < refChunkRows || after != 0 {
		t.Errorf("the replayed gate held %d prompt rows at its peak (bound %d), %d after it", peak, maxHeldRows, after)
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

func damagedCandidate(m *Model) func() (Candidate, error) {
	return func() (Candidate, error) {
		return &refCandidate{m: m, st: m.NewState(), damage: func(pos int, l []float32) { l[pos%len(l)] += 0.5 }}, nil
	}
}

// spillSize is the spans (a chunk of prompt rows, a decode row) and bytes a shared gate spills
// for prompts.
func spillSize(m *Model, prompts []GatePrompt, tokens int) (spans, bytes int64) {
	for _, p := range prompts {
		spans += int64((len(p.IDs)+refChunkRows-1)/refChunkRows + tokens)
		bytes += int64((len(p.IDs) + tokens) * m.VocabSize() * 4)
	}
	return spans, bytes
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

// Prompts too weak for the checkpoint are refused as early, and with the same count, when
// their trajectories are shared: the count of a shared prompt is read, not run again.
func TestGateWeakPromptsShared(t *testing.T) {
	m, prompts, _ := gateFixture(t)
	opt := DefaultGateOptions()
	opt.MinConfident = 0
	if err := m.ShareTrajectories(); err != nil {
		t.Fatal(err)
	}
	defer m.ReleaseTrajectories()
	full, err := Gate(m, func() (Candidate, error) { return &refCandidate{m: m, st: m.NewState()}, nil }, prompts, opt)
	if err != nil {
		t.Fatal(err)
	}
	total := int64(0)
	for _, p := range prompts {
		total += int64(len(p.IDs) + opt.Tokens)
	}
	written := m.SharingStats().Writes
	opt.MinConfident = full.Totals.TeacherForcedConfident + 1
	var steps atomic.Int64
	_, err = Gate(m, func() (Candidate, error) {
		return &slowCandidate{refCandidate{m: m, st: m.NewState()}, 20 * time.Millisecond, &steps}, nil
	}, prompts, opt)
	var w *WeakPromptsError
	if !errors.As(err, &w) {
		t.Fatalf("err %v, want prompts too weak", err)
	}
	if w.Confident != full.Totals.TeacherForcedConfident || w.Min != opt.MinConfident {
		t.Errorf("refused with %d confident (min %d), the whole gate counts %d", w.Confident, w.Min, full.Totals.TeacherForcedConfident)
	}
	if n := steps.Load(); n >= total/2 {
		t.Errorf("the candidate stepped %d of %d tokens before the refusal", n, total)
	}
	if s := m.SharingStats(); s.Writes != written {
		t.Errorf("the refused gate ran the reference again: %d spans written, %d before", s.Writes, written)
	}
	// At exactly the count it is a verdict, the same one.
	opt.MinConfident = full.Totals.TeacherForcedConfident
	again, err := Gate(m, func() (Candidate, error) { return &refCandidate{m: m, st: m.NewState()}, nil }, prompts, opt)
	if err != nil {
		t.Fatal(err)
	}
	again.Options.MinConfident = 0
	if a, b := gateJSON(t, again, nil), gateJSON(t, full, nil); !reflect.DeepEqual(a, b) {
		t.Errorf("the shared gate at the minimum reports otherwise than the first")
	}
}
