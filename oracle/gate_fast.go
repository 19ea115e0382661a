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
	for _, id := range gen {
		row, err := cand.Step(id)
		if err != nil {
			return err
		}
		cp.decodeRows = append(cp.decodeRows, row)
	}
	return nil
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
// available (the reference's prefill usually finishes long before the candidate has stepped
// the prompt), keeping only each row's judgement and the last row, and the prefill cosine's
// sums in the order of the flattened rows.
type promptJudge struct {
	ref        <-chan [][]float32
	refRows    [][]float32
	pending    [][]float32
	rows       []rowJudgement
	last       []float32
	ab, aa, bb float64
	failed     bool
}

func (pj *promptJudge) add(row []float32) {
	pj.last = row
	pj.pending = append(pj.pending, row)
	if pj.refRows == nil && !pj.failed {
		select {
		case r := <-pj.ref:
			pj.refRows, pj.failed = r, r == nil
		default:
			return
		}
	}
	pj.drain()
}

// finish waits for the reference's rows and judges what is pending; false if the reference
// failed.
func (pj *promptJudge) finish() bool {
	if pj.refRows == nil && !pj.failed {
		r := <-pj.ref
		pj.refRows, pj.failed = r, r == nil
	}
	pj.drain()
	return !pj.failed
}

func (pj *promptJudge) drain() {
	if pj.failed {
		pj.pending = nil
		return
	}
	for _, row := range pj.pending {
		ref := pj.refRows[len(pj.rows)]
		for i := range ref {
			x, y := float64(ref[i]), float64(row[i])
			pj.ab += x * y
			pj.aa += x * x
			pj.bb += y * y
		}
		pj.rows = append(pj.rows, judgeRow(ref, row))
	}
	clear(pj.pending) // the rows are garbage now
	pj.pending = pj.pending[:0]
}

// cosine of the flattened prompt rows (float64 sums); NaN when either side is all zero.
func (pj *promptJudge) cosine() float64 { return pj.ab / math.Sqrt(pj.aa*pj.bb) }
