package export

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"qconv/graph/interp"
	"qconv/hf"
	"qconv/internal/synth"
	"qconv/internal/testfix"
	"qconv/recipe"
)

// feedSession is what the gate drives on either contract.
type feedSession interface {
	Step(id int) ([]float32, error)
	Feed(ids []int, row func(i int, logits []float32) error) error
	FeedPlan() string
	VocabSize() int
}

func newFeedSession(t *testing.T, bt *Built) (a, b feedSession) {
	t.Helper()
	if interp.IsStock(bt.Decode) {
		s1, err := interp.NewStockSession(bt.Decode)
		if err != nil {
			t.Fatal(err)
		}
		s2, err := interp.NewStockSession(bt.Decode)
		if err != nil {
			t.Fatal(err)
		}
		return s1, s2
	}
	s1, err := interp.NewSession(bt.Decode, nil)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := interp.NewSession(bt.Decode, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s1, s2
}

// Feed over a prompt longer than one chunk, from a position past zero, gives every row
// bit-identical to Step per token on every target's graph as an export builds it (quantized
// weights, fp16 or fp32 states, tied and untied heads, a hidden size that is not a multiple of
// 32), leaves the same state (the SSM states compare equal and further steps agree bit for bit),
// and takes the batched path on every contract (the host-cache one through its state form).
func TestFeedMatchesStepEveryTarget(t *testing.T) {
	defer func(n int) { interp.FeedChunk = n }(interp.FeedChunk)
	interp.FeedChunk = 16
	odd := t.TempDir()
	if err := synth.Write(odd, synth.Options{Dims: synth.Sizes["4b"].Scaled(32, 4, 512), Layout: synth.TextOnly}); err != nil {
		t.Fatal(err)
	}
	fixtures := []struct{ name, dir string }{
		{"trained tied", filepath.Join("..", "testdata", "tinyqwen35-code")},
		{"random untied", filepath.Join("..", "testdata", "random", "tiny_untied_8L")},
		{"synth hidden 80", odd},
	}
	for _, fx := range fixtures {
		ck, err := hf.Open(fx.dir)
		if err != nil {
			t.Fatal(err)
		}
		defer ck.Close()
		for _, tg := range recipe.Targets {
			t.Run(fx.name+"/"+tg.Name, func(t *testing.T) {
				var fl recipe.Flags
				if tg.Default.Head == "int8" && ck.Config.HiddenSize%32 != 0 {
					fl.HeadGranularity, fl.AllowDelegate = "perchan", true // block32 cannot tile hidden 80
				}
				bt, err := Build(ck, tg, fl)
				if err != nil {
					t.Fatal(err)
				}
				fed, stepped := newFeedSession(t, bt)
				plan := fed.FeedPlan()
				if !strings.HasPrefix(plan, "batched") {
					t.Fatalf("FeedPlan = %q; want batched", plan)
				}
				vocab := fed.VocabSize()
				// 90 tokens: the host-cache session's window (64 slots at first) grows during Feed.
				ids := make([]int, 90)
				for i := range ids {
					ids[i] = (i*7919 + 11) % vocab
				}
				// Three steps first, so Feed starts mid-sequence on both.
				for _, id := range ids[:3] {
					a, err := fed.Step(id)
					if err != nil {
						t.Fatal(err)
					}
					b, err := stepped.Step(id)
					if err != nil {
						t.Fatal(err)
					}
					if i := testfix.FirstBitDiff(a, b); i >= 0 {
						t.Fatalf("warm-up step differs at %d", i)
					}
				}
				var want [][]float32
				for _, id := range ids[3:] {
					l, err := stepped.Step(id)
					if err != nil {
						t.Fatal(err)
					}
					want = append(want, l)
				}
				rows := 0
				err = fed.Feed(ids[3:], func(i int, l []float32) error {
					if i != rows {
						return fmt.Errorf("row %d delivered as %d", rows, i)
					}
					rows++
					if j := testfix.FirstBitDiff(l, want[i]); j >= 0 {
						return fmt.Errorf("row %d: logit %d is %v, Step gives %v", i, j, l[j], want[i][j])
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				if rows != len(ids)-3 {
					t.Fatalf("%d rows delivered, want %d", rows, len(ids)-3)
				}
				if a, ok := fed.(*interp.Session); ok {
					c1, r1 := a.SSMState()
					c2, r2 := stepped.(*interp.Session).SSMState()
					if testfix.FirstBitDiff(c1, c2) >= 0 || testfix.FirstBitDiff(r1, r2) >= 0 {
						t.Fatalf("SSM states after Feed differ from Step's")
					}
				}
				for k, id := range []int{5, 17, 2, 9} {
					a, err := fed.Step(id)
					if err != nil {
						t.Fatal(err)
					}
					b, err := stepped.Step(id)
					if err != nil {
						t.Fatal(err)
					}
					if i := testfix.FirstBitDiff(a, b); i >= 0 {
						t.Fatalf("step %d after Feed differs at logit %d: %v vs %v", k, i, a[i], b[i])
					}
				}
			})
		}
	}
}
