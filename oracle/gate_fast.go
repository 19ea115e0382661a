package oracle

import "slices"

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
