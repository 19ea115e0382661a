package export

import (
	"fmt"
	"testing"

	"qconv/graph/interp"
	"qconv/internal/benchutil"
	"qconv/recipe"
)

// BenchmarkFeedVsStep times teacher-forced tokens through a target's graph quantized in memory
// as an export writes it: interp.Session.Feed (time-batched, FeedChunk tokens per weight read)
// against Step per token (the baseline), alternating one block of each from the same position so
// both see the same machine load. It needs the 0.8B-size synthetic checkpoint:
//
//	QCONV_SYNTH=DIR go test ./export -run '^$' -bench FeedVsStep -benchtime 3x
//
// feed/step-speedup is Step's time over Feed's for the same tokens (above 1: Feed is faster).
func BenchmarkFeedVsStep(b *testing.B) {
	ck := synthCheckpoint(b)
	defer ck.Close()
	t, err := recipe.TargetByName("gpu-pipelined")
	if err != nil {
		b.Fatal(err)
	}
	built := benchBuild(b, ck, t)
	vocab := ck.Config.VocabSize
	ids := func(n, seed int) []int {
		out := make([]int, n)
		for i := range out {
			out[i] = (i*104729 + seed*7919 + 7) % vocab
		}
		return out
	}
	for _, at := range []int{16, 512} {
		b.Run(fmt.Sprintf("pos%d", at), func(b *testing.B) {
			start, err := interp.NewSession(built.Decode, nil)
			if err != nil {
				b.Fatal(err)
			}
			if err := start.Feed(ids(at, 1), func(int, []float32) error { return nil }); err != nil {
				b.Fatal(err)
			}
			b.Logf("%s", start.FeedPlan())
			const block = 64
			var clocks benchutil.TwoClocks
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				fs, err := start.Fork()
				if err != nil {
					b.Fatal(err)
				}
				ss, err := start.Fork()
				if err != nil {
					b.Fatal(err)
				}
				toks := ids(block, i+2)
				b.StartTimer()
				clocks.Pair(func() {
					if err := fs.Feed(toks, func(int, []float32) error { return nil }); err != nil {
						b.Fatal(err)
					}
				}, func() {
					for _, id := range toks {
						if _, err := ss.Step(id); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
			n := clocks.N() * block
			b.ReportMetric(n/clocks.Work.Seconds(), "feed-tok/s")
			b.ReportMetric(n/clocks.Base.Seconds(), "step-tok/s")
			b.ReportMetric(float64(clocks.Base)/float64(clocks.Work), "feed/step-speedup")
			benchutil.LogMemory(b)
		})
	}
}
