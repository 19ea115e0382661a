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
// gives the same bits for any worker count) and a shared trajectory's rows are read back
// exactly as written, so it is the one a fresh run would compute, and the reports are
// unchanged. Memory is not the price: the rows go to an unlinked temporary file in
// os.TempDir() as the first gate computes them and come back a chunk at a time into the
// reference's recycled buffers (gate_spill.go); only the tops, margins and greedy ids stay in
// memory. A row that cannot be written (disk full, a short write) or read back leaves its prompt
// unshared: a later gate computes it again, and no gate fails or changes for it. When the spill
// file cannot be created (TMPDIR missing or read-only) ShareTrajectories returns why and
// nothing is shared. ReleaseTrajectories closes the file. Neither may run during a Gate on m.
func (m *Model) ShareTrajectories() error {
	if m.shared != nil {
		return nil
	}
	memo, err := newTrajMemo()
	if err != nil {
		return fmt.Errorf("gate: sharing the reference's trajectories: %w", err)
	}
	m.shared = memo
	return nil
}

// ReleaseTrajectories drops the shared trajectories, closes their spill file and stops sharing.
func (m *Model) ReleaseTrajectories() {
	if m.shared != nil {
		m.shared.close()
		m.shared = nil
	}
}

// SharingStats counts what the shared trajectories did (ShareTrajectories).
type SharingStats struct {
	Trajectories int   // prompts shared
	Writes       int64 // spans (chunks of prompt rows, decode rows) written to the spill file
	Reads        int64 // spans read back for a later gate
	Bytes        int64 // the spill file's extent (the spans written, and any whose write failed)
}

// SharingStats reports the shared trajectories' counts; zero when m shares none.
func (m *Model) SharingStats() SharingStats {
	memo := m.shared
	if memo == nil {
		return SharingStats{}
	}
	memo.mu.Lock()
	defer memo.mu.Unlock()
	return SharingStats{Trajectories: len(memo.m), Writes: memo.writes.Load(), Reads: memo.reads.Load(), Bytes: memo.end}
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
	memo    *trajMemo // m's shared trajectories when the gate began; nil: none
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
		m: m, memo: m.shared, prompts: prompts, opt: opt}
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
			f.tr, f.err = m.sharedTrajectory(rr.memo, p.IDs, opt.Tokens, rr.getBuf, rr.putBuf, func(c refChunk) { f.chunks <- c })
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

// sharedTrajectory is trajectory through memo, m's shared trajectories, when there are any: a
// prompt shared already is read back from the spill file (replay), any other is computed and
// spilled for later gates.
func (m *Model) sharedTrajectory(memo *trajMemo, ids []int, n int, get func() ([]float32, error), put func([]float32), emit func(refChunk)) (*refTrajectory, error) {
	if memo == nil {
		return m.trajectory(ids, n, get, put, emit, nil)
	}
	key := trajKey(ids, n)
	if st := memo.lookup(key); st != nil {
		tr, emitted, err := m.replay(memo, st, len(ids), get, put, emit)
		if _, failed := err.(errSpillRead); !failed {
			return tr, err
		}
		// The file failed us: compute the prompt instead, giving back the chunks the judge has.
		memo.drop(key)
		emit = skipChunks(emitted, emit)
	}
	w := &spillWriter{memo: memo}
	tr, err := m.trajectory(ids, n, get, put, emit, w)
	if err == nil && w.complete(len(ids), n) {
		memo.store(key, &spilledTraj{tops: tr.tops, margins: tr.margins, gen: tr.gen, prompt: w.prompt, decode: w.decode})
	}
	return tr, err
}

// errWeakStop stops the candidate once the reference has shown the prompts too weak.
var errWeakStop = errors.New("gate prompts too weak: candidate stopped")
