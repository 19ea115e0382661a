package oracle

import (
	"errors"
	"fmt"
	"math"
)

// Step is one greedy decoding step: the logits it chose from and what was chosen.
type Step struct {
	ID         int       // kernels.Argmax of Logits (lowest id on a tie; NewStep refuses NaN rows)
	Logits     []float32 // [V]
	Top5IDs    []int     // highest logits first
	Top5Logits []float32
	Margin     float64 // top-1 minus top-2 softmax probability
}

// Generation is a greedy continuation of a prompt.
type Generation struct {
	PromptIDs []int
	Steps     []Step
	// Next holds the logits after the last generated token was fed (GenerateOptions.FeedLast).
	Next []float32
}

// IDs lists the generated token ids.
func (g *Generation) IDs() []int {
	ids := make([]int, len(g.Steps))
	for i, s := range g.Steps {
		ids[i] = s.ID
	}
	return ids
}

// GenerateOptions control Generate.
type GenerateOptions struct {
	Tokens int // greedy tokens to generate (at least 1)
	// FeedLast also feeds the last generated token, so the state then covers prompt and
	// generation and Generation.Next holds the logits that follow (the 17th next_logits row of
	// the goldens). It costs one more decode step.
	FeedLast bool
}

// Generate feeds prompt into s and decodes greedily. It does not stop at an end-of-sequence
// token: the gate compares fixed-length trajectories.
func (m *Model) Generate(s *State, prompt []int, opt GenerateOptions) (*Generation, error) {
	if opt.Tokens < 1 {
		return nil, fmt.Errorf("oracle: generate %d tokens: need at least 1", opt.Tokens)
	}
	logits, err := m.Prefill(s, prompt)
	if err != nil {
		return nil, err
	}
	g := &Generation{PromptIDs: append([]int(nil), prompt...)}
	for i := range opt.Tokens {
		st, err := NewStep(logits)
		if err != nil {
			return nil, fmt.Errorf("oracle: step %d: %w", i, err)
		}
		g.Steps = append(g.Steps, st)
		if i == opt.Tokens-1 && !opt.FeedLast {
			break
		}
		if logits, err = m.Decode(s, st.ID); err != nil {
			return nil, err
		}
	}
	if opt.FeedLast {
		g.Next = logits
	}
	return g, nil
}

// NewStep describes a logits row: its greedy id, top 5 and probability margin. It fails on a
// NaN, which has no order.
func NewStep(logits []float32) (Step, error) {
	for i, v := range logits {
		if math.IsNaN(float64(v)) {
			return Step{}, fmt.Errorf("logit %d is NaN", i)
		}
	}
	ids, vals := TopK(logits, 5)
	if len(ids) == 0 {
		return Step{}, errors.New("no logits")
	}
	return Step{ID: ids[0], Logits: logits, Top5IDs: ids, Top5Logits: vals, Margin: Margin(logits)}, nil
}

// TopK returns the k largest logits and their ids, largest first; equal logits keep id order.
func TopK(logits []float32, k int) ([]int, []float32) {
	k = min(k, len(logits))
	ids := make([]int, 0, k)
	vals := make([]float32, 0, k)
	for i, v := range logits {
		if len(ids) == k && !(v > vals[k-1]) {
			continue
		}
		// Insert after every entry ≥ v, so earlier ids win ties.
		p := len(ids)
		for p > 0 && vals[p-1] < v {
			p--
		}
		if len(ids) < k {
			ids, vals = append(ids, 0), append(vals, 0)
		}
		copy(ids[p+1:], ids[p:len(ids)-1])
		copy(vals[p+1:], vals[p:len(vals)-1])
		ids[p], vals[p] = i, v
	}
	return ids, vals
}

// Margin is the softmax probability of the top logit minus that of the second, in float64.
func Margin(logits []float32) float64 {
	m, _ := marginLSE(logits)
	return m
}

// marginLSE is Margin and the row's log-sum-exp, from one pass of exp: the sum Margin divides by
// is logSumExp's, term for term in the same order around the same maximum, so lse equals
// logSumExp(logits) bit for bit (TestMarginLSEBitIdentical). lse is NaN for fewer than 2 logits.
func marginLSE(logits []float32) (margin, lse float64) {
	if len(logits) < 2 {
		return 1, math.NaN()
	}
	_, top := TopK(logits, 2)
	l1, l2 := float64(top[0]), float64(top[1])
	var sum float64
	for _, v := range logits {
		sum += math.Exp(float64(v) - l1)
	}
	return (1 - math.Exp(l2-l1)) / sum, l1 + math.Log(sum)
}
