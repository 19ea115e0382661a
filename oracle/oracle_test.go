package oracle

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"qconv/hf"
	"qconv/internal/golden"
)

// tol is the agreement required with transformers' float32 outputs (logits and states).
// transformers' own cached and uncached logits differ by up to 2e-4.
const tol = 1e-3

func openModel(t testing.TB, dir string, opt Options) (*hf.Checkpoint, *Model) {
	t.Helper()
	ck, err := hf.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	m, err := New(ck, opt)
	if err != nil {
		t.Fatal(err)
	}
	return ck, m
}

// worst tracks the largest deviation of one kind and where it was.
type worst struct {
	diff  float64
	where string
}

func (w *worst) add(d float64, where string) {
	if d > w.diff || math.IsNaN(d) {
		w.diff, w.where = d, where
	}
}

// promptResult is what the model produced for one golden prompt.
type promptResult struct {
	prefill []float32 // [L, V]
	next    [][]float32
	gen     []int
	state   *State // after the prompt
	after   *State // after prompt + 16 generated tokens
}

func runPrompt(t testing.TB, m *Model, p *golden.Prompt) promptResult {
	t.Helper()
	s := m.NewState()
	prefill, err := m.PrefillAll(s, p.IDs)
	if err != nil {
		t.Fatal(err)
	}
	r := promptResult{prefill: prefill, state: s.Clone()}
	V := m.VocabSize()
	last := prefill[(len(p.IDs)-1)*V:]
	r.next = append(r.next, last)
	for i := range 16 {
		st, err := NewStep(r.next[i])
		if err != nil {
			t.Fatal(err)
		}
		r.gen = append(r.gen, st.ID)
		logits, err := m.Decode(s, st.ID)
		if err != nil {
			t.Fatal(err)
		}
		r.next = append(r.next, logits)
	}
	r.after = s
	return r
}

// compareGoldens checks one fixture against every golden prompt and returns the worst
// deviations: logits (prefill and next) and states.
func compareGoldens(t testing.TB, m *Model, fx golden.Fixture, report func(format string, args ...any)) (logits, states worst) {
	for _, p := range fx.Golden.Prompts {
		r := runPrompt(t, m, p)
		V := m.VocabSize()
		pl, err := p.Tensor("prefill_logits")
		if err != nil {
			t.Fatal(err)
		}
		for i := range len(p.IDs) {
			logits.add(golden.MaxAbsDiff(r.prefill[i*V:(i+1)*V], pl.Row(i)), fmt.Sprintf("%s prefill row %d", p.Name, i))
		}
		nl, err := p.Tensor("next_logits")
		if err != nil {
			t.Fatal(err)
		}
		for s := range nl.Shape[0] {
			logits.add(golden.MaxAbsDiff(r.next[s], nl.Row(s)), fmt.Sprintf("%s next row %d", p.Name, s))
		}
		if !slices.Equal(r.gen, p.GenIDs) {
			report("%s %s: greedy ids %v, want %v", fx.Name, p.Name, r.gen, p.GenIDs)
		}
		for li := range m.layers {
			for _, kind := range golden.StateKinds {
				if g, ok := p.StateAfterPrompt(li, kind); ok {
					states.add(stateDiff(t, r.state, li, kind, g), fmt.Sprintf("%s after prompt layer%d.%s", p.Name, li, kind))
				}
				if g, ok := p.StateAfterGen(li, kind); ok {
					states.add(stateDiff(t, r.after, li, kind, g), fmt.Sprintf("%s after gen layer%d.%s", p.Name, li, kind))
				}
			}
		}
	}
	return logits, states
}

// stateDiff compares one layer's cache tensor with transformers' (batch axis 1).
func stateDiff(t testing.TB, s *State, layer int, kind string, g *golden.Tensor) float64 {
	ls := &s.Layers[layer]
	var got []float32
	switch kind {
	case "conv":
		got = ls.Conv
	case "recurrent":
		got = ls.Recurrent
	case "key":
		got = ls.KeyCache()
	case "value":
		got = ls.ValueCache()
	}
	if len(got) != len(g.Data) {
		t.Errorf("layer %d %s: %d values, golden %v has %d", layer, kind, len(got), g.Shape, len(g.Data))
		return math.Inf(1)
	}
	return golden.MaxAbsDiff(got, g.Data)
}

// TestGoldens runs every fixture on every golden prompt: prefill logits at every position, the
// 17 next-token logit rows, the 16 greedy ids, and every cache tensor the goldens hold.
func TestGoldens(t *testing.T) {
	fixtures, err := golden.Fixtures()
	if err != nil {
		t.Fatal(err)
	}
	for _, fx := range fixtures {
		t.Run(fx.Name, func(t *testing.T) {
			_, m := openModel(t, fx.Dir, Options{})
			logits, states := compareGoldens(t, m, fx, t.Errorf)
			t.Logf("%s: max |Δlogit| %.3g (%s), max |Δstate| %.3g (%s)", fx.Name, logits.diff, logits.where, states.diff, states.where)
			if !(logits.diff <= tol) {
				t.Errorf("logits differ from transformers by %g at %s (tolerance %g)", logits.diff, logits.where, tol)
			}
			if !(states.diff <= tol) {
				t.Errorf("states differ from transformers by %g at %s (tolerance %g)", states.diff, states.where, tol)
			}
			if states.where == "" {
				t.Error("no state was compared")
			}
		})
	}
}

// TestMultimodalLayoutIdentical: the multimodal checkpoint holds the same weights as the text
// one, so every logit must be bit-identical.
func TestMultimodalLayoutIdentical(t *testing.T) {
	fixtures, err := golden.Fixtures()
	if err != nil {
		t.Fatal(err)
	}
	var text, mm golden.Fixture
	for _, fx := range fixtures {
		switch fx.Name {
		case "tiny_untied_8L":
			text = fx
		case "tiny_untied_8L-multimodal":
			mm = fx
		}
	}
	_, a := openModel(t, text.Dir, Options{})
	_, b := openModel(t, mm.Dir, Options{})
	for _, p := range text.Golden.Prompts {
		ra, rb := runPrompt(t, a, p), runPrompt(t, b, p)
		if !slices.Equal(ra.prefill, rb.prefill) {
			t.Errorf("%s: prefill logits differ (max %g)", p.Name, golden.MaxAbsDiff(ra.prefill, rb.prefill))
		}
		for s := range ra.next {
			if !slices.Equal(ra.next[s], rb.next[s]) {
				t.Errorf("%s step %d: logits differ", p.Name, s)
			}
		}
	}
}
