package oracle

import (
	"sync"
	"testing"

	"qconv/hf"
	"qconv/internal/benchutil"
)

// Benchmarks on a synthetic checkpoint with the real Qwen3.5-0.8B dimensions:
//
//	go run ./testdata/synth -o /tmp/qwen35-synth
//	QCONV_SYNTH=/tmp/qwen35-synth go test ./oracle -run '^$' -bench . -cpu 1,2
//
// BenchmarkStreamDecodeWeights reads, once per iteration, exactly the mapped weight bytes one
// decode step multiplies by: its tok/s is the memory-bandwidth bound that BenchmarkDecode's tok/s
// is reported against.

var synth struct {
	once sync.Once
	ck   *hf.Checkpoint
	m    *Model
	err  error
}

func synthModel(b *testing.B) (*hf.Checkpoint, *Model) {
	dir := benchutil.SynthDir(b)
	synth.once.Do(func() {
		synth.ck, synth.err = hf.Open(dir)
		if synth.err == nil {
			synth.m, synth.err = New(synth.ck, Options{})
		}
	})
	if synth.err != nil {
		b.Fatal(synth.err)
	}
	return synth.ck, synth.m
}

func benchPrompt(n int, vocab int) []int {
	ids := make([]int, n)
	for i := range ids {
		ids[i] = (i*7919 + 11) % vocab
	}
	return ids
}

// BenchmarkDecode times single-token decode steps after a 16-token prompt. The state is reset
// every 64 steps so the attention span stays that of a short chat turn.
func BenchmarkDecode(b *testing.B) {
	_, m := synthModel(b)
	start := m.NewState()
	if _, err := m.Prefill(start, benchPrompt(16, m.VocabSize())); err != nil {
		b.Fatal(err)
	}
	logits := make([]float32, m.VocabSize())
	s := start.Clone()
	if err := m.DecodeInto(logits, s, 1); err != nil { // grow scratch and caches outside the timer
		b.Fatal(err)
	}
	s = start.Clone()
	b.ResetTimer()
	for i := range b.N {
		if i%64 == 63 {
			b.StopTimer()
			s = start.Clone()
			b.StartTimer()
		}
		if err := m.DecodeInto(logits, s, i%m.VocabSize()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tok/s")
	benchutil.LogMemory(b)
}

// BenchmarkPrefill times a 64-token prompt (two chunks through the n-vector kernels).
func BenchmarkPrefill(b *testing.B) {
	_, m := synthModel(b)
	ids := benchPrompt(64, m.VocabSize())
	b.ResetTimer()
	for range b.N {
		if _, err := m.Prefill(m.NewState(), ids); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(ids))/b.Elapsed().Seconds(), "tok/s")
	benchutil.LogMemory(b)
}

// decodeWeightBytes lists the mapped bytes one decode step reads in full: every Linear weight
// and the head (the embedding when tied). Norms, conv taps and the one gathered embedding row
// are under 0.1% of it and left out.
func decodeWeightBytes(ck *hf.Checkpoint) [][]byte {
	var out [][]byte
	for _, s := range ck.Specs {
		if s.Kind == hf.KindLinear || s.Kind == hf.KindHead {
			t, _ := ck.Tensor(s.Name)
			out = append(out, t.Bytes())
		}
	}
	if ck.Config.TieWordEmbeddings {
		out = append(out, ck.Head().Bytes())
	}
	return out
}

// BenchmarkStreamDecodeWeights reads every byte a decode step reads, split over GOMAXPROCS
// goroutines as MatVec spreads rows, with the standard library's vectorised bytes.Count (AVX2 on
// amd64) so the loop is bound by memory, not by scalar loads: the bandwidth bound of
// BenchmarkDecode.
func BenchmarkStreamDecodeWeights(b *testing.B) {
	ck, _ := synthModel(b)
	bufs := decodeWeightBytes(ck)
	var total int64
	for _, buf := range bufs {
		total += int64(len(buf))
	}
	b.SetBytes(total)
	b.ResetTimer()
	for range b.N {
		benchutil.StreamRead(bufs)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tok/s")
}

// BenchmarkDecodeVsStream alternates one decode step with one streaming pass over the same
// weight bytes, so both see the same machine load (the machine is shared), and reports decode
// speed as a fraction of the bandwidth bound: the ratio of total times and the median of the
// per-pair ratios.
func BenchmarkDecodeVsStream(b *testing.B) {
	ck, m := synthModel(b)
	bufs := decodeWeightBytes(ck)
	start := m.NewState()
	if _, err := m.Prefill(start, benchPrompt(16, m.VocabSize())); err != nil {
		b.Fatal(err)
	}
	logits := make([]float32, m.VocabSize())
	s := start.Clone()
	var clocks benchutil.TwoClocks
	b.ResetTimer()
	for i := range b.N {
		if i%64 == 63 {
			s = start.Clone()
		}
		clocks.Pair(func() {
			if err := m.DecodeInto(logits, s, i%m.VocabSize()); err != nil {
				b.Fatal(err)
			}
		}, func() { benchutil.StreamRead(bufs) })
	}
	b.ReportMetric(float64(b.N)/clocks.Work.Seconds(), "decode-tok/s")
	b.ReportMetric(float64(b.N)/clocks.Base.Seconds(), "bound-tok/s")
	b.ReportMetric(float64(clocks.Base)/float64(clocks.Work), "frac-of-bound")
	b.ReportMetric(clocks.MedianBaseOverWork(), "median-frac")
}
