package export

import (
	"fmt"
	"testing"
	"time"

	"qconv/gating"
	"qconv/graph/interp"
	"qconv/hf"
	"qconv/internal/benchutil"
	"qconv/oracle"
	"qconv/recipe"
)

// BenchmarkInterpDecodeVsOracle times decode steps of a target's lowered graph, quantized in
// memory exactly as an export writes it (Build) and run by the interpreter through a
// interp.Session, against the fp32 reference's decode steps on the same checkpoint, alternating
// one step of each so both see the same machine load. It needs a synthetic checkpoint with the
// real Qwen3.5-0.8B dimensions:
//
//	go run ./testdata/synth -o /tmp/qwen35-synth
//	QCONV_SYNTH=/tmp/qwen35-synth go test ./export -run '^$' -bench InterpDecodeVsOracle -cpu 1,2
//
// Both start after the same 16-token prompt and are reset every 64 steps, as the gate's short
// rollouts are. interp/oracle is the ratio of total step times (above 1: the candidate is slower
// than the reference); median-ratio is the median of the per-pair ratios.
func BenchmarkInterpDecodeVsOracle(b *testing.B) {
	ck := synthCheckpoint(b)
	defer ck.Close()
	ref, err := oracle.New(ck, oracle.Options{})
	if err != nil {
		b.Fatal(err)
	}
	prompt := make([]int, 16)
	for i := range prompt {
		prompt[i] = (i*7919 + 11) % ck.Config.VocabSize
	}
	refStart := ref.NewState()
	if _, err := ref.Prefill(refStart, prompt); err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"gpu-pipelined", "ios-gpu", "ios-ane"} {
		b.Run(name, func(b *testing.B) {
			t, err := recipe.TargetByName(name)
			if err != nil {
				b.Fatal(err)
			}
			built := benchBuild(b, ck, t)
			start, err := interp.NewSession(built.Decode, nil)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := start.Prefill(prompt); err != nil {
				b.Fatal(err)
			}
			logits := make([]float32, ref.VocabSize())
			sess, rs := start, refStart.Clone()
			reset := func() {
				if sess, err = start.Fork(); err != nil {
					b.Fatal(err)
				}
				rs = refStart.Clone()
			}
			reset()
			var clocks benchutil.TwoClocks
			for i := 0; b.Loop(); i++ {
				if i%64 == 63 {
					b.StopTimer()
					reset()
					b.StartTimer()
				}
				id := (i*104729 + 7) % ref.VocabSize()
				clocks.Pair(func() {
					if _, err := sess.Step(id); err != nil {
						b.Fatal(err)
					}
				}, func() {
					if err := ref.DecodeInto(logits, rs, id); err != nil {
						b.Fatal(err)
					}
				})
			}
			n := clocks.N()
			b.ReportMetric(n/clocks.Work.Seconds(), "interp-tok/s")
			b.ReportMetric(n/clocks.Base.Seconds(), "oracle-tok/s")
			b.ReportMetric(float64(clocks.Work)/float64(clocks.Base), "interp/oracle")
			b.ReportMetric(clocks.MedianWorkOverBase(), "median-ratio")
			benchutil.LogMemory(b)
		})
	}
}

// BenchmarkGate runs the publish gate on a target's graph quantized in memory (Build) against the
// fp32 reference, with the built-in id prompts (lengths 1, 7, 33, 70; what a checkpoint without a
// tokenizer gets), plus the prefill companion check for ios-gpu: the same work as the gate phase
// of `qconv export`, for profiling it. cand-steps/s is the candidate's decode steps (prompt, free
// rollout, teacher forcing) over the gate's time: compare it with BenchmarkInterpDecodeVsOracle's
// interp-tok/s to see what the gate spends beyond the candidate's steps.
func BenchmarkGate(b *testing.B) {
	ck := synthCheckpoint(b)
	defer ck.Close()
	ref, err := oracle.New(ck, oracle.Options{})
	if err != nil {
		b.Fatal(err)
	}
	prompts := defaultIDPrompts(ck.Config.VocabSize)
	opt := oracle.DefaultGateOptions()
	for _, name := range []string{"gpu-pipelined", "ios-gpu"} {
		b.Run(name, func(b *testing.B) {
			t, err := recipe.TargetByName(name)
			if err != nil {
				b.Fatal(err)
			}
			built := benchBuild(b, ck, t)
			newCand := func() (oracle.Candidate, error) {
				s, err := interp.NewSession(built.Decode, nil)
				if err != nil {
					return nil, err
				}
				return gating.SessionCandidate(s), nil
			}
			var gateTime, compTime time.Duration
			steps, n := 0, 0
			for b.Loop() {
				t0 := time.Now()
				rep, err := oracle.Gate(ref, newCand, prompts, opt)
				if err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if built.Prefill != nil {
					if _, err := gating.CheckCompanion(built.Decode, built.Prefill, prompts, oracle.DefaultGateOptions(), nil); err != nil {
						b.Fatal(err)
					}
				}
				gateTime += t1.Sub(t0)
				compTime += time.Since(t1)
				for _, p := range rep.Prompts {
					steps += len(p.Prompt.IDs) + opt.Tokens - 1 + len(p.RefGen)
				}
				n++
			}
			b.ReportMetric(gateTime.Seconds()/float64(n), "gate-s")
			b.ReportMetric(compTime.Seconds()/float64(n), "companion-s")
			b.ReportMetric(float64(steps)/gateTime.Seconds(), "cand-steps/s")
			benchutil.LogMemory(b)
		})
	}
}

var benchBuilt = map[string]*Built{}

// benchBuild builds t's graphs once per process (-cpu 1,2 reuse them: an int8-lut build runs
// k-means over the whole model).
func benchBuild(b *testing.B, ck *hf.Checkpoint, t *recipe.Target) *Built {
	if bt := benchBuilt[t.Name]; bt != nil {
		return bt
	}
	bt, err := Build(ck, t, recipe.Flags{})
	if err != nil {
		b.Fatal(err)
	}
	benchBuilt[t.Name] = bt
	return bt
}

func synthCheckpoint(b *testing.B) *hf.Checkpoint {
	dir := benchutil.SynthDir(b)
	ck, err := hf.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	return ck
}

// BenchmarkCompanionPrefill times the ios-gpu prompt path the gate's companion check runs: one
// 16-token block through the prefill companion, against the same 16 tokens as decode steps
// (the baseline, what a session without the companion does), alternating on fresh sessions.
// companion/decode above 1 means the companion is slower than decoding token by token.
func BenchmarkCompanionPrefill(b *testing.B) {
	ck := synthCheckpoint(b)
	defer ck.Close()
	t, err := recipe.TargetByName("ios-gpu")
	if err != nil {
		b.Fatal(err)
	}
	built := benchBuild(b, ck, t)
	ids := make([]int, recipe.PrefillTokens)
	for i := range ids {
		ids[i] = (i*7919 + 11) % ck.Config.VocabSize
	}
	var blockTime, stepTime time.Duration
	n := 0
	for b.Loop() {
		b.StopTimer()
		withBlock, err := interp.NewSession(built.Decode, built.Prefill)
		if err != nil {
			b.Fatal(err)
		}
		steps, err := interp.NewSession(built.Decode, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t0 := time.Now()
		if _, err := withBlock.Prefill(ids); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := steps.Prefill(ids); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		blockTime += t1.Sub(t0)
		stepTime += t2.Sub(t1)
		n++
	}
	tokens := float64(n * len(ids))
	b.ReportMetric(tokens/blockTime.Seconds(), "companion-tok/s")
	b.ReportMetric(tokens/stepTime.Seconds(), "decode-tok/s")
	b.ReportMetric(float64(blockTime)/float64(stepTime), "companion/decode")
	benchutil.LogMemory(b)
}

// BenchmarkHostWindow times ios-gpu decode steps of a session on a growing cache window (what
// the gate runs) against a session feeding all 2048 cache slots every step (the host-cache
// contract as written), alternating one step of each, after a 16-token prompt (pos16) and after a
// 512-token one fed through the prefill companion (pos512), 64 steps from each. Both give the same
// logits bit for bit (graph/interp's TestHostWindowMatchesFullCache); window/all is the ratio of
// step times (below 1: the window is faster).
func BenchmarkHostWindow(b *testing.B) {
	ck := synthCheckpoint(b)
	defer ck.Close()
	t, err := recipe.TargetByName("ios-gpu")
	if err != nil {
		b.Fatal(err)
	}
	built := benchBuild(b, ck, t)
	for _, n := range []int{16, 512} {
		b.Run(fmt.Sprintf("pos%d", n), func(b *testing.B) {
			prompt := make([]int, n)
			for i := range prompt {
				prompt[i] = (i*7919 + 11) % ck.Config.VocabSize
			}
			start := func(all bool) *interp.Session {
				newSession := interp.NewSession
				if all {
					newSession = interp.NewSessionAllSlots
				}
				s, err := newSession(built.Decode, built.Prefill)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := s.Prefill(prompt); err != nil {
					b.Fatal(err)
				}
				return s
			}
			win0, all0 := start(false), start(true)
			var win, all *interp.Session
			reset := func() {
				if win, err = win0.Fork(); err != nil {
					b.Fatal(err)
				}
				if all, err = all0.Fork(); err != nil {
					b.Fatal(err)
				}
			}
			reset()
			var clocks benchutil.TwoClocks
			for i := 0; b.Loop(); i++ {
				if i%64 == 63 {
					b.StopTimer()
					reset()
					b.StartTimer()
				}
				id := (i*104729 + 7) % ck.Config.VocabSize
				clocks.Pair(func() {
					if _, err := win.Step(id); err != nil {
						b.Fatal(err)
					}
				}, func() {
					if _, err := all.Step(id); err != nil {
						b.Fatal(err)
					}
				})
			}
			k := clocks.N()
			b.ReportMetric(k/clocks.Work.Seconds(), "window-tok/s")
			b.ReportMetric(k/clocks.Base.Seconds(), "all-slots-tok/s")
			b.ReportMetric(float64(clocks.Work)/float64(clocks.Base), "window/all")
			b.ReportMetric(clocks.MedianWorkOverBase(), "median-ratio")
		})
	}
}
