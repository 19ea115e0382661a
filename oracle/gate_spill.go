package oracle

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Shared trajectories (ShareTrajectories) keep what the judge needs of a prompt's reference
// pass in memory — each position's top-1 and margin and the greedy ids, a few kilobytes — and
// its logit rows, V floats a position, in a spill file: an unlinked temporary file read back a
// chunk at a time into the reference's recycled buffers, so a gate on shared trajectories holds
// no more rows than a streaming one (docs/gate.md, Memory).

// trajMemo holds the shared trajectories of one Model by trajKey.
type trajMemo struct {
	mu  sync.Mutex
	m   map[string]*spilledTraj
	f   *os.File // the spill file: unlinked at once, closed by ReleaseTrajectories
	end int64    // bytes of f reserved so far

	// writeAt writes to the spill file (f.WriteAt; tests inject failures).
	writeAt func(b []byte, off int64) (int, error)
	// Counts for tests and diagnostics: spans written, spans read back, bytes reserved.
	writes, reads atomic.Int64
}

// spilledTraj is a shared trajectory: in memory what the judge reads besides the rows, in the
// spill file the rows, as spans.
type spilledTraj struct {
	tops    []int
	margins []float64
	gen     []int
	prompt  []spillSpan // the prompt positions' rows, one span per chunk of refChunkRows
	decode  []spillSpan // the rows after each generated token, one span each
}

// spillSpan is a run of float32s in the spill file, with the CRC-32C of its bytes: a row read
// back is the row written, bit for bit, or it is not used.
type spillSpan struct {
	off int64
	n   int // float32s
	crc uint32
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// floatBytes is v's memory as bytes: the spill file holds the exact bits, in this process's
// byte order, and only this process reads it.
func floatBytes(v []float32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v))
}

// newTrajMemo creates the spill file in os.TempDir() (TMPDIR) and unlinks it at once, so
// nothing is left behind however the process ends.
func newTrajMemo() (*trajMemo, error) {
	f, err := os.CreateTemp("", "qconv-gate-rows-*")
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return &trajMemo{m: map[string]*spilledTraj{}, f: f, writeAt: f.WriteAt}, nil
}

func (memo *trajMemo) close() {
	memo.mu.Lock()
	defer memo.mu.Unlock()
	if memo.f != nil {
		memo.f.Close()
		memo.f = nil
	}
	memo.m = map[string]*spilledTraj{}
}

func (memo *trajMemo) lookup(key string) *spilledTraj {
	memo.mu.Lock()
	defer memo.mu.Unlock()
	return memo.m[key]
}

func (memo *trajMemo) store(key string, st *spilledTraj) {
	memo.mu.Lock()
	defer memo.mu.Unlock()
	if memo.f != nil {
		memo.m[key] = st
	}
}

func (memo *trajMemo) drop(key string) {
	memo.mu.Lock()
	defer memo.mu.Unlock()
	delete(memo.m, key)
}

// reserve returns the offset of n fresh bytes of the spill file.
func (memo *trajMemo) reserve(n int) int64 {
	memo.mu.Lock()
	defer memo.mu.Unlock()
	off := memo.end
	memo.end += int64(n)
	return off
}

// read fills v from span s and checks its CRC.
func (memo *trajMemo) read(v []float32, s spillSpan) error {
	if len(v) != s.n {
		return fmt.Errorf("spill: span of %d floats read into %d", s.n, len(v))
	}
	memo.mu.Lock()
	f := memo.f
	memo.mu.Unlock()
	if f == nil {
		return errors.New("spill: file closed")
	}
	b := floatBytes(v)
	if _, err := f.ReadAt(b, s.off); err != nil { // ReadAt fails on a short read
		return err
	}
	memo.reads.Add(1)
	if crc32.Checksum(b, castagnoli) != s.crc {
		return fmt.Errorf("spill: rows at offset %d changed on disk", s.off)
	}
	return nil
}

// spillWriter writes one trajectory's rows to the spill file as the reference computes them.
// The first failure (disk full, a short write, a closed file) ends it: the trajectory is then
// not shared, and the gate that computes it is unaffected.
type spillWriter struct {
	memo   *trajMemo
	prompt []spillSpan
	decode []spillSpan
	err    error
}

func (w *spillWriter) write(v []float32) (spillSpan, bool) {
	if w == nil || w.err != nil {
		return spillSpan{}, false
	}
	b := floatBytes(v)
	off := w.memo.reserve(len(b))
	n, err := w.memo.writeAt(b, off)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	if err != nil {
		w.err = err
		return spillSpan{}, false
	}
	w.memo.writes.Add(1)
	return spillSpan{off: off, n: len(v), crc: crc32.Checksum(b, castagnoli)}, true
}

// promptChunk spills a chunk of prompt rows (contiguous in buf).
func (w *spillWriter) promptChunk(buf []float32) {
	if s, ok := w.write(buf); ok {
		w.prompt = append(w.prompt, s)
	}
}

// decodeRow spills the row after a generated token.
func (w *spillWriter) decodeRow(row []float32) {
	if s, ok := w.write(row); ok {
		w.decode = append(w.decode, s)
	}
}

// replay hands the judge a spilled trajectory's prompt rows as trajectory does a computed one's:
// read back a chunk at a time into buffers from get, each given back through put once judged.
// It returns the trajectory with its decode rows read back, or, when a read fails, how many
// chunks it has emitted already (the caller computes the trajectory instead and skips those).
func (m *Model) replay(memo *trajMemo, st *spilledTraj, L int, get func() ([]float32, error), put func([]float32), emit func(refChunk)) (tr *refTrajectory, emitted int, err error) {
	V := m.vocab
	for _, s := range st.prompt {
		b, err := get()
		if err != nil {
			return nil, emitted, err
		}
		buf := b[:s.n]
		if rerr := memo.read(buf, s); rerr != nil {
			put(b[:cap(b)])
			return nil, emitted, errSpillRead{rerr}
		}
		emitted++
		emitChunk(splitRows(buf, V), b, put, emit)
	}
	// The report keeps gen (RefGen): each gate gets copies of its own.
	tr = &refTrajectory{rows: make([][]float32, L, L+len(st.decode)), tops: slices.Clone(st.tops), margins: slices.Clone(st.margins), gen: slices.Clone(st.gen)}
	for _, s := range st.decode {
		row := make([]float32, s.n)
		if rerr := memo.read(row, s); rerr != nil {
			return nil, emitted, errSpillRead{rerr}
		}
		tr.rows = append(tr.rows, row)
	}
	return tr, emitted, nil
}

// errSpillRead is a spilled trajectory that could not be read back: it is computed again.
type errSpillRead struct{ err error }

func (e errSpillRead) Error() string { return e.err.Error() }

// skipChunks is emit for a trajectory computed again after a failed replay had emitted its first
// n chunks: those are given back unjudged (the judge has them already).
func skipChunks(n int, emit func(refChunk)) func(refChunk) {
	k := 0
	return func(c refChunk) {
		k++
		if k <= n {
			if c.release != nil {
				c.release()
			}
			return
		}
		if emit != nil {
			emit(c)
		} else if c.release != nil {
			c.release()
		}
	}
}

// complete says whether w holds every row of a trajectory of L prompt positions and n
// generated tokens: only then is it shared.
func (w *spillWriter) complete(L, n int) bool {
	return w.err == nil && len(w.prompt) == (L+refChunkRows-1)/refChunkRows && len(w.decode) == n
}
