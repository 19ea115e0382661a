package oracle

import (
	"errors"
	"sync/atomic"

	"qconv/internal/kernels"
)

// The reference's prompt rows stream to the judge a chunk at a time (docs/gate.md, Memory): a
// long prompt's rows (V floats each: ~1 MB per position at Qwen3.5's 248,320-token vocabulary)
// are never all held by either side.

// refChunkRows is how many prompt positions the reference prefills, and hands to the judge, at
// a time. It is a multiple of chunkTokens, so forward runs on each chunk exactly the token
// chunks, head products included, that one whole-prompt PrefillAll runs: the rows are
// bit-identical to it (TestChunkedPrefillAllBitIdentical).
const refChunkRows = 2 * chunkTokens

// refAheadChunks is how many chunks of prompt rows the reference may have produced that the
// judge has not finished with; their buffers are recycled, so this many are ever allocated.
const refAheadChunks = 3

// pendingRows is how many candidate prompt rows the judge holds while it waits for the
// reference's; a candidate further ahead waits.
const pendingRows = refChunkRows

// maxHeldRows bounds the prompt rows the gate holds at once (rowsHeld): the reference's chunks
// in flight, the candidate's pending rows and those being judged.
var maxHeldRows = refAheadChunks*refChunkRows + pendingRows + judgeWorkers

// refChunk is consecutive prompt positions' reference rows.
type refChunk struct {
	rows    [][]float32 // nil: the reference failed or stopped before these rows
	release func()      // gives the rows' buffer back once judged; nil when the rows are kept
}

// rowsHeld counts the prompt rows the gates of this process hold (reference chunks handed to
// the judge and not yet judged, candidate rows waiting for the reference's) and their peak: the
// memory bound's test reads it.
var rowsHeld struct {
	n, peak atomic.Int64
}

func holdRows(n int) {
	v := rowsHeld.n.Add(int64(n))
	for {
		p := rowsHeld.peak.Load()
		if v <= p || rowsHeld.peak.CompareAndSwap(p, v) {
			return
		}
	}
}

// rowBufs hands out the reference's chunk buffers (refChunkRows·V floats), at most
// refAheadChunks of them, recycled as the judge releases them.
type rowBufs struct {
	free chan []float32
	made int
	size int
}

// errWeakFound stops the reference once its scouting has shown the prompts too weak.
var errWeakFound = errors.New("gate prompts too weak: reference stopped")

// getBuf returns a chunk buffer for the reference's main pass. When none is free and the weak
// question is open, the reference would otherwise idle until the candidate catches up, and the
// early refusal would come only then: it scouts the remaining prompts first (scout).
func (rr *refRun) getBuf() ([]float32, error) {
	b := &rr.bufs
	select {
	case <-rr.stopped: // Gate is returning: stop within the prompt, not after it
		return nil, errReferenceStopped
	case buf := <-b.free:
		return buf, nil
	default:
	}
	if b.made < refAheadChunks {
		b.made++
		return make([]float32, b.size), nil
	}
	if rr.weakOpen() {
		if err := rr.scout(); err != nil {
			return nil, err
		}
	}
	select {
	case buf := <-b.free:
		return buf, nil
	case <-rr.stopped:
		return nil, errReferenceStopped
	}
}

func (rr *refRun) putBuf(buf []float32) {
	select {
	case rr.bufs.free <- buf:
	default: // never: at most cap(free) buffers are made
	}
}

// weakOpen says whether the prompts may still prove too weak: a minimum is set, the prompts
// run so far have not reached it, and no scouting has settled it.
func (rr *refRun) weakOpen() bool {
	return rr.opt.MinConfident > 0 && rr.confident < rr.opt.MinConfident && !rr.scouted
}

// scout runs the reference over the prompts from the current one on, on states of its own and
// keeping no rows (a shared trajectory's count is read, not run), to count their confident positions: with the prompts already done, the whole
// set's count. Below the minimum it sets weak (and returns errWeakFound); otherwise the
// question is settled and the main pass goes on where it was. The count is the one the main pass
// would reach: the same chunks, the same bits.
func (rr *refRun) scout() error {
	rr.scouted = true
	buf := make([]float32, rr.bufs.size)
	get := func() ([]float32, error) {
		select {
		case <-rr.stopped:
			return nil, errReferenceStopped
		default:
			return buf, nil
		}
	}
	total := rr.confident
	for _, p := range rr.prompts[rr.cur:] {
		if memo := rr.memo; memo != nil {
			if st := memo.lookup(trajKey(p.IDs, rr.opt.Tokens)); st != nil {
				total += countConfident(st.margins, rr.opt.MinMargin) // shared: counted, not run
				continue
			}
		}
		tr, err := rr.m.trajectory(p.IDs, rr.opt.Tokens, get, func([]float32) {}, nil, nil)
		if err != nil {
			return err
		}
		total += tr.confident(rr.opt.MinMargin)
	}
	if total < rr.opt.MinConfident {
		rr.confident = total
		rr.weak.Store(true)
		return errWeakFound
	}
	return nil
}

// confident counts the trajectory's confident positions, as judge does.
func (tr *refTrajectory) confident(minMargin float64) int {
	return countConfident(tr.margins, minMargin)
}

func countConfident(margins []float64, minMargin float64) int {
	n := 0
	for _, mg := range margins {
		if !(mg < minMargin) {
			n++
		}
	}
	return n
}

// trajectory runs the reference on one prompt: the prompt positions refChunkRows at a time,
// then n greedy tokens. Each chunk's rows are written into a buffer from get and go to emit as
// soon as they exist; the judge gives the buffer back through put once it has judged them (or
// it is put back at once when emit is nil). When spill is set, every row is also written to the
// shared trajectories' spill file (gate_spill.go), a chunk after it has been emitted: its
// buffer comes back to get only on this goroutine, so the judge reads it meanwhile. The
// trajectory keeps every position's top-1 and margin and the decode positions' rows.
func (m *Model) trajectory(ids []int, n int, get func() ([]float32, error), put func([]float32), emit func(refChunk), spill *spillWriter) (*refTrajectory, error) {
	L, V := len(ids), m.vocab
	st := m.NewState()
	tr := &refTrajectory{rows: make([][]float32, L, L+n), tops: make([]int, 0, L+n), margins: make([]float64, 0, L+n)}
	for c0 := 0; c0 < L; c0 += refChunkRows {
		c := ids[c0:min(c0+refChunkRows, L)]
		b, err := get()
		if err != nil {
			return nil, err
		}
		buf := b[:len(c)*V]
		if err := m.forward(st, c, buf, true); err != nil {
			put(b[:cap(b)])
			return nil, err
		}
		rows := splitRows(buf, V)
		for _, r := range rows {
			tr.tops = append(tr.tops, kernels.Argmax(r))
			tr.margins = append(tr.margins, Margin(r))
		}
		spill.promptChunk(buf) // before the judge may give the buffer back
		emitChunk(rows, b, put, emit)
	}
	for range n {
		id := tr.tops[len(tr.tops)-1]
		tr.gen = append(tr.gen, id)
		row, err := m.Decode(st, id)
		if err != nil {
			return nil, err
		}
		spill.decodeRow(row)
		tr.rows = append(tr.rows, row)
		tr.tops = append(tr.tops, kernels.Argmax(row))
		tr.margins = append(tr.margins, Margin(row))
	}
	return tr, nil
}

// splitRows cuts buf into its rows of V floats (capacity-limited, so no row runs into the next).
func splitRows(buf []float32, V int) [][]float32 {
	rows := make([][]float32, len(buf)/V)
	for i := range rows {
		rows[i] = buf[i*V : (i+1)*V : (i+1)*V]
	}
	return rows
}

// emitChunk hands rows (held in the chunk buffer b) to emit, with a release that gives b back
// through put once they are judged; with no emit, b goes back at once.
func emitChunk(rows [][]float32, b []float32, put func([]float32), emit func(refChunk)) {
	if emit == nil {
		put(b[:cap(b)])
		return
	}
	holdRows(len(rows))
	emit(refChunk{rows: rows, release: func() {
		holdRows(-len(rows))
		put(b[:cap(b)])
	}})
}
