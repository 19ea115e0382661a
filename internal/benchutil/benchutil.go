// Package benchutil is the scaffolding the scale benchmarks share: locating the synthetic 0.8B
// checkpoint, a streaming-read baseline over the same bytes, and memory figures.
package benchutil

import (
	"bytes"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// SynthDir is $QCONV_SYNTH, the synthetic checkpoint the scale benchmarks run on; without it the
// benchmark is skipped with the way to make one.
func SynthDir(tb testing.TB) string {
	dir := os.Getenv("QCONV_SYNTH")
	if dir == "" {
		tb.Skip("QCONV_SYNTH is not set: write a 0.8B-size checkpoint with `go run ./testdata/synth -o DIR` and set QCONV_SYNTH=DIR")
	}
	return dir
}

var (
	streamSink atomic.Uint64
	streamByte = []byte{0x5a}
)

// StreamRead reads every byte of bufs once, split over GOMAXPROCS goroutines, with the
// vectorised bytes.Count so the pass is bound by memory, not by scalar loads: the bandwidth
// baseline a kernel reading the same bytes is measured against.
func StreamRead(bufs [][]byte) {
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			var sum uint64
			for _, buf := range bufs {
				lo, hi := len(buf)*w/workers, len(buf)*(w+1)/workers
				sum += uint64(bytes.Count(buf[lo:hi], streamByte))
			}
			streamSink.Add(sum)
		})
	}
	wg.Wait()
}

// MaxRSSMiB is the process's peak resident set size.
func MaxRSSMiB() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Maxrss) / 1024
}

// LogMemory logs the peak RSS and its current split into anonymous (heap, quantized outputs,
// scratch) and file-backed (mapped checkpoint or bundle) pages, where /proc says so.
func LogMemory(tb testing.TB) {
	fields := []string{"maxrss " + strconv.FormatFloat(MaxRSSMiB(), 'f', 0, 64) + " MiB"}
	if data, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			for _, k := range []string{"RssAnon:", "RssFile:"} {
				if strings.HasPrefix(line, k) {
					fields = append(fields, strings.Join(strings.Fields(line), " "))
				}
			}
		}
	}
	tb.Logf("memory: %s", strings.Join(fields, ", "))
}

// TwoClocks times a piece of work and its same-run baseline back to back in every iteration, so
// a figure is a ratio against a baseline measured under the same load (the machine is shared).
type TwoClocks struct {
	Work, Base time.Duration // summed over the iterations
	pairs      [][2]time.Duration
}

// Pair runs work then base, once each, and adds their times.
func (c *TwoClocks) Pair(work, base func()) {
	t0 := time.Now()
	work()
	t1 := time.Now()
	base()
	t2 := time.Now()
	c.Work += t1.Sub(t0)
	c.Base += t2.Sub(t1)
	c.pairs = append(c.pairs, [2]time.Duration{t1.Sub(t0), t2.Sub(t1)})
}

// N is the number of pairs run.
func (c *TwoClocks) N() float64 { return float64(len(c.pairs)) }

// MedianWorkOverBase is the median of the per-iteration ratios work/base.
func (c *TwoClocks) MedianWorkOverBase() float64 { return c.median(0, 1) }

// MedianBaseOverWork is the median of the per-iteration ratios base/work.
func (c *TwoClocks) MedianBaseOverWork() float64 { return c.median(1, 0) }

func (c *TwoClocks) median(num, den int) float64 {
	if len(c.pairs) == 0 {
		return 0
	}
	ratios := make([]float64, len(c.pairs))
	for i, p := range c.pairs {
		ratios[i] = float64(p[num]) / float64(p[den])
	}
	slices.Sort(ratios)
	return ratios[len(ratios)/2]
}
