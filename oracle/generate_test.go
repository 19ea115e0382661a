package oracle

import (
	"math"
	"runtime"
	"slices"
	"strings"
	"testing"

	"qconv/internal/golden"
)

// TestGenerate checks the greedy API against the goldens: ids, the 17 logit rows (with
// FeedLast), top-5 ids and logits, the probability margin, and the state after generation.
func TestGenerate(t *testing.T) {
	fixtures, err := golden.Fixtures()
	if err != nil {
		t.Fatal(err)
	}
	for _, fx := range fixtures[:3] {
		_, m := openModel(t, fx.Dir, Options{})
		for _, p := range fx.Golden.Prompts {
			s := m.NewState()
			g, err := m.Generate(s, p.IDs, GenerateOptions{Tokens: 16, FeedLast: true})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(g.IDs(), p.GenIDs) || !slices.Equal(g.PromptIDs, p.IDs) {
				t.Errorf("%s %s: ids %v, want %v", fx.Name, p.Name, g.IDs(), p.GenIDs)
			}
			nl, _ := p.Tensor("next_logits")
			for i, st := range g.Steps {
				want := nl.Row(i)
				if d := golden.MaxAbsDiff(st.Logits, want); d > tol {
					t.Errorf("%s %s step %d: logits differ by %g", fx.Name, p.Name, i, d)
				}
				// The margin is a softmax-probability difference; computed from the golden row it
				// must agree to well under the logit tolerance.
				if d := math.Abs(st.Margin - Margin(want)); d > 1e-4 {
					t.Errorf("%s %s step %d: margin %g, from the golden logits %g", fx.Name, p.Name, i, st.Margin, Margin(want))
				}
				// Top-5 ids must match wherever the golden's neighbours are not a near-tie.
				for r := range 5 {
					gap := math.Inf(1)
					if p.Top5Logits != nil && r < 4 {
						gap = float64(p.Top5Logits[i][r] - p.Top5Logits[i][r+1])
					}
					if gap > 2*tol && st.Top5IDs[r] != p.Top5IDs[i][r] {
						t.Errorf("%s %s step %d: top5 ids %v, want %v", fx.Name, p.Name, i, st.Top5IDs, p.Top5IDs[i])
						break
					}
					if p.Top5Logits != nil && math.Abs(float64(st.Top5Logits[r]-p.Top5Logits[i][r])) > tol {
						t.Errorf("%s %s step %d: top5 logits %v, want %v", fx.Name, p.Name, i, st.Top5Logits, p.Top5Logits[i])
						break
					}
				}
			}
			if d := golden.MaxAbsDiff(g.Next, nl.Row(16)); d > tol {
				t.Errorf("%s %s: row 16 differs by %g", fx.Name, p.Name, d)
			}
			if s.Len != len(p.IDs)+16 {
				t.Errorf("%s %s: state length %d after FeedLast", fx.Name, p.Name, s.Len)
			}
			if want, ok := p.StateAfterGen(0, "recurrent"); ok {
				if d := golden.MaxAbsDiff(s.Layers[0].Recurrent, want.Data); d > tol {
					t.Errorf("%s %s: recurrent state after generation differs by %g", fx.Name, p.Name, d)
				}
			}
		}
	}
}

func TestGenerateWithoutFeedLast(t *testing.T) {
	fx := fixture(t, "tinyqwen35-code")
	_, m := openModel(t, fx.Dir, Options{})
	p, _ := fx.Golden.Prompt("h0")
	s := m.NewState()
	g, err := m.Generate(s, p.IDs, GenerateOptions{Tokens: 3})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(g.IDs(), p.GenIDs[:3]) || g.Next != nil || s.Len != len(p.IDs)+2 {
		t.Errorf("ids %v, next %v, len %d", g.IDs(), g.Next != nil, s.Len)
	}
	if _, err := m.Generate(m.NewState(), p.IDs, GenerateOptions{}); err == nil {
		t.Error("0 tokens: no error")
	}
}

// TestCloneBranches: a clone continues exactly like the original, and feeding one does not
// touch the other.
func TestCloneBranches(t *testing.T) {
	fx := fixture(t, "tinyqwen35-code")
	_, m := openModel(t, fx.Dir, Options{})
	p, _ := fx.Golden.Prompt("h1")
	s := m.NewState()
	if _, err := m.Prefill(s, p.IDs); err != nil {
		t.Fatal(err)
	}
	c := s.Clone()
	other, err := m.Decode(c, 5) // a different branch first
	if err != nil {
		t.Fatal(err)
	}
	a, _ := m.Decode(s, p.GenIDs[0])
	c2 := s.Clone()
	b, _ := m.Decode(c2, p.GenIDs[1])
	a2, _ := m.Decode(s, p.GenIDs[1])
	if !slices.Equal(a2, b) {
		t.Error("clone and original diverge on the same token")
	}
	nl, _ := p.Tensor("next_logits")
	if d := golden.MaxAbsDiff(a, nl.Row(1)); d > tol {
		t.Errorf("original was disturbed by its clone: %g", d)
	}
	if slices.Equal(other, a) {
		t.Error("different tokens gave identical logits")
	}
	if c.Len != len(p.IDs)+1 || s.Len != len(p.IDs)+2 {
		t.Errorf("lengths %d, %d", c.Len, s.Len)
	}
}

// TestChunkingConsistent: feeding a 100-token prompt at once (chunks of 32 through the n-vector
// kernel), in uneven pieces, or token by token gives the same logits to rounding.
func TestChunkingConsistent(t *testing.T) {
	fx := fixture(t, "tinyqwen35-code")
	_, m := openModel(t, fx.Dir, Options{})
	p, _ := fx.Golden.Prompt("h2")
	whole, err := m.PrefillAll(m.NewState(), p.IDs)
	if err != nil {
		t.Fatal(err)
	}
	V := m.VocabSize()
	s := m.NewState()
	var pieces []float32
	for _, cut := range [][2]int{{0, 5}, {5, 6}, {6, 70}, {70, 100}} {
		l, err := m.PrefillAll(s, p.IDs[cut[0]:cut[1]])
		if err != nil {
			t.Fatal(err)
		}
		pieces = append(pieces, l...)
	}
	s1 := m.NewState()
	for i, id := range p.IDs {
		l, err := m.Decode(s1, id)
		if err != nil {
			t.Fatal(err)
		}
		if d := golden.MaxAbsDiff(l, whole[i*V:(i+1)*V]); d > 1e-4 {
			t.Errorf("position %d: token-by-token differs from whole prefill by %g", i, d)
		}
	}
	if d := golden.MaxAbsDiff(pieces, whole); d > 1e-4 {
		t.Errorf("pieces differ from whole prefill by %g", d)
	}
	last, _ := m.Prefill(m.NewState(), p.IDs)
	// The head runs as one vector here and as a batch there: rounding order differs.
	if d := golden.MaxAbsDiff(last, whole[(len(p.IDs)-1)*V:]); d > 1e-5 {
		t.Errorf("Prefill's last row differs from PrefillAll's by %g", d)
	}
}

func TestBadInput(t *testing.T) {
	fx := fixture(t, "tiny_tied_4L")
	_, m := openModel(t, fx.Dir, Options{})
	_, m2 := openModel(t, fx.Dir, Options{})
	s := m.NewState()
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"out of vocabulary", func() error { _, err := m.Prefill(s, []int{1, 512}); return err }(), "token id 512 (position 1) is outside the vocabulary [0, 512)"},
		{"negative", func() error { _, err := m.Decode(s, -1); return err }(), "token id -1"},
		{"empty", func() error { _, err := m.Prefill(s, nil); return err }(), "no tokens"},
		{"foreign state", func() error { _, err := m2.Decode(s, 1); return err }(), "another model"},
		{"short buffer", m.DecodeInto(make([]float32, 3), s, 1), "holds 3 values"},
	} {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, c.err, c.want)
		}
	}
	if s.Len != 0 {
		t.Errorf("rejected input advanced the state to %d", s.Len)
	}
}

func TestTopKAndMargin(t *testing.T) {
	ids, vals := TopK([]float32{1, 5, 3, 5, -2, 4, 0}, 5)
	if !slices.Equal(ids, []int{1, 3, 5, 2, 0}) || !slices.Equal(vals, []float32{5, 5, 4, 3, 1}) {
		t.Errorf("TopK = %v %v", ids, vals)
	}
	if ids, _ := TopK([]float32{2, 1}, 5); !slices.Equal(ids, []int{0, 1}) {
		t.Errorf("TopK of 2 = %v", ids)
	}
	// softmax of (ln 3, ln 1, ln 1) = (0.6, 0.2, 0.2): margin 0.4.
	if got := Margin([]float32{float32(math.Log(3)), 0, 0}); math.Abs(got-0.4) > 1e-7 {
		t.Errorf("Margin = %g, want 0.4", got)
	}
	if got := Margin([]float32{7, 7}); got != 0 {
		t.Errorf("tie margin = %g", got)
	}
	if _, err := NewStep([]float32{1, float32(math.NaN())}); err == nil {
		t.Error("NaN logits: no error")
	}
}

func fixture(t *testing.T, name string) golden.Fixture {
	t.Helper()
	fixtures, err := golden.Fixtures()
	if err != nil {
		t.Fatal(err)
	}
	for _, fx := range fixtures {
		if fx.Name == name {
			return fx
		}
	}
	t.Fatalf("no fixture %s", name)
	return golden.Fixture{}
}

// TestParallelHeadsIdentical: spreading the gated-delta heads over goroutines (the 0.8B-size
// path) gives bit-identical results to the serial loop the fixtures otherwise take.
func TestParallelHeadsIdentical(t *testing.T) {
	fx := fixture(t, "tinyqwen35-code")
	_, m := openModel(t, fx.Dir, Options{})
	p, _ := fx.Golden.Prompt("h1")
	// The same GOMAXPROCS for both runs: MatVec's row split may change rounding.
	defer func(v, procs int) { parallelStateMin = v; runtime.GOMAXPROCS(procs) }(parallelStateMin, runtime.GOMAXPROCS(3))
	serial := runPrompt(t, m, p)
	parallelStateMin = 0
	par := runPrompt(t, m, p)
	if !slices.Equal(serial.prefill, par.prefill) || !slices.Equal(serial.next[16], par.next[16]) ||
		!slices.Equal(serial.after.Layers[0].Recurrent, par.after.Layers[0].Recurrent) {
		t.Errorf("parallel heads differ from serial by %g", golden.MaxAbsDiff(serial.prefill, par.prefill))
	}
}
