package oracle

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// ShareTrajectories makes every later Gate on m reuse the reference's trajectory of a prompt
// (its logit rows, greedy continuation and margins) computed by an earlier Gate for the same
// ids and token count, instead of running the reference again: a multi-target export gates
// every bundle against the same reference. The reference is deterministic (kernels.MatVec
// gives the same bits for any worker count), so a shared trajectory is exactly the one a fresh
// run would compute, and the reports are unchanged. The price is memory: every prompt's rows
// stay held (V floats per position: about 0.7 GB for the default prompts at Qwen3.5's 248,320
// vocabulary, whatever the model size) until ReleaseTrajectories.
func (m *Model) ShareTrajectories() {
	if m.shared == nil {
		m.shared = &trajMemo{m: map[string]*refTrajectory{}}
	}
}

// ReleaseTrajectories drops the shared trajectories and stops sharing.
func (m *Model) ReleaseTrajectories() { m.shared = nil }

// trajMemo holds shared trajectories by trajKey.
type trajMemo struct {
	mu sync.Mutex
	m  map[string]*refTrajectory
}

func trajKey(ids []int, n int) string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(n))
	for _, id := range ids {
		b.WriteByte(',')
		b.WriteString(strconv.Itoa(id))
	}
	return b.String()
}

// refFuture is the reference's side of one prompt, produced ahead of the candidate.
type refFuture struct {
	// chunks are the prompt positions' rows in order (gate_stream.go), or a chunk of nil rows
	// when the reference failed or stopped before them.
	chunks chan refChunk
	done   chan struct{} // closed when tr or err is set
	tr     *refTrajectory
	err    error
}

// errReferenceStopped marks the prompts after one whose reference run failed.
var errReferenceStopped = errors.New("reference stopped at an earlier prompt's error")

// refRun runs the reference over all prompts in order on one goroutine, ahead of the
// candidate, and counts the confident teacher-forced positions of the whole set. When that
// count is known to be below opt.MinConfident, weak is set: the verdict is a *WeakPromptsError
// whatever the candidate does, so Gate stops stepping it instead of finishing every prompt.
// The reference runs at most refAheadChunks chunks of prompt rows ahead of the judge; when that
// holds it back while the count is open, it scouts the rest of the set to settle it (scout).
type refRun struct {
	futs      []*refFuture
	weak      atomic.Bool
	stopped   chan struct{} // closed when Gate is returning: run no further chunk or prompt
	exited    chan struct{} // closed when the goroutine has returned (it reads the mapped checkpoint)
	confident int           // the prompts done so far; the whole set's once weak is set
	stopOnce  sync.Once

	// Owned by the goroutine.
	m       *Model
	prompts []GatePrompt
	opt     GateOptions
	bufs    rowBufs
	cur     int  // the prompt being run
	scouted bool // the count has been settled by scouting
}

// close stops the reference after its current chunk and waits for its goroutine: the caller may
// unmap the checkpoint as soon as Gate returns, so nothing may still be reading it.
func (rr *refRun) close() {
	rr.stopOnce.Do(func() { close(rr.stopped) })
	<-rr.exited
}

func (m *Model) startReference(prompts []GatePrompt, opt GateOptions) *refRun {
	rr := &refRun{futs: make([]*refFuture, len(prompts)), stopped: make(chan struct{}), exited: make(chan struct{}),
		m: m, prompts: prompts, opt: opt}
	longest := 0
	for i, p := range prompts {
		longest = max(longest, len(p.IDs))
		chunks := (len(p.IDs)+refChunkRows-1)/refChunkRows + 1 // and a failure mark: sends never block
		rr.futs[i] = &refFuture{chunks: make(chan refChunk, chunks), done: make(chan struct{})}
	}
	rr.bufs = rowBufs{free: make(chan []float32, refAheadChunks), size: min(longest, refChunkRows) * m.vocab}
	go func() {
		defer close(rr.exited)
		var failed error
		for i, p := range prompts {
			f := rr.futs[i]
			rr.cur = i
			if failed == nil {
				select {
				case <-rr.stopped:
					failed = errReferenceStopped
				default:
				}
			}
			if failed != nil {
				f.chunks <- refChunk{}
				f.err = errReferenceStopped
				close(f.done)
				continue
			}
			f.tr, f.err = m.sharedTrajectory(p.IDs, opt.Tokens, rr.getBuf, rr.putBuf, func(c refChunk) { f.chunks <- c })
			if f.err != nil {
				f.chunks <- refChunk{}
				failed = f.err
				if f.err == errWeakFound {
					f.err = errReferenceStopped
				}
			} else {
				rr.confident += f.tr.confident(opt.MinMargin) // the count judge makes
			}
			close(f.done)
		}
		if failed == nil && rr.confident < opt.MinConfident {
			rr.weak.Store(true)
		}
	}()
	return rr
}

// sharedTrajectory is trajectory, through m's shared trajectories when there are any (their
// prompt rows are kept, not streamed through recycled buffers).
func (m *Model) sharedTrajectory(ids []int, n int, get func() ([]float32, error), put func([]float32), emit func(refChunk)) (*refTrajectory, error) {
	memo := m.shared
	if memo == nil {
		return m.trajectory(ids, n, false, get, put, emit)
	}
	key := trajKey(ids, n)
	memo.mu.Lock()
	tr := memo.m[key]
	memo.mu.Unlock()
	if tr != nil {
		tr.emitKept(len(ids), emit)
		return tr, nil
	}
	tr, err := m.trajectory(ids, n, true, nil, nil, emit)
	if err == nil {
		memo.mu.Lock()
		memo.m[key] = tr
		memo.mu.Unlock()
	}
	return tr, err
}

// errWeakStop stops the candidate once the reference has shown the prompts too weak.
var errWeakStop = errors.New("gate prompts too weak: candidate stopped")

// Prepared is a reference pass over a prompt set started ahead of the gates (Prepare).
type Prepared struct {
	rr   *refRun
	done chan struct{}
	err  error
}

// Prepare shares m's trajectories (ShareTrajectories) and runs the reference over prompts on
// its own goroutine, so that later gates on the same prompts (or any subset) find every
// trajectory computed and the candidate runs alone. A caller starts it before work that does
// not need the reference (quantizing and writing bundles) and calls Wait before the first gate.
// qconv export does not use it yet: at Qwen3.5's vocabulary the held rows (~0.7 GB) on top of
// the quantizer's buffers took a 0.8B --target all run from 5.3 GB to 6.6 GB peak RSS
// (docs/gate.md, Cost).
func (m *Model) Prepare(prompts []GatePrompt, opt GateOptions) *Prepared {
	m.ShareTrajectories()
	p := &Prepared{done: make(chan struct{})}
	for _, pr := range prompts {
		if err := m.CheckIDs(pr.IDs); err != nil || len(pr.IDs) == 0 {
			close(p.done) // Gate reports the bad prompt itself
			return p
		}
	}
	p.rr = m.startReference(prompts, opt)
	go func() {
		defer close(p.done)
		for i, f := range p.rr.futs {
			<-f.done
			if f.err != nil {
				p.err = fmt.Errorf("gate: prompt %s: reference: %w", prompts[i].Name, f.err)
				return
			}
			f.tr = nil // held by the shared trajectories
		}
		if p.rr.weak.Load() {
			p.err = &WeakPromptsError{Confident: p.rr.confident, Min: opt.MinConfident, Report: &GateReport{Options: opt}}
		}
	}()
	return p
}

// Err is the pass's error if it has finished with one (the prompts too weak, a reference
// failure), without waiting; nil while it runs.
func (p *Prepared) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// Wait waits for the pass and returns its error: a *WeakPromptsError when the whole prompt set
// gives fewer confident positions than opt.MinConfident (every gate on it or on a subset would
// refuse it), or the reference's own failure.
func (p *Prepared) Wait() error {
	<-p.done
	return p.err
}

// Stop ends the pass after the prompt it is running and waits for it (for a caller that gives up
// early and may then unmap the checkpoint).
func (p *Prepared) Stop() {
	if p.rr != nil {
		p.rr.close()
	}
}
