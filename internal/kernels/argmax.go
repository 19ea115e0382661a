package kernels

// Argmax is the greedy choice every part of qconv makes over a row of logits: the oracle's
// reference decode, the gate's candidate rollout, the prefill-companion check and the tests.
// It returns the lowest index of the largest value, and a NaN counts as larger than every
// number, so the first NaN wins. That is torch.argmax's and numpy.argmax's rule, and the
// interpreter's coreai.argmax follows it too, so a graph that computes next_token itself and a
// host that takes the argmax of the same graph's logits pick the same token even when the
// logits are broken (the gate then reports a mismatch rather than a plausible finite token).
// An empty row gives 0.
func Argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x != x {
			return i
		}
		if x > v[best] {
			best = i
		}
	}
	return best
}
