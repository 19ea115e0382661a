package gating

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"testing"

	"qconv/graph"
	"qconv/graph/interp"
	"qconv/hf"
	"qconv/lower"
	"qconv/oracle"
)

// sequenceCandidate is the optional interface the gate uses for teacher-forced prompts
// (oracle.SequenceCandidate); every adapter the gate is given implements it.
type sequenceCandidate interface {
	oracle.Candidate
	Feed(ids []int, row func(i int, logits []float32) error) error
}

var (
	_ sequenceCandidate = sessionCandidate{}
	_ sequenceCandidate = stockCandidate{}
	_ sequenceCandidate = ctxCandidate{}
)

// fakeSeq records the chunks it is fed.
type fakeSeq struct{ chunks *[][]int }

func (f fakeSeq) Step(id int) ([]float32, error)  { return []float32{float32(id)}, nil }
func (f fakeSeq) Fork() (oracle.Candidate, error) { return f, nil }
func (f fakeSeq) Feed(ids []int, row func(int, []float32) error) error {
	*f.chunks = append(*f.chunks, append([]int(nil), ids...))
	for i, id := range ids {
		if err := row(i, []float32{float32(id)}); err != nil {
			return err
		}
	}
	return nil
}

// The context wrapper forwards Feed chunk by chunk with the rows renumbered from the start of
// the call, and stops before the next chunk once the context is cancelled.
func TestContextCandidateFeedChunks(t *testing.T) {
	defer func(n int) { interp.FeedChunk = n }(interp.FeedChunk)
	interp.FeedChunk = 4
	var chunks [][]int
	ids := []int{10, 11, 12, 13, 14, 15, 16, 17, 18, 19}
	c := WithContext(context.Background(), fakeSeq{&chunks}).(sequenceCandidate)
	next := 0
	err := c.Feed(ids, func(i int, l []float32) error {
		if i != next || l[0] != float32(ids[i]) {
			t.Errorf("row %d carries %v, want row %d of id %d", i, l, next, ids[next])
		}
		next++
		return nil
	})
	if err != nil || next != len(ids) || len(chunks) != 3 {
		t.Fatalf("Feed: %v after %d rows in %d chunks, want 10 rows in 3 chunks", err, next, len(chunks))
	}

	ctx, cancel := context.WithCancel(context.Background())
	chunks = nil
	c = WithContext(ctx, fakeSeq{&chunks}).(sequenceCandidate)
	err = c.Feed(ids, func(i int, _ []float32) error {
		if i == 1 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || len(chunks) != 1 {
		t.Fatalf("Feed after cancel: %v after %d chunks, want context.Canceled after 1", err, len(chunks))
	}
}

// Through the gate's adapters (context wrapper over a session), Feed's rows equal Step's bit for
// bit.
func TestSessionCandidateFeedMatchesStep(t *testing.T) {
	defer func(n int) { interp.FeedChunk = n }(interp.FeedChunk)
	interp.FeedChunk = 5
	ck, err := hf.Open(filepath.Join("..", "testdata", "tinyqwen35-code"))
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	m, err := lower.Lower(ck.Config, lower.Options{Contract: graph.Pipelined, Compute: graph.F16, StateDType: graph.F32,
		Weights: lower.DenseWeights{Checkpoint: ck, DType: graph.F16}})
	if err != nil {
		t.Fatal(err)
	}
	newCand := func() sequenceCandidate {
		s, err := interp.NewSession(m, nil)
		if err != nil {
			t.Fatal(err)
		}
		return WithContext(context.Background(), SessionCandidate(s)).(sequenceCandidate)
	}
	fed, stepped := newCand(), newCand()
	ids := []int{1, 5, 9, 200, 31, 7, 7, 64, 1000, 3, 8, 2}
	rows := 0
	err = fed.Feed(ids, func(i int, l []float32) error {
		want, err := stepped.Step(ids[i])
		if err != nil {
			return err
		}
		for j := range want {
			if math.Float32bits(want[j]) != math.Float32bits(l[j]) {
				t.Fatalf("row %d logit %d: Feed %v, Step %v", i, j, l[j], want[j])
			}
		}
		rows++
		return nil
	})
	if err != nil || rows != len(ids) {
		t.Fatalf("Feed: %v after %d rows", err, rows)
	}
}
