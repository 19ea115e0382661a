package quant

import (
	"fmt"
	"math"
	"slices"
)

// MaxLloydIterations caps the centroid updates of one fit; a fit that stops at
// the cap reports Converged false.
const MaxLloydIterations = 300

// Fit describes one k-means fit.
type Fit struct {
	Distinct   int  // distinct values fitted
	Iterations int  // Lloyd centroid updates
	Converged  bool // stopped at a fixed point
}

// histogram kinds: how the distinct values were found.
const (
	histBF16 = iota + 1 // 65536-entry table by bf16 pattern
	histF16             // 65536-entry table by fp16 pattern
	histSort            // sorted float32 values
)

// KMeans is a reusable workspace for exact 1-D Lloyd palettization. The zero
// value is ready; buffers grow on first use and are reused, so fitting many
// groups of the same size allocates nothing after the first.
type KMeans struct {
	kind   int
	table  []uint32 // counts by 16-bit pattern (table kinds), all zero between fits
	pat    []uint16 // per weight: its 16-bit pattern (table kinds)
	sorted []float32

	vals []float32 // distinct values, ascending
	vpat []uint16  // their patterns (table kinds)
	cnt  []uint64  // their counts
	ccnt []uint64  // prefix counts, len(vals)+1
	psum []wide    // exact prefix sums of count*value, len(vals)+1

	cent  []float64 // centroids
	hi    []int     // cluster i = vals[hi[i-1]:hi[i]]
	oldHi []int
	lut   []uint16 // fp16 LUT (entries in use, then padding)
	lutF  []float32
	used  int     // LUT entries in use: min(distinct, entries)
	idxOf []uint8 // LUT index per distinct value
	idx16 []uint8 // LUT index per 16-bit pattern (table kinds)
	fit   Fit

	// Ward initialisation state, per distinct value (cluster start).
	wn, ws, wcost            []float64
	wend, wprev, wnext, wpos []int32
	wheap                    []int32
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// Palettize fits a 2^bits-entry fp16 LUT (bits 8 or 4) to the weights w and
// writes it to lut (2^bits fp16 patterns, ascending) and one LUT index per weight
// to idx (unpacked, one byte each). A NaN/Inf weight or a centroid that rounds to
// an fp16 infinity is a *WeightError whose Col is the index into w.
func (km *KMeans) Palettize(w []float32, bits int, lut []uint16, idx []uint8) (Fit, error) {
	if bits != 8 && bits != 4 {
		return Fit{}, fmt.Errorf("quant: %d-bit palettes are not supported (8 or 4)", bits)
	}
	k := 1 << bits
	if len(w) == 0 {
		return Fit{}, fmt.Errorf("quant: palettize: no weights")
	}
	if len(lut) < k || len(idx) < len(w) {
		return Fit{}, fmt.Errorf("quant: palettize: output too short")
	}
	if err := km.histogram(w); err != nil {
		return Fit{}, err
	}
	if err := km.fitLUT(k); err != nil {
		return Fit{}, err
	}
	copy(lut, km.lut)
	km.assign(w, idx)
	return km.fit, nil
}

// histogram finds the sorted distinct values of w and their counts.
func (km *KMeans) histogram(w []float32) error {
	if len(w) >= maxExactCount {
		return fmt.Errorf("quant: %d weights in one palette (limit %d)", len(w), int64(maxExactCount))
	}
	var low uint32
	var top uint32
	for _, v := range w {
		b := math.Float32bits(v)
		low |= b
		top = max(top, b&absMask)
	}
	if top >= f32InfBits {
		return nonFinite(w, 0)
	}
	km.table = grow(km.table, 1<<16)
	km.pat = grow(km.pat, len(w))
	if low&0xffff == 0 {
		km.kind = histBF16
		for i, v := range w {
			p := uint16(math.Float32bits(v) >> 16)
			km.pat[i] = p
			km.table[p]++
		}
		km.fromTable()
		return nil
	}
	if countF16(w, km.table, km.pat) {
		km.kind = histF16
		km.fromTable()
		return nil
	}
	clear(km.table)
	km.kind = histSort
	km.sorted = grow(km.sorted, len(w))
	copy(km.sorted, w)
	km.fromSorted(km.sorted)
	return nil
}

// countF16 counts w by fp16 pattern into table (and pat) if every value is an
// fp16 value; otherwise it returns false, leaving table partly filled.
func countF16(w []float32, table []uint32, pat []uint16) bool {
	for i, v := range w {
		h := f16(v)
		if F16ToFloat32(h) != v {
			return false
		}
		if pat != nil {
			pat[i] = h
		}
		table[h]++
	}
	return true
}

// maxFinite is the largest finite positive pattern of the table kind.
func (km *KMeans) maxFinite() int {
	if km.kind == histBF16 {
		return 0x7f7f
	}
	return 0x7bff
}

func (km *KMeans) patValue(p uint16) float32 {
	if km.kind == histBF16 {
		return math.Float32frombits(uint32(p) << 16)
	}
	return F16ToFloat32(p)
}

// fromTable turns km.table into the ascending distinct values (negative
// patterns by decreasing magnitude, zero with -0 merged, then positives) and
// zeroes the table.
func (km *KMeans) fromTable() {
	km.vals, km.vpat, km.cnt = km.vals[:0], km.vpat[:0], km.cnt[:0]
	t := km.table
	emit := func(p uint16, c uint64) {
		km.vals = append(km.vals, km.patValue(p))
		km.vpat = append(km.vpat, p)
		km.cnt = append(km.cnt, c)
	}
	mf := km.maxFinite()
	for p := 0x8000 | mf; p > 0x8000; p-- {
		if c := t[p]; c != 0 {
			emit(uint16(p), uint64(c))
			t[p] = 0
		}
	}
	if c := uint64(t[0]) + uint64(t[0x8000]); c != 0 {
		emit(0, c)
		t[0], t[0x8000] = 0, 0
	}
	for p := 1; p <= mf; p++ {
		if c := t[p]; c != 0 {
			emit(uint16(p), uint64(c))
			t[p] = 0
		}
	}
}

// fromSorted sorts s in place (-0 becomes +0) and run-length encodes it.
func (km *KMeans) fromSorted(s []float32) {
	for i, v := range s {
		if v == 0 {
			s[i] = 0
		}
	}
	slices.Sort(s)
	km.vals, km.vpat, km.cnt = km.vals[:0], km.vpat[:0], km.cnt[:0]
	for i := 0; i < len(s); {
		j := i + 1
		for j < len(s) && s[j] == s[i] {
			j++
		}
		km.vals = append(km.vals, s[i])
		km.cnt = append(km.cnt, uint64(j-i))
		i = j
	}
}

// prefix builds the prefix counts and exact prefix sums of the histogram.
func (km *KMeans) prefix() {
	d := len(km.vals)
	km.ccnt = grow(km.ccnt, d+1)
	km.psum = grow(km.psum, d+1)
	km.ccnt[0], km.psum[0] = 0, wide{}
	for j, v := range km.vals {
		km.ccnt[j+1] = km.ccnt[j] + km.cnt[j]
		km.psum[j+1] = km.psum[j]
		km.psum[j+1].addTerm(v, km.cnt[j])
	}
}

// mean is the centroid of vals[lo:hi]: fl(fl(S)/N) with S the exact sum.
func (km *KMeans) mean(lo, hi int) float64 {
	var s wide
	s.sub(&km.psum[hi], &km.psum[lo])
	return s.float64() / float64(km.ccnt[hi]-km.ccnt[lo])
}

// Ward initialisation: start from one cluster per distinct value and merge
// the adjacent pair whose merge adds the least squared error,
// n_a*n_b/(n_a+n_b) * (mean_a - mean_b)^2 in float64 (ties to the leftmost
// pair), until k clusters remain; the starting centroids are their exact means.
// In 1-D this lands close to the optimal clustering, where Lloyd alone stops at
// poor fixed points on discrete (bf16) data.

// initWard sets km.cent to k strictly increasing starting centroids
// (requires len(vals) > k). Clusters are named by their first distinct value;
// an indexed heap holds each cluster's cost of merging with its right
// neighbour.
func (km *KMeans) initWard(k int) {
	d := len(km.vals)
	km.wn = grow(km.wn, d)
	km.ws = grow(km.ws, d)
	km.wcost = grow(km.wcost, d)
	km.wend = grow(km.wend, d)
	km.wprev = grow(km.wprev, d)
	km.wnext = grow(km.wnext, d)
	km.wpos = grow(km.wpos, d)
	km.wheap = grow(km.wheap, d-1)
	n, s, end, prev, next := km.wn, km.ws, km.wend, km.wprev, km.wnext
	for j, v := range km.vals {
		n[j] = float64(km.cnt[j])
		s[j] = n[j] * float64(v)
		end[j], prev[j], next[j] = int32(j+1), int32(j-1), int32(j+1)
	}
	cost := func(a, b int32) float64 {
		dm := s[a]/n[a] - s[b]/n[b]
		return n[a] * n[b] / (n[a] + n[b]) * dm * dm
	}
	h := wardHeap{heap: km.wheap, pos: km.wpos, cost: km.wcost}
	for j := int32(0); j+1 < int32(d); j++ {
		h.cost[j] = cost(j, j+1)
		h.heap[j], h.pos[j] = j, j
	}
	h.pos[d-1] = -1
	for i := len(h.heap)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
	for clusters := d; clusters > k; clusters-- {
		a := h.heap[0]
		b := next[a]
		n[a] += n[b]
		s[a] += s[b]
		end[a] = end[b]
		next[a] = next[b]
		if h.pos[b] >= 0 {
			h.remove(b)
		}
		if r := next[a]; int(r) < d {
			prev[r] = a
			h.cost[a] = cost(a, r)
			h.fix(h.pos[a])
		} else {
			h.remove(a)
		}
		if l := prev[a]; l >= 0 {
			h.cost[l] = cost(l, a)
			h.fix(h.pos[l])
		}
	}
	i := 0
	for j := int32(0); int(j) < d; j = next[j] {
		km.cent[i] = km.mean(int(j), int(end[j]))
		i++
	}
}

// wardHeap is a binary min-heap of cluster ids by (cost, id) with positions.
type wardHeap struct {
	heap []int32
	pos  []int32 // heap index of a cluster, -1 when absent
	cost []float64
}

func (h *wardHeap) less(i, j int) bool {
	a, b := h.heap[i], h.heap[j]
	return h.cost[a] < h.cost[b] || h.cost[a] == h.cost[b] && a < b
}

func (h *wardHeap) swap(i, j int) {
	h.heap[i], h.heap[j] = h.heap[j], h.heap[i]
	h.pos[h.heap[i]], h.pos[h.heap[j]] = int32(i), int32(j)
}

func (h *wardHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h *wardHeap) down(i int) bool {
	i0 := i
	for {
		l := 2*i + 1
		if l >= len(h.heap) {
			break
		}
		m := l
		if r := l + 1; r < len(h.heap) && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			break
		}
		h.swap(i, m)
		i = m
	}
	return i > i0
}

func (h *wardHeap) fix(i int32) {
	if !h.down(int(i)) {
		h.up(int(i))
	}
}

func (h *wardHeap) remove(c int32) {
	i := int(h.pos[c])
	last := len(h.heap) - 1
	if i != last {
		h.swap(i, last)
	}
	h.heap = h.heap[:last]
	h.pos[c] = -1
	if i != last {
		h.fix(int32(i))
	}
}

// lloyd runs Lloyd's iteration from km.cent until the assignment repeats or
// maxIter updates were made.
func (km *KMeans) lloyd(maxIter int) (iters int, converged bool) {
	k, d := len(km.cent), len(km.vals)
	cent, hi, old := km.cent, km.hi, km.oldHi
	for i := range hi {
		hi[i], old[i] = -1, -1
	}
	for ; ; iters++ {
		changed := false
		lo := 0
		bmax := math.Inf(-1)
		for i := 0; i < k-1; i++ {
			// v joins the first cluster i with v <= b_i: search on the running max.
			bmax = max(bmax, (cent[i]+cent[i+1])/2)
			h := lo + upperBound(km.vals[lo:], bmax)
			if h != hi[i] {
				changed = true
				hi[i] = h
			}
			lo = h
		}
		hi[k-1] = d
		if !changed {
			return iters, true
		}
		if iters == maxIter {
			return iters, false
		}
		lo = 0
		oldLo := 0
		for i := range k {
			if h := hi[i]; h > lo && (h != old[i] || lo != oldLo) {
				cent[i] = km.mean(lo, h)
			}
			lo, oldLo = hi[i], old[i]
		}
		copy(old, hi)
	}
}

// upperBound returns the number of leading values <= b.
func upperBound(vals []float32, b float64) int {
	lo, hi := 0, len(vals)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if float64(vals[m]) <= b {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// fitLUT fits k entries to the histogram and fills km.lut, km.idxOf (and
// km.idx16 for table kinds).
func (km *KMeans) fitLUT(k int) error {
	d := len(km.vals)
	km.prefix()
	used := min(d, k)
	km.used = used
	km.cent = grow(km.cent, used)
	km.fit = Fit{Distinct: d, Converged: true}
	if d <= k {
		for j, v := range km.vals {
			km.cent[j] = float64(v)
		}
	} else {
		km.hi = grow(km.hi, k)
		km.oldHi = grow(km.oldHi, k)
		km.initWard(k)
		km.fit.Iterations, km.fit.Converged = km.lloyd(MaxLloydIterations)
	}
	km.lut = grow(km.lut, k)
	km.lutF = grow(km.lutF, k)
	for i, c := range km.cent {
		h := f16FromF64(c)
		if h&0x7fff >= f16InfBits {
			return &WeightError{Col: -1, Value: float32(c), Reason: reasonLUTOverflow}
		}
		km.lut[i] = h
		km.lutF[i] = F16ToFloat32(h)
	}
	for i := used; i < k; i++ {
		km.lut[i], km.lutF[i] = km.lut[used-1], km.lutF[used-1]
	}
	km.nearest()
	if km.kind != histSort {
		km.idx16 = grow(km.idx16, 1<<16)
		for j, p := range km.vpat {
			km.idx16[p] = km.idxOf[j]
		}
		km.idx16[0x8000] = km.idx16[0] // -0 is 0
	}
	return nil
}

// nearest finds the nearest LUT entry of each distinct value, ties (equal
// distance or equal entries) to the lower index; midpoints of two fp16 values
// are exact in float64.
func (km *KMeans) nearest() {
	km.idxOf = grow(km.idxOf, len(km.vals))
	i := 0
	for j, v := range km.vals {
		for i < km.used-1 && float64(v) > (float64(km.lutF[i])+float64(km.lutF[i+1]))/2 {
			i++
		}
		e := i
		for e > 0 && km.lut[e-1] == km.lut[e] {
			e--
		}
		km.idxOf[j] = uint8(e)
	}
}

// assign writes the LUT index of each weight of w (which must be among the
// fitted values; for table kinds, in the same order as counted into km.pat).
func (km *KMeans) assign(w []float32, idx []uint8) {
	if km.kind != histSort {
		t := km.idx16
		for i, p := range km.pat[:len(w)] {
			idx[i] = t[p]
		}
		return
	}
	km.assignSorted(w, idx)
}

// assignSorted finds each weight among the sorted distinct values.
func (km *KMeans) assignSorted(w []float32, idx []uint8) {
	for i, v := range w {
		j := upperBound(km.vals, float64(v)) - 1
		idx[i] = km.idxOf[j]
	}
}

// assignPattern is assign for table kinds when the patterns were not kept: it
// recomputes each weight's pattern.
func (km *KMeans) assignPattern(w []float32, idx []uint8) {
	t := km.idx16
	if km.kind == histBF16 {
		for i, v := range w {
			idx[i] = t[math.Float32bits(v)>>16]
		}
		return
	}
	for i, v := range w {
		idx[i] = t[f16(v)]
	}
}

// f16FromF64 rounds x to fp16, nearest even, directly from float64 (no double
// rounding through float32); overflow gives Inf.
func f16FromF64(x float64) uint16 {
	var sign uint16
	if math.Signbit(x) {
		sign, x = 0x8000, -x
	}
	switch {
	case math.IsNaN(x):
		return sign | 0x7e00
	case x >= 65520: // 65504 + half an ulp ties to the even Inf
		return sign | f16InfBits
	case x < 0x1p-14: // subnormal: units of 2^-24
		return sign | uint16(math.RoundToEven(x*0x1p24))
	}
	frac, e := math.Frexp(x) // x = frac * 2^e, frac in [0.5, 1)
	m := uint16(math.RoundToEven(frac * 2048))
	if m == 2048 {
		m, e = 1024, e+1
	}
	return sign | uint16(e+14)<<10 | (m - 1024)
}
