package oracle

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"qconv/internal/kernels"
)

// BenchmarkGateReference is the gate's reference side on the built-in id prompts (lengths 1, 7,
// 33, 70 and 512) with 16 greedy tokens each, against a consumer that judges nothing:
//
//	QCONV_SYNTH=/path/to/synth go test ./oracle -run '^$' -bench GateReference -benchtime 1x
//
// "whole" is the gate before streaming (one PrefillAll over each prompt, every row held until
// the prompt is judged); "streamed" is startReference's (chunks through recycled buffers). Both
// report peak-heap-MB, the largest live heap sampled every 10 ms while they run.
func BenchmarkGateReference(b *testing.B) {
	_, m := synthModel(b)
	V := m.VocabSize()
	var prompts []GatePrompt
	for _, n := range []int{1, 7, 33, 70, 512} {
		prompts = append(prompts, GatePrompt{IDs: benchPrompt(n, V)})
	}
	opt := DefaultGateOptions()
	opt.MinConfident = 0
	b.Run("whole", func(b *testing.B) {
		peak := sampleHeap(b, func() {
			for _, p := range prompts {
				st := m.NewState()
				all, err := m.PrefillAll(st, p.IDs)
				if err != nil {
					b.Fatal(err)
				}
				last := all[(len(p.IDs)-1)*V:]
				var rows [][]float32 // held until the prompt is judged, as the gate did
				for range opt.Tokens {
					if last, err = m.Decode(st, kernels.Argmax(last)); err != nil {
						b.Fatal(err)
					}
					rows = append(rows, last)
				}
				for i := range p.IDs { // the old trajectory's margins
					Margin(all[i*V : (i+1)*V])
				}
				for _, r := range rows {
					Margin(r)
				}
				runtime.KeepAlive(all)
			}
		})
		b.ReportMetric(peak, "peak-heap-MB")
	})
	b.Run("streamed", func(b *testing.B) {
		peak := sampleHeap(b, func() {
			rr := m.startReference(prompts, opt)
			for i, f := range rr.futs {
				for got := 0; got < len(prompts[i].IDs); {
					c := <-f.chunks
					if c.rows == nil {
						b.Fatal("reference failed")
					}
					got += len(c.rows)
					c.release()
				}
				<-f.done
				if f.err != nil {
					b.Fatal(f.err)
				}
			}
			rr.close()
		})
		b.ReportMetric(peak, "peak-heap-MB")
	})
}

// sampleHeap runs f b.N times and returns the largest HeapAlloc seen, in MB.
func sampleHeap(b *testing.B, f func()) float64 {
	runtime.GC()
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var ms runtime.MemStats
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	b.ResetTimer()
	for range b.N {
		f()
	}
	b.StopTimer()
	close(stop)
	<-done
	return float64(peak.Load()) / 1e6
}
