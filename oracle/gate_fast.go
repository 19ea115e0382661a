package oracle

import (
	"math"
	"slices"

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
	j := rowJudgement{candID: kernels.Argmax(cand), candMargin: Margin(cand)}
	for _, v := range cand {
		if v != v {
			j.nan = true
		}
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			j.nonFinite = true
		}
	}
	if !j.nonFinite {
		j.kld, j.dp, j.cos = rowStats(ref, cand)
	}
	return j
}

// promptJudge judges the candidate's prompt rows against the reference's as both become
// available, keeping only each row's judgement, the last row, and the prefill cosine's sums in
// the order of the flattened rows. The reference's rows arrive in chunks (gate_stream.go); a
// chunk is given back as soon as its last row is judged. Candidate rows that arrive before the
// reference's wait, at most pendingRows of them; a candidate further ahead waits for the
// reference.
type promptJudge struct {
	src        <-chan refChunk
	cur        refChunk // the reference chunk being judged
	off        int      // rows of cur judged
	pending    [][]float32
	rows       []rowJudgement
	last       []float32
	lastBuf    []float32 // the last row's copy when the candidate's rows are borrowed (Feed)
	ab, aa, bb float64
	failed     bool
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
	if pj.failed {
		return
	}
	if len(pj.pending) == 0 && pj.judgeNext(row, false) {
		return
	}
	if pj.failed {
		return
	}
	if borrowed {
		row = slices.Clone(row)
	}
	holdRows(1)
	pj.pending = append(pj.pending, row)
}

// finish waits for the reference's rows and judges what is pending; false if the reference
// failed.
func (pj *promptJudge) finish() bool {
	pj.drain(true)
	if pj.cur.release != nil { // a prompt's rows end with a chunk's; this is for safety
		pj.cur.release()
		pj.cur = refChunk{}
	}
	return !pj.failed
}

// drain judges pending rows in order, as far as the reference's rows are there or, with wait,
// all of them.
func (pj *promptJudge) drain(wait bool) {
	for len(pj.pending) > 0 && !pj.failed {
		if !pj.judgeNext(pj.pending[0], wait) {
			break
		}
		pj.pending[0] = nil // garbage now
		pj.pending = pj.pending[1:]
		holdRows(-1)
	}
	if pj.failed {
		holdRows(-len(pj.pending))
		pj.pending = nil
	}
}

// judgeNext judges row against the reference's next row and reports whether it could: false
// when that row has not arrived (without wait) or the reference failed.
func (pj *promptJudge) judgeNext(row []float32, wait bool) bool {
	if pj.off == len(pj.cur.rows) {
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
		pj.cur, pj.off = c, 0
	}
	ref := pj.cur.rows[pj.off]
	pj.off++
	for i := range ref {
		x, y := float64(ref[i]), float64(row[i])
		pj.ab += x * y
		pj.aa += x * x
		pj.bb += y * y
	}
	pj.rows = append(pj.rows, judgeRow(ref, row))
	if pj.off == len(pj.cur.rows) && pj.cur.release != nil {
		pj.cur.release() // the buffer is the reference's again
		pj.cur, pj.off = refChunk{}, 0
	}
	return true
}

// cosine of the flattened prompt rows (float64 sums); NaN when either side is all zero.
func (pj *promptJudge) cosine() float64 { return pj.ab / math.Sqrt(pj.aa*pj.bb) }
