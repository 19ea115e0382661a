package oracle

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"qconv/internal/kernels"
)

// longPrompt is a 519-token prompt of the trained fixture's own text (its golden prompts run
// together, then the longest again): past 512, not a whole number of chunks, and confident in
// places the short prompts do not reach (copying from context).
func longPrompt(prompts []GatePrompt) GatePrompt {
	var ids []int
	for _, i := range []int{4, 3, 2, 1, 4} {
		ids = append(ids, prompts[i].IDs...)
	}
	return GatePrompt{Name: "long", IDs: ids[:519]}
}

// feedCandidate is refCandidate with a Feed that steps the reference per id into one buffer it
// reuses and spoils after each row, so a gate that kept a borrowed row would judge garbage.
type feedCandidate struct {
	*refCandidate
	promptFeeds, otherFeeds *atomic.Int64
	promptLen               map[int]bool
	buf                     []float32
}

func (c *feedCandidate) Feed(ids []int, row func(int, []float32) error) error {
	if c.st.Len == 0 && c.promptLen[len(ids)] {
		c.promptFeeds.Add(1)
	} else {
		c.otherFeeds.Add(1)
	}
	for i, id := range ids {
		l, err := c.refCandidate.Step(id)
		if err != nil {
			return err
		}
		c.buf = append(c.buf[:0], l...)
		if err := row(i, c.buf); err != nil {
			return err
		}
		for k := range c.buf {
			c.buf[k] = float32(math.NaN())
		}
	}
	return nil
}

func (c *feedCandidate) Fork() (Candidate, error) {
	f, err := c.refCandidate.Fork()
	if err != nil {
		return nil, err
	}
	return &feedCandidate{refCandidate: f.(*refCandidate), promptFeeds: c.promptFeeds, otherFeeds: c.otherFeeds, promptLen: c.promptLen}, nil
}

// gateJSON is the report as published.
func gateJSON(t *testing.T, rep *GateReport, err error) any {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// A candidate with Feed gets exactly the report of the same candidate stepped token by token,
// on every fixture prompt and a 519-token one, with damage that fails it at confident
// positions and forces a teacher-forced continuation (the free rollout departs from the
// reference's); Gate feeds every prompt, and those continuations, through Feed.
func TestGateFeedSameReport(t *testing.T) {
	m, prompts, _ := gateFixture(t)
	prompts = append(prompts, longPrompt(prompts))
	opt := DefaultGateOptions()
	damage := func(pos int, l []float32) {
		l[pos%len(l)] += 0.5
		if pos == 14 || pos == 300 { // a decode step of h0, inside the longer prompts
			a := kernels.Argmax(l)
			l2 := slices.Clone(l)
			l2[a] = -1e9
			b := kernels.Argmax(l2)
			l[a], l[b] = l[b], l[a]
		}
	}
	step, err := Gate(m, func() (Candidate, error) { return &refCandidate{m: m, st: m.NewState(), damage: damage}, nil }, prompts, opt)
	want := gateJSON(t, step, err)
	if step.Passed || step.Totals.Stats.KLDMean == 0 || step.Totals.GreedyMatch == step.Totals.GreedySteps {
		t.Fatalf("the damage shows nowhere: %s", step.Summary())
	}
	var promptFeeds, otherFeeds atomic.Int64
	lens := map[int]bool{}
	for _, p := range prompts {
		lens[len(p.IDs)] = true
	}
	feed, err := Gate(m, func() (Candidate, error) {
		return &feedCandidate{refCandidate: &refCandidate{m: m, st: m.NewState(), damage: damage}, promptFeeds: &promptFeeds, otherFeeds: &otherFeeds, promptLen: lens}, nil
	}, prompts, opt)
	if got := gateJSON(t, feed, err); !reflect.DeepEqual(got, want) {
		t.Errorf("the Feed gate's report differs from the Step gate's:\nfeed %s\nstep %s", feed.Summary(), step.Summary())
	}
	if n := promptFeeds.Load(); n != int64(len(prompts)) {
		t.Errorf("%d prompts fed through Feed, want %d", n, len(prompts))
	}
	if otherFeeds.Load() == 0 {
		t.Errorf("no teacher-forced continuation fed through Feed")
	}
	t.Log(feed.Summary())
}

// TestChunkedPrefillAllBitIdentical: the reference's prompt rows in refChunkRows chunks, each
// continuing the state, are the whole-prompt PrefillAll's bit for bit, so a streamed gate
// reports what one holding all rows would.
func TestChunkedPrefillAllBitIdentical(t *testing.T) {
	m, prompts, _ := gateFixture(t)
	ids := longPrompt(prompts).IDs
	whole, err := m.PrefillAll(m.NewState(), ids)
	if err != nil {
		t.Fatal(err)
	}
	V := m.VocabSize()
	var rows [][]float32 // each chunk in a buffer of its own, never reused
	get := func() ([]float32, error) { return make([]float32, refChunkRows*V), nil }
	tr, err := m.trajectory(ids, 2, get, func([]float32) {}, func(c refChunk) {
		rows = append(rows, c.rows...)
		c.release()
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(ids) {
		t.Fatalf("%d rows emitted for %d positions", len(rows), len(ids))
	}
	for i := range ids {
		if !slices.Equal(rows[i], whole[i*V:(i+1)*V]) {
			t.Fatalf("position %d: chunked row differs from the whole prefill's", i)
		}
		if tr.tops[i] != kernels.Argmax(rows[i]) {
			t.Fatalf("position %d: top %d, row says %d", i, tr.tops[i], kernels.Argmax(rows[i]))
		}
	}
}

// replayCandidate feeds its prompt instantly from rows computed beforehand (refCandidate's,
// bit for bit), so it runs far ahead of the reference: the judge must hold it back.
type replayCandidate struct {
	*refCandidate
	prompt []int
	rows   [][]float32
	end    *State
}

func (c *replayCandidate) Feed(ids []int, row func(int, []float32) error) error {
	if c.st.Len != 0 || !slices.Equal(ids, c.prompt) {
		return errors.New("replayCandidate: not its prompt")
	}
	for i, r := range c.rows {
		if err := row(i, slices.Clone(r)); err != nil {
			return err
		}
	}
	c.st = c.end.Clone()
	return nil
}

// The gate holds at most maxHeldRows prompt rows at once on a 519-token prompt, whichever side
// runs ahead: the reference (the candidate steps slowly) or the candidate (it replays its rows
// at once); and gives every row back. The reports stay the Step gate's.
func TestGateHeldRowsBounded(t *testing.T) {
	m, prompts, _ := gateFixture(t)
	long := []GatePrompt{longPrompt(prompts)}
	opt := DefaultGateOptions()
	opt.MinConfident = 0
	ids := long[0].IDs
	pre := &refCandidate{m: m, st: m.NewState()}
	var rows [][]float32
	for _, id := range ids {
		r, err := pre.Step(id)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, r)
	}
	var want any
	for _, c := range []struct {
		name string
		cand func() (Candidate, error)
	}{
		{"step", func() (Candidate, error) {
			return &slowCandidate{refCandidate{m: m, st: m.NewState()}, time.Millisecond, new(atomic.Int64)}, nil
		}},
		{"replay", func() (Candidate, error) {
			return &replayCandidate{refCandidate: &refCandidate{m: m, st: m.NewState()}, prompt: ids, rows: rows, end: pre.st}, nil
		}},
	} {
		rowsHeld.peak.Store(rowsHeld.n.Load())
		rep, err := Gate(m, c.cand, long, opt)
		got := gateJSON(t, rep, err)
		if want == nil {
			want = got
		} else if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: report differs from the step candidate's", c.name)
		}
		peak := rowsHeld.peak.Load()
		t.Logf("%s: peak %d prompt rows held of %d (bound %d)", c.name, peak, len(ids), maxHeldRows)
		if peak > int64(maxHeldRows) || peak < refChunkRows {
			t.Errorf("%s: peak %d prompt rows held, want %d..%d", c.name, peak, refChunkRows, maxHeldRows)
		}
		if n := rowsHeld.n.Load(); n != 0 {
			t.Errorf("%s: %d rows still held after the gate", c.name, n)
		}
	}
}

// failingCandidate fails at its nth step.
type failingCandidate struct {
	*refCandidate
	n int
}

func (c *failingCandidate) Step(id int) ([]float32, error) {
	if c.st.Len == c.n {
		return nil, errors.New("broken at step")
	}
	return c.refCandidate.Step(id)
}

// A candidate failing in the middle of a long prompt ends the gate with its error while the
// reference waits for buffers the judge will not give back: Gate stops it and returns.
func TestGateCandidateFailsMidPrompt(t *testing.T) {
	m, prompts, _ := gateFixture(t)
	opt := DefaultGateOptions()
	opt.MinConfident = 0
	_, err := Gate(m, func() (Candidate, error) { return &failingCandidate{&refCandidate{m: m, st: m.NewState()}, 40}, nil },
		[]GatePrompt{longPrompt(prompts), prompts[1]}, opt)
	if err == nil || !strings.Contains(err.Error(), "broken at step") {
		t.Fatalf("err %v, want the candidate's", err)
	}
}
