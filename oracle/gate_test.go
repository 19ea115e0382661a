package oracle

import (
	"encoding/json"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"qconv/hf"
	"qconv/internal/golden"
	"qconv/internal/kernels"
)

// refCandidate runs the reference itself as a candidate, optionally damaging its logits.
type refCandidate struct {
	m      *Model
	st     *State
	damage func(pos int, logits []float32)
}

func (c *refCandidate) Step(id int) ([]float32, error) {
	l, err := c.m.Decode(c.st, id)
	if err != nil {
		return nil, err
	}
	l = slices.Clone(l)
	if c.damage != nil {
		c.damage(c.st.Len-1, l)
	}
	return l, nil
}

func (c *refCandidate) Fork() (Candidate, error) {
	return &refCandidate{m: c.m, st: c.st.Clone(), damage: c.damage}, nil
}

func gateFixture(t *testing.T) (*Model, []GatePrompt, *golden.Model) {
	t.Helper()
	ck, err := hf.Open(filepath.Join("..", "testdata", "tinyqwen35-code"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	m, err := New(ck, Options{})
	if err != nil {
		t.Fatal(err)
	}
	gf, err := golden.LoadTrained()
	if err != nil {
		t.Fatal(err)
	}
	gm := gf.Models["tinyqwen35-code"]
	var prompts []GatePrompt
	for _, p := range gm.Prompts {
		prompts = append(prompts, GatePrompt{Name: p.Name, Text: p.Text, IDs: p.IDs})
	}
	return m, prompts, gm
}

func TestGateReferencePassesItself(t *testing.T) {
	m, prompts, gm := gateFixture(t)
	rep, err := Gate(m, func() (Candidate, error) { return &refCandidate{m: m, st: m.NewState()}, nil }, prompts, DefaultGateOptions())
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Passed || rep.Totals.PromptsPassed != len(prompts) {
		t.Fatalf("the reference fails its own gate: %s", rep.Summary())
	}
	for i, pr := range rep.Prompts {
		p := gm.Prompts[i]
		if !slices.Equal(pr.RefGen, p.GenIDs) || !slices.Equal(pr.CandGen, p.GenIDs) {
			t.Errorf("%s: ref gen %v cand gen %v, golden %v", p.Name, pr.RefGen, pr.CandGen, p.GenIDs)
		}
		if pr.TeacherForcedSteps != len(p.IDs)+16 || pr.DecodeSteps != 17 || pr.DecodeTop1Match != 17 || pr.GreedyMatch != 16 {
			t.Errorf("%s: counts tf %d decode %d/%d greedy %d", p.Name, pr.TeacherForcedSteps, pr.DecodeTop1Match, pr.DecodeSteps, pr.GreedyMatch)
		}
		if pr.PrefillCosine < 0.999999 {
			t.Errorf("%s: self cosine %v", p.Name, pr.PrefillCosine)
		}
		// Margins in the report are the goldens' (top-1 minus top-2 softmax probability of the
		// same rows): spot-check that low-margin steps are counted as such.
		low := 0
		for _, s := range pr.Steps {
			if s.Phase != "greedy" && s.RefMargin < 0.1 {
				low++
			}
		}
		if low != pr.LowMarginSteps {
			t.Errorf("%s: %d low-margin steps listed, %d counted", p.Name, low, pr.LowMarginSteps)
		}
	}
	t.Log(rep.Summary())
}

// Swapping the top two logits at a confident decode step is a teacher-forced mismatch and a
// greedy divergence that is not a tie; at a low-margin step it is a tie and passes.
func TestGateCatchesConfidentFlip(t *testing.T) {
	m, prompts, _ := gateFixture(t)
	p := prompts[1] // h0: confident steps
	one := DefaultGateOptions()
	one.MinConfident = 0 // one short prompt: fewer confident positions than a whole set must give
	// Find a confident and a tied decode step of the reference.
	conf, tie := -1, -1
	rep0, _ := Gate(m, func() (Candidate, error) { return &refCandidate{m: m, st: m.NewState()}, nil }, []GatePrompt{p}, one)
	for _, s := range rep0.Prompts[0].Steps {
		if s.Phase != "decode" {
			continue
		}
		if s.RefMargin > 0.5 && conf < 0 {
			conf = s.Pos
		}
		if s.RefMargin < 0.1 && tie < 0 {
			tie = s.Pos
		}
	}
	if conf < 0 || tie < 0 {
		t.Fatalf("no confident (%d) or tied (%d) decode step in %s", conf, tie, p.Name)
	}
	swapAt := func(pos int) func(int, []float32) {
		return func(at int, l []float32) {
			if at != pos {
				return
			}
			a := kernels.Argmax(l)
			l2 := slices.Clone(l)
			l2[a] = -1e9
			b := kernels.Argmax(l2)
			l[a], l[b] = l[b], l[a]
		}
	}
	rep, err := Gate(m, func() (Candidate, error) { return &refCandidate{m: m, st: m.NewState(), damage: swapAt(conf)}, nil }, []GatePrompt{p}, one)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Passed || !strings.Contains(rep.Totals.FirstFailure, "prompt h0") {
		t.Fatalf("confident flip at %d passed: %s", conf, rep.Summary())
	}
	rep, _ = Gate(m, func() (Candidate, error) { return &refCandidate{m: m, st: m.NewState(), damage: swapAt(tie)}, nil }, []GatePrompt{p}, one)
	if !rep.Passed {
		t.Fatalf("flip at the tied step %d failed: %s", tie, rep.Summary())
	}
	// A cosine floor of 1 fails any candidate that is not bit-identical on the prompt.
	opt := one
	opt.MinCosine = 1.0000001
	rep, _ = Gate(m, func() (Candidate, error) { return &refCandidate{m: m, st: m.NewState()}, nil }, []GatePrompt{p}, opt)
	if rep.Passed || !strings.Contains(rep.Totals.FirstFailure, "cosine") {
		t.Fatalf("cosine floor not applied: %s", rep.Summary())
	}
}

// A candidate whose logits are NaN fails with a report that still encodes as JSON.
func TestGateNaNCandidate(t *testing.T) {
	m, prompts, _ := gateFixture(t)
	nan := func(_ int, l []float32) {
		for i := range l {
			l[i] = float32(math.NaN())
		}
	}
	opt := DefaultGateOptions()
	opt.MinConfident = 0
	rep, err := Gate(m, func() (Candidate, error) { return &refCandidate{m: m, st: m.NewState(), damage: nan}, nil }, prompts[:1], opt)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Passed {
		t.Fatal("NaN logits passed")
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Fatalf("report does not encode: %v", err)
	}
}
