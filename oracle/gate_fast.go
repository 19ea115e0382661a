package oracle

import (
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"qconv/internal/kernels"
)

// teacherForce fills cp.decodeRows: the candidate's logits after each token of the reference's
// continuation gen, fed after the prompt. When the candidate's free rollout chose exactly gen
// (the usual case for a passing bundle), it has already been fed gen[:n-1] from the same
// prompt state, and its rows after them are these rows, bit for bit: the candidate is
// deterministic and a fork is an exact copy. Only the last token is then stepped, on the free
// rollout's candidate, instead of all n on cand.
func (cp *candPass) teacherForce(cand Candidate, gen []int) error {
	n := len(gen)
	if cp.free != nil && n > 0 && slices.Equal(cp.greedy, gen) && len(cp.greedyRows) == n {
		cp.decodeRows = append(cp.decodeRows, cp.greedyRows[1:]...)
		row, err := cp.free.Step(gen[n-1])
		if err != nil {
			return err
		}
		cp.decodeRows = append(cp.decodeRows, row)
		return nil
	}
	rows, err := feedAll(cand, gen)
	cp.decodeRows = append(cp.decodeRows, rows...)
	return err
}

// rowJudgement is what the gate keeps of one candidate row once it has been compared with the
// reference's: a long prompt's rows are not held (V floats each), only this.
type rowJudgement struct {
	candID       int
	candMargin   float64
	nan          bool // a NaN logit: never a tie
	nonFinite    bool // a NaN or infinite logit: left out of the figures
	kld, dp, cos float64
}

func judgeRow(ref, cand []float32) rowJudgement {
	margin, lc := marginLSE(cand)
	j := rowJudgement{candID: kernels.Argmax(cand), candMargin: margin}
	for _, v := range cand {
		if v != v {
			j.nan = true
		}
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			j.nonFinite = true
		}
	}
	if !j.nonFinite {
		j.kld, j.dp, j.cos = rowStatsLSE(ref, cand, logSumExp(ref), lc)
	}
	return j
}

// judgeRows is judgeRow of each pair, judgeWorkers at a time.
func judgeRows(ref, cand [][]float32) []rowJudgement {
	out := make([]rowJudgement, len(cand))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(judgeWorkers, len(cand)) {
		wg.Go(func() {
			for k := int(next.Add(1)) - 1; k < len(cand); k = int(next.Add(1)) - 1 {
				out[k] = judgeRow(ref[k], cand[k])
			}
		})
	}
	wg.Wait()
	return out
}

// promptJudge judges the candidate's prompt rows against the reference's as both become
// available, keeping only each row's judgement, the last row, and the prefill cosine's sums in
// the order of the flattened rows. The reference's rows arrive in chunks (gate_stream.go); a
// chunk is given back as soon as its rows are judged. Candidate rows that arrive before the
// reference's wait, at most pendingRows of them; a candidate further ahead waits for the
// reference. A row's judgement (four passes of exp over the vocabulary: ~20 ms at Qwen3.5's)
// runs on a worker of its own, at most judgeWorkers at once, so the candidate goes on meanwhile;
// only the cosine's running sums, cheap and order-dependent, stay on the caller.
type promptJudge struct {
	src        <-chan refChunk
	cur        *judgeChunk // the reference chunk being judged
	off        int         // rows of cur handed out
	pending    []ownedRow
	rows       []rowJudgement // one per prompt position, filled by the workers
	n          int            // rows handed to workers
	last       []float32
	lastBuf    []float32 // the last row's copy when the candidate's rows are borrowed (Feed)
	ab, aa, bb float64
	failed     bool
	jobs       sync.WaitGroup
	sem        chan struct{}
}

// judgeWorkers is how many rows are judged at once.
var judgeWorkers = max(2, runtime.GOMAXPROCS(0))

// judgeChunk is a reference chunk shared by the workers judging its rows: given back when the
// last of them is done and no row of it is left to hand out.
type judgeChunk struct {
	refChunk
	refs atomic.Int32
}

func (c *judgeChunk) unref() {
	if c.refs.Add(-1) == 0 && c.release != nil {
		c.release()
	}
}

// ownedRow is a candidate row the judge may keep: the candidate's own (Step), or a copy from
// rowCopies.
type ownedRow struct {
	v      []float32
	copied bool
}

// rowCopies recycles the judge's copies of borrowed rows.
var rowCopies sync.Pool

func copyRow(row []float32) ownedRow {
	if b, ok := rowCopies.Get().(*[]float32); ok && cap(*b) >= len(row) {
		return ownedRow{append((*b)[:0], row...), true}
	}
	return ownedRow{slices.Clone(row), true}
}

func (r ownedRow) done() {
	if r.copied {
		rowCopies.Put(&r.v)
	}
}

func newPromptJudge(src <-chan refChunk, n int) promptJudge {
	return promptJudge{src: src, rows: make([]rowJudgement, n), sem: make(chan struct{}, judgeWorkers)}
}

// add judges one candidate row, or keeps it until the reference's row is there. borrowed rows
// (Feed's) are valid only during the call and are copied when kept.
func (pj *promptJudge) add(row []float32, borrowed bool) {
	if borrowed {
		pj.lastBuf = append(pj.lastBuf[:0], row...)
		pj.last = pj.lastBuf
	} else {
		pj.last = row
	}
	if len(pj.pending) >= pendingRows {
		pj.drain(true)
	}
	pj.drain(false)
	if pj.failed || pj.n+len(pj.pending) >= len(pj.rows) {
		return // the reference failed, or a candidate feeding more rows than the prompt has
	}
	own := ownedRow{v: row}
	if borrowed {
		own = copyRow(row)
	}
	if len(pj.pending) == 0 && pj.judgeNext(own, false) {
		return
	}
	if pj.failed {
		own.done()
		return
	}
	holdRows(1)
	pj.pending = append(pj.pending, own)
}

// finish waits for the reference's rows and judges what is pending; false if the reference
// failed.
func (pj *promptJudge) finish() bool {
	pj.drain(true)
	pj.wait()
	return !pj.failed
}

// wait waits for the rows being judged.
func (pj *promptJudge) wait() { pj.jobs.Wait() }

// drain judges pending rows in order, as far as the reference's rows are there or, with wait,
// all of them.
func (pj *promptJudge) drain(wait bool) {
	for len(pj.pending) > 0 && !pj.failed {
		if !pj.judgeNext(pj.pending[0], wait) {
			break
		}
		pj.pending[0] = ownedRow{}
		pj.pending = pj.pending[1:]
		holdRows(-1)
	}
	if pj.failed {
		for _, r := range pj.pending {
			r.done()
		}
		holdRows(-len(pj.pending))
		pj.pending = nil
	}
}

// judgeNext hands row to a worker to be judged against the reference's next row and reports
// whether it could: false when that row has not arrived (without wait) or the reference failed.
func (pj *promptJudge) judgeNext(row ownedRow, wait bool) bool {
	if pj.cur == nil {
		var c refChunk
		if wait {
			c = <-pj.src
		} else {
			select {
			case c = <-pj.src:
			default:
				return false
			}
		}
		if c.rows == nil {
			pj.failed = true
			return false
		}
		pj.cur, pj.off = &judgeChunk{refChunk: c}, 0
		pj.cur.refs.Store(1) // until its last row is handed out
	}
	c := pj.cur
	ref := c.rows[pj.off]
	pj.off++
	for i := range ref {
		x, y := float64(ref[i]), float64(row.v[i])
		pj.ab += x * y
		pj.aa += x * x
		pj.bb += y * y
	}
	k := pj.n
	pj.n++
	c.refs.Add(1)
	pj.sem <- struct{}{}
	pj.jobs.Add(1)
	holdRows(1)
	go func() {
		defer pj.jobs.Done()
		pj.rows[k] = judgeRow(ref, row.v)
		row.done()
		holdRows(-1)
		<-pj.sem
		c.unref()
	}()
	if pj.off == len(c.rows) {
		pj.cur = nil
		c.unref()
	}
	return true
}

// cosine of the flattened prompt rows (float64 sums); NaN when either side is all zero.
func (pj *promptJudge) cosine() float64 { return pj.ab / math.Sqrt(pj.aa*pj.bb) }
