package interp

import (
	"math"

	"qconv/graph"
	"qconv/internal/kernels"
)

// Op executors of the interpreter. Each reads its operands from fr.vals, writes its result into
// its own buffer (fr.alloc) or aliases an operand (views, in-place slice_update), and rounds an
// f16 result to fp16.

// interpMaxRank bounds the rank the strided loops handle with stack-allocated index arrays.
const interpMaxRank = 16

func roundResult(a *Array) {
	roundFloats(a.DType, a.F) // bf16.go
}

// operandInts returns operand k's elements as integers.
func (fr *interpFrame) operandInts(st *interpStep, k int) ([]int64, error) {
	a := fr.vals[st.in[k]]
	if a.DType.IsFloat() {
		return nil, st.errorf("operand %d is %s, want an integer tensor", k, a)
	}
	return a.I, nil
}

// rowMajorStrides fills str with the element strides of shape.
func rowMajorStrides(str []int, shape []int64) []int {
	str = str[:len(shape)]
	s := 1
	for d := len(shape) - 1; d >= 0; d-- {
		str[d] = s
		s *= int(shape[d])
	}
	return str
}

// ---- elementwise

func execUnary(fr *interpFrame, st *interpStep) error {
	x := fr.vals[st.in[0]]
	if !x.DType.IsFloat() {
		return st.errorf("operand is %s, want a float tensor", x)
	}
	switch st.op.Name {
	case graph.OpExp, graph.OpLog, graph.OpSqrt, graph.OpRsqrt, graph.OpSigmoid, graph.OpSilu, graph.OpSin, graph.OpCos:
	default:
		return st.errorf("not a unary op")
	}
	out := fr.alloc(st.out[0], x.DType, x.Shape)
	unaryF32(st.op.Name, out.F, x.F)
	roundResult(out)
	return nil
}

func unaryF32(name string, dst, src []float32) {
	dst = dst[:len(src)]
	switch name {
	case graph.OpExp:
		for i, v := range src {
			dst[i] = float32(math.Exp(float64(v)))
		}
	case graph.OpLog:
		for i, v := range src {
			dst[i] = float32(math.Log(float64(v)))
		}
	case graph.OpSqrt:
		for i, v := range src {
			dst[i] = float32(math.Sqrt(float64(v)))
		}
	case graph.OpRsqrt:
		for i, v := range src {
			dst[i] = float32(1 / math.Sqrt(float64(v)))
		}
	case graph.OpSigmoid:
		for i, v := range src {
			dst[i] = float32(1 / (1 + math.Exp(-float64(v))))
		}
	case graph.OpSilu:
		for i, v := range src {
			dst[i] = float32(float64(v) / (1 + math.Exp(-float64(v))))
		}
	case graph.OpSin:
		for i, v := range src {
			dst[i] = float32(math.Sin(float64(v)))
		}
	case graph.OpCos:
		for i, v := range src {
			dst[i] = float32(math.Cos(float64(v)))
		}
	}
}

// bcast is a coalesced iteration space over an output shape with two operands' element strides
// (0 along broadcast dims).
type bcast struct {
	n          int
	dims       [interpMaxRank]int
	sa, sb     [interpMaxRank]int
	total      int
	outShape   [interpMaxRank]int64
	outRank    int
	incompat   bool
	rankTooBig bool
}

// makeBcast aligns shapes a and b on the right (numpy rules).
func makeBcast(a, b []int64) bcast {
	var bc bcast
	r := max(len(a), len(b))
	if r > interpMaxRank {
		bc.rankTooBig = true
		return bc
	}
	bc.outRank = r
	var astr, bstr [interpMaxRank]int
	rowMajorStrides(astr[:], a)
	rowMajorStrides(bstr[:], b)
	bc.total = 1
	for d := 0; d < r; d++ {
		ad, bd := int64(1), int64(1)
		as, bs := 0, 0
		if j := d - (r - len(a)); j >= 0 {
			ad, as = a[j], astr[j]
		}
		if j := d - (r - len(b)); j >= 0 {
			bd, bs = b[j], bstr[j]
		}
		od := ad
		switch {
		case ad == bd:
		case ad == 1:
			od = bd
		case bd == 1:
		default:
			bc.incompat = true
			return bc
		}
		bc.outShape[d] = od
		bc.total *= int(od)
		if ad == 1 {
			as = 0
		}
		if bd == 1 {
			bs = 0
		}
		if od == 1 {
			continue
		}
		if bc.n > 0 {
			k := bc.n - 1
			if bc.sa[k] == as*int(od) && bc.sb[k] == bs*int(od) {
				bc.dims[k] *= int(od)
				bc.sa[k], bc.sb[k] = as, bs
				continue
			}
		}
		bc.dims[bc.n], bc.sa[bc.n], bc.sb[bc.n] = int(od), as, bs
		bc.n++
	}
	if bc.n == 0 {
		bc.dims[0], bc.n = 1, 1
	}
	return bc
}

// each calls fn for every innermost run: output offset o, operand offsets ao and bo, run length
// n and the operands' strides along it.
func (bc *bcast) each(fn func(o, ao, bo, n, sa, sb int)) { bc.eachRange(0, bc.total, fn) }

// eachRange is each restricted to the output elements [start, end).
func (bc *bcast) eachRange(start, end int, fn func(o, ao, bo, n, sa, sb int)) {
	if start >= end {
		return
	}
	k := bc.n - 1
	inner := bc.dims[k]
	var idx [interpMaxRank]int
	ao, bo := 0, 0
	rem := start
	for d := k; d >= 0; d-- {
		idx[d] = rem % bc.dims[d]
		rem /= bc.dims[d]
		ao += idx[d] * bc.sa[d]
		bo += idx[d] * bc.sb[d]
	}
	for o := start; o < end; {
		n := min(inner-idx[k], end-o)
		fn(o, ao, bo, n, bc.sa[k], bc.sb[k])
		o += n
		idx[k] += n
		ao += n * bc.sa[k]
		bo += n * bc.sb[k]
		for d := k; d > 0 && idx[d] == bc.dims[d]; d-- {
			ao += bc.sa[d-1] - bc.sa[d]*bc.dims[d]
			bo += bc.sb[d-1] - bc.sb[d]*bc.dims[d]
			idx[d] = 0
			idx[d-1]++
		}
	}
}

func binOpCode(name string) byte {
	switch name {
	case graph.OpAdd:
		return '+'
	case graph.OpSub:
		return '-'
	case graph.OpMul:
		return '*'
	case graph.OpDiv:
		return '/'
	case graph.OpMax:
		return 'M'
	}
	return 0
}

func execBinary(fr *interpFrame, st *interpStep) error {
	a, b := fr.vals[st.in[0]], fr.vals[st.in[1]]
	if a.DType != b.DType {
		return st.errorf("operands %s and %s differ in dtype", a, b)
	}
	bc := makeBcast(a.Shape, b.Shape)
	if bc.incompat || bc.rankTooBig {
		return st.errorf("operands %s and %s do not broadcast", a, b)
	}
	op := binOpCode(st.op.Name)
	out := fr.alloc(st.out[0], a.DType, bc.outShape[:bc.outRank])
	if a.DType.IsFloat() {
		binaryRange(&bc, op, out, a, b, 0, bc.total)
		return nil
	}
	dst, ai, bi := out.I, a.I, b.I
	var divZero bool
	bc.each(func(o, ao, bo, n, sa, sb int) {
		for i := 0; i < n; i++ {
			x, y := ai[ao+i*sa], bi[bo+i*sb]
			var v int64
			switch op {
			case '+':
				v = x + y
			case '-':
				v = x - y
			case '*':
				v = x * y
			case '/':
				if y == 0 {
					divZero = true
					continue
				}
				v = x / y
			case 'M':
				v = max(x, y)
			}
			dst[o+i] = wrapInt(a.DType, v)
		}
	})
	if divZero {
		return st.errorf("integer division by zero")
	}
	return nil
}

// binaryRange computes output elements [lo, hi) of a float binary op (a range, so the op can
// be split over goroutines should that ever measure faster).
func binaryRange(bc *bcast, op byte, out, a, b *Array, lo, hi int) {
	dst, af, bf := out.F, a.F, b.F
	bc.eachRange(lo, hi, func(o, ao, bo, n, sa, sb int) {
		binF32(op, dst[o:o+n], af[ao:], bf[bo:], sa, sb)
	})
	roundFloats(out.DType, dst[lo:hi])
}

// binF32 computes dst[i] = a[i*sa] op b[i*sb]. Contiguous and broadcast operands of + - * /
// go to the kernels, which compute each element with the one IEEE operation the loop below does.
func binF32(op byte, dst, a, b []float32, sa, sb int) {
	n := len(dst)
	switch {
	case op != 'M' && sa == 1 && sb == 1:
		kernels.BinVV(op, dst, a, b)
	case op != 'M' && sa == 1 && sb == 0:
		kernels.BinVS(op, dst, a, b[0])
	case op != 'M' && sa == 0 && sb == 1:
		kernels.BinSV(op, dst, a[0], b)
	case op == 'M' && sa == 1 && sb == 1:
		a, b = a[:n], b[:n]
		for i := range dst {
			dst[i] = max(a[i], b[i])
		}
	default:
		for i := range dst {
			x, y := a[i*sa], b[i*sb]
			switch op {
			case '+':
				dst[i] = x + y
			case '-':
				dst[i] = x - y
			case '*':
				dst[i] = x * y
			case '/':
				dst[i] = x / y
			case 'M':
				dst[i] = max(x, y)
			}
		}
	}
}

// wrapInt reduces v to the range of integer dtype dt (two's complement wrap-around).
func wrapInt(dt graph.DType, v int64) int64 {
	switch dt {
	case graph.SI32:
		return int64(int32(v))
	case graph.UI32:
		return int64(uint32(v))
	case graph.SI16:
		return int64(int16(v))
	case graph.SI8:
		return int64(int8(v))
	case graph.UI8:
		return int64(uint8(v))
	case graph.SI4:
		return int64(int8(uint8(v)<<4) >> 4)
	case graph.UI4:
		return v & 0xf
	case graph.I1:
		if v != 0 {
			return 1
		}
		return 0
	}
	return v
}

// intRange is the value range of integer dtype dt.
func intRange(dt graph.DType) (int64, int64) {
	switch dt {
	case graph.SI32:
		return math.MinInt32, math.MaxInt32
	case graph.UI32:
		return 0, math.MaxUint32
	case graph.SI16:
		return math.MinInt16, math.MaxInt16
	case graph.SI8:
		return math.MinInt8, math.MaxInt8
	case graph.UI8:
		return 0, math.MaxUint8
	case graph.SI4:
		return -8, 7
	case graph.UI4:
		return 0, 15
	}
	return 0, 1
}

// ---- matmul

func execMatmul(fr *interpFrame, st *interpStep) error {
	if st.w != nil {
		return execFusedMatmul(fr, st)
	}
	a, b := fr.vals[st.in[0]], fr.vals[st.in[1]]
	if a.DType != b.DType || !a.DType.IsFloat() {
		return st.errorf("operands %s and %s: want float tensors of one dtype", a, b)
	}
	ra, rb := len(a.Shape), len(b.Shape)
	if ra < 2 || rb < 2 {
		return st.errorf("operands %s and %s: rank < 2", a, b)
	}
	M, K := int(a.Shape[ra-2]), int(a.Shape[ra-1])
	K2, N := int(b.Shape[rb-2]), int(b.Shape[rb-1])
	if st.transB {
		N, K2 = K2, N // b holds [..., N, K]: rows of b are columns of the product's operand
	}
	if K != K2 {
		return st.errorf("contraction dims differ: %s x %s", a, b)
	}
	bc := makeBcast(a.Shape[:ra-2], b.Shape[:rb-2])
	if bc.incompat || bc.rankTooBig || bc.outRank+2 > interpMaxRank {
		return st.errorf("batch dims of %s and %s do not broadcast", a, b)
	}
	shape := append(bc.outShape[:bc.outRank:bc.outRank], int64(M), int64(N))
	out := fr.alloc(st.out[0], a.DType, shape)
	var scratch []float32
	if N < gemmAxpyMinN && !st.transB {
		scratch = fr.scratchF(K * N)
	}
	dst, af, bf := out.F, a.F, b.F
	mk, kn, mn := M*K, K*N, M*N
	bc.each(func(o, ao, bo, n, sa, sb int) {
		for i := 0; i < n; i++ {
			d, x, y := dst[(o+i)*mn:(o+i+1)*mn], af[(ao+i*sa)*mk:(ao+i*sa+1)*mk], bf[(bo+i*sb)*kn:(bo+i*sb+1)*kn]
			if st.transB {
				gemmTransF32(d, x, y, M, K, N)
			} else {
				gemmF32(d, x, y, M, K, N, scratch)
			}
		}
	})
	roundResult(out)
	return nil
}

// gemmAxpyMinN is the output width from which gemm accumulates rows of b (axpy) instead of
// dotting rows of a with columns of b.
const gemmAxpyMinN = 16

// gemmF32 sets dst[M,N] = a[M,K]·b[K,N], accumulating in float32.
// gemmTransF32 sets dst [M,N] = a [M,K] · bᵀ for b [N,K] stored row-major: every product
// element is a dot of two contiguous rows.
func gemmTransF32(dst, a, b []float32, M, K, N int) {
	for i := 0; i < M; i++ {
		ar := a[i*K : (i+1)*K]
		for j := 0; j < N; j++ {
			dst[i*N+j] = kernels.Dot(ar, b[j*K:(j+1)*K])
		}
	}
}

func gemmF32(dst, a, b []float32, M, K, N int, scratch []float32) {
	if K == 0 {
		clear(dst)
		return
	}
	if N >= gemmAxpyMinN {
		for i := 0; i < M; i++ {
			row := dst[i*N : (i+1)*N]
			clear(row)
			for k := 0; k < K; k++ {
				kernels.Axpy(row, a[i*K+k], b[k*N:(k+1)*N])
			}
		}
		return
	}
	bt := scratch[:K*N] // b transposed: columns contiguous
	for k := 0; k < K; k++ {
		for j := 0; j < N; j++ {
			bt[j*K+k] = b[k*N+j]
		}
	}
	for i := 0; i < M; i++ {
		ar := a[i*K : (i+1)*K]
		for j := 0; j < N; j++ {
			dst[i*N+j] = kernels.Dot(ar, bt[j*K:(j+1)*K])
		}
	}
}

// fusedMatmulOperands checks x [..., in] against the step's constant weight [out, in] and
// allocates the result [..., out], for every numerics mode's fused matmul.
func fusedMatmulOperands(fr *interpFrame, st *interpStep) (x *Array, w *fusedWeight, out *Array, err error) {
	x, w = fr.vals[st.in[0]], st.w
	r := len(x.Shape)
	if r < 2 || int(x.Shape[r-1]) != w.cols || x.DType != w.dtype {
		return nil, nil, nil, st.errorf("operand %s does not fit the weight [%d, %d] %s", x, w.rows, w.cols, w.dtype)
	}
	var sbuf [interpMaxRank]int64
	shape := append(sbuf[:0], x.Shape...)
	shape[r-1] = int64(w.rows)
	return x, w, fr.alloc(st.out[0], x.DType, shape), nil
}

// execFusedMatmul is x [..., in] times the constant weight [out, in] transposed, run as one
// matrix product over all leading rows of x.
func execFusedMatmul(fr *interpFrame, st *interpStep) error {
	x, w, out, err := fusedMatmulOperands(fr, st)
	if err != nil {
		return err
	}
	if n := len(x.F) / w.cols; n > 0 {
		kernels.MatVec(w.m, out.F, x.F, n)
	}
	roundResult(out)
	return nil
}

// ---- data movement

// coalesceDims merges adjacent dims that are contiguous in both stride sets and drops size-1
// dims; it returns the new count. A zero-size shape returns 0 dims with ok false.
func coalesceDims(dims, s1, s2 []int) (int, bool) {
	n := 0
	for d := range dims {
		if dims[d] == 0 {
			return 0, false
		}
		if dims[d] == 1 {
			continue
		}
		if n > 0 && s1[n-1] == s1[d]*dims[d] && s2[n-1] == s2[d]*dims[d] {
			dims[n-1] *= dims[d]
			s1[n-1], s2[n-1] = s1[d], s2[d]
			continue
		}
		dims[n], s1[n], s2[n] = dims[d], s1[d], s2[d]
		n++
	}
	if n == 0 {
		dims[0], s1[0], s2[0] = 1, 1, 1
		n = 1
	}
	return n, true
}

// stridedCopy copies the region dims from src (element strides ss, offset so) into dst (strides
// ds, offset do).
func stridedCopy[T float32 | int64](dst []T, do int, ds []int, src []T, so int, ss []int, dims []int) {
	switch len(dims) {
	case 1:
		copy2D(dst, do, 0, ds[0], src, so, 0, ss[0], 1, dims[0])
	case 2:
		copy2D(dst, do, ds[0], ds[1], src, so, ss[0], ss[1], dims[0], dims[1])
	default:
		for i := 0; i < dims[0]; i++ {
			stridedCopy(dst, do+i*ds[0], ds[1:], src, so+i*ss[0], ss[1:], dims[1:])
		}
	}
}

// copy2D copies n0 rows of n1 elements.
func copy2D[T float32 | int64](dst []T, do, ds0, ds1 int, src []T, so, ss0, ss1 int, n0, n1 int) {
	switch {
	case ds1 == 1 && ss1 == 1 && n1 > 16:
		for i := 0; i < n0; i++ {
			copy(dst[do+i*ds0:do+i*ds0+n1], src[so+i*ss0:so+i*ss0+n1])
		}
	case ds1 == 1 && ss1 == 1: // short rows: a loop beats a memmove call
		for i := 0; i < n0; i++ {
			d, s := dst[do+i*ds0:do+i*ds0+n1], src[so+i*ss0:so+i*ss0+n1]
			for j := range d {
				d[j] = s[j]
			}
		}
	default:
		for i := 0; i < n0; i++ {
			for j := 0; j < n1; j++ {
				dst[do+i*ds0+j*ds1] = src[so+i*ss0+j*ss1]
			}
		}
	}
}

// copyRegion copies a region of extent dims between two arrays of the same dtype.
func copyRegion(dst *Array, do int, ds []int, src *Array, so int, ss []int, dims []int) {
	var cd, cs1, cs2 [interpMaxRank]int
	copy(cd[:], dims)
	copy(cs1[:], ds)
	copy(cs2[:], ss)
	n, ok := coalesceDims(cd[:len(dims)], cs1[:len(dims)], cs2[:len(dims)])
	if !ok {
		return
	}
	if dst.DType.IsFloat() {
		stridedCopy(dst.F, do, cs1[:n], src.F, so, cs2[:n], cd[:n])
	} else {
		stridedCopy(dst.I, do, cs1[:n], src.I, so, cs2[:n], cd[:n])
	}
}

func execTranspose(fr *interpFrame, st *interpStep) error {
	x := fr.vals[st.in[0]]
	perm, err := fr.operandInts(st, 1)
	if err != nil {
		return err
	}
	r := len(x.Shape)
	if len(perm) != r || r > interpMaxRank {
		return st.errorf("perm %v for %s", perm, x)
	}
	var seen [interpMaxRank]bool
	var xs, ps, os [interpMaxRank]int
	var dims [interpMaxRank]int
	var shape [interpMaxRank]int64
	rowMajorStrides(xs[:], x.Shape)
	for i, p := range perm {
		if p < 0 || int(p) >= r || seen[p] {
			return st.errorf("perm %v is not a permutation", perm)
		}
		seen[p] = true
		shape[i] = x.Shape[p]
		dims[i] = int(x.Shape[p])
		ps[i] = xs[p]
	}
	out := fr.alloc(st.out[0], x.DType, shape[:r])
	rowMajorStrides(os[:], shape[:r])
	copyRegion(out, 0, os[:r], x, 0, ps[:r], dims[:r])
	return nil
}

func execReshape(fr *interpFrame, st *interpStep) error {
	x := fr.vals[st.in[0]]
	shape, err := fr.operandInts(st, 1)
	if err != nil {
		return err
	}
	n := 1
	for _, d := range shape {
		if d < 0 {
			return st.errorf("shape %v has a negative dim", shape)
		}
		n *= int(d)
	}
	if n != x.Len() {
		return st.errorf("reshape of %s (%d elements) to %v (%d)", x, x.Len(), shape, n)
	}
	fr.view(st.out[0], x, shape)
	return nil
}

func execExpandDims(fr *interpFrame, st *interpStep) error {
	x := fr.vals[st.in[0]]
	axes, err := fr.operandInts(st, 1)
	if err != nil {
		return err
	}
	r := len(x.Shape) + len(axes)
	if r > interpMaxRank {
		return st.errorf("rank %d too large", r)
	}
	var ins [interpMaxRank]bool
	for _, a := range axes {
		ax, err := graph.NormAxis(a, r)
		if err != nil || ins[ax] {
			return st.errorf("axes %v invalid for %s", axes, x)
		}
		ins[ax] = true
	}
	var shape [interpMaxRank]int64
	j := 0
	for i := 0; i < r; i++ {
		if ins[i] {
			shape[i] = 1
		} else {
			shape[i] = x.Shape[j]
			j++
		}
	}
	fr.view(st.out[0], x, shape[:r])
	return nil
}

func execShrinkDims(fr *interpFrame, st *interpStep) error {
	x := fr.vals[st.in[0]]
	axes, err := fr.operandInts(st, 1)
	if err != nil {
		return err
	}
	r := len(x.Shape)
	if r > interpMaxRank {
		return st.errorf("rank %d too large", r)
	}
	var drop [interpMaxRank]bool
	for _, a := range axes {
		ax, err := graph.NormAxis(a, r)
		if err != nil || drop[ax] {
			return st.errorf("axes %v invalid for %s", axes, x)
		}
		if x.Shape[ax] != 1 {
			return st.errorf("axis %d of %s is not 1", ax, x)
		}
		drop[ax] = true
	}
	var shape [interpMaxRank]int64
	n := 0
	for i, d := range x.Shape {
		if !drop[i] {
			shape[n] = d
			n++
		}
	}
	fr.view(st.out[0], x, shape[:n])
	return nil
}

func execConcat(fr *interpFrame, st *interpStep) error {
	axv, err := fr.operandInts(st, 0)
	if err != nil {
		return err
	}
	if len(axv) != 1 || len(st.in) < 2 {
		return st.errorf("want a scalar axis and at least one input")
	}
	first := fr.vals[st.in[1]]
	r := len(first.Shape)
	ax, err := graph.NormAxis(axv[0], r)
	if err != nil || r > interpMaxRank {
		return st.errorf("axis %d invalid for %s", axv[0], first)
	}
	var shape [interpMaxRank]int64
	copy(shape[:], first.Shape)
	shape[ax] = 0
	for _, j := range st.in[1:] {
		t := fr.vals[j]
		if t.DType != first.DType || len(t.Shape) != r {
			return st.errorf("input %s differs from %s", t, first)
		}
		for d := range t.Shape {
			if d != ax && t.Shape[d] != first.Shape[d] {
				return st.errorf("inputs %s and %s differ off axis %d", first, t, ax)
			}
		}
		shape[ax] += t.Shape[ax]
	}
	out := fr.alloc(st.out[0], first.DType, shape[:r])
	var os, ts, dims [interpMaxRank]int
	rowMajorStrides(os[:], shape[:r])
	pos := 0
	for _, j := range st.in[1:] {
		t := fr.vals[j]
		rowMajorStrides(ts[:], t.Shape)
		for d := range t.Shape {
			dims[d] = int(t.Shape[d])
		}
		copyRegion(out, pos*os[ax], os[:r], t, 0, ts[:r], dims[:r])
		pos += int(t.Shape[ax])
	}
	return nil
}

// sliceRegion resolves begin/end/strides operands (k, k+1, k+2) against shape: the region's
// extent, its offset and element strides in an array of that shape.
func (fr *interpFrame) sliceRegion(st *interpStep, k int, shape []int64, dims []int, strides []int) (int, error) {
	begin, err := fr.operandInts(st, k)
	if err != nil {
		return 0, err
	}
	end, err := fr.operandInts(st, k+1)
	if err != nil {
		return 0, err
	}
	step, err := fr.operandInts(st, k+2)
	if err != nil {
		return 0, err
	}
	r := len(shape)
	if len(begin) != r || len(end) != r || len(step) != r {
		return 0, st.errorf("begin %v, end %v, strides %v for rank %d", begin, end, step, r)
	}
	var xs [interpMaxRank]int
	rowMajorStrides(xs[:], shape)
	off := 0
	for d := 0; d < r; d++ {
		b, e, s := begin[d], end[d], step[d]
		if e == graph.SliceEnd {
			e = shape[d]
		}
		if s < 1 {
			return 0, st.errorf("stride %d on axis %d: strides must be positive", s, d)
		}
		if b < 0 || e < b || e > shape[d] {
			return 0, st.errorf("slice [%d, %d) out of range on axis %d of shape %v", begin[d], end[d], d, shape)
		}
		dims[d] = int((e - b + s - 1) / s)
		strides[d] = xs[d] * int(s)
		off += int(b) * xs[d]
	}
	return off, nil
}

func execSlice(fr *interpFrame, st *interpStep) error {
	x := fr.vals[st.in[0]]
	r := len(x.Shape)
	if r > interpMaxRank {
		return st.errorf("rank %d too large", r)
	}
	var dims, ss, os [interpMaxRank]int
	off, err := fr.sliceRegion(st, 1, x.Shape, dims[:r], ss[:r])
	if err != nil {
		return err
	}
	var shape [interpMaxRank]int64
	n := 1
	for d := 0; d < r; d++ {
		shape[d] = int64(dims[d])
		n *= dims[d]
	}
	// A region that is one contiguous run of x is returned as a view.
	contiguous := true
	for d, run := r-1, 1; d >= 0; d-- {
		if dims[d] != 1 && ss[d] != run {
			contiguous = false
			break
		}
		run *= dims[d]
	}
	if contiguous {
		v := fr.view(st.out[0], x, shape[:r])
		if x.DType.IsFloat() {
			v.F = x.F[off : off+n]
		} else {
			v.I = x.I[off : off+n]
		}
		return nil
	}
	// A copy goes to a buffer of its own: the view header of other runs aliases x.
	out := fr.copies[st.out[0]]
	if out == nil {
		out = &Array{}
		fr.copies[st.out[0]] = out
	}
	out.DType = x.DType
	out.Shape = append(out.Shape[:0], shape[:r]...)
	if x.DType.IsFloat() {
		out.F = growF(out.F, n)
	} else {
		out.I = growI(out.I, n)
	}
	fr.vals[st.out[0]] = out
	rowMajorStrides(os[:], shape[:r])
	copyRegion(out, 0, os[:r], x, off, ss[:r], dims[:r])
	return nil
}

func execSliceUpdate(fr *interpFrame, st *interpStep) error {
	x, u := fr.vals[st.in[0]], fr.vals[st.in[1]]
	r := len(x.Shape)
	if u.DType != x.DType || len(u.Shape) != r || r > interpMaxRank {
		return st.errorf("update %s does not fit %s", u, x)
	}
	var dims, ds, us [interpMaxRank]int
	off, err := fr.sliceRegion(st, 2, x.Shape, dims[:r], ds[:r])
	if err != nil {
		return err
	}
	for d := 0; d < r; d++ {
		if int64(dims[d]) != u.Shape[d] {
			region := make([]int, r) // a copy, so dims stays on the stack
			copy(region, dims[:r])
			return st.errorf("update %s does not match the region %v of %s", u, region, x)
		}
	}
	var out *Array
	if st.inPlace {
		out = x
		fr.vals[st.out[0]] = x
	} else {
		out = fr.alloc(st.out[0], x.DType, x.Shape)
		copy(out.F, x.F)
		copy(out.I, x.I)
	}
	rowMajorStrides(us[:], u.Shape)
	copyRegion(out, off, ds[:r], u, 0, us[:r], dims[:r])
	return nil
}

func execGather(fr *interpFrame, st *interpStep) error {
	tab, idx := fr.vals[st.in[0]], fr.vals[st.in[1]]
	if idx.DType.IsFloat() || len(idx.Shape) < 1 {
		return st.errorf("indices %s must be integers with a trailing index dim", idx)
	}
	ri := len(idx.Shape)
	k := int(idx.Shape[ri-1])
	var shape [2 * interpMaxRank]int64
	n := copy(shape[:], idx.Shape[:ri-1])
	if st.w != nil {
		w := st.w
		if k != 1 {
			return st.errorf("indices %s: a fused gather takes one index per row", idx)
		}
		shape[n] = int64(w.cols)
		out := fr.alloc(st.out[0], w.dtype, shape[:n+1])
		for i, r := range idx.I {
			if r < 0 || r >= int64(w.rows) {
				return st.errorf("index %d out of range [0, %d)", r, w.rows)
			}
			w.m.Row(int(r), out.F[i*w.cols:(i+1)*w.cols])
		}
		roundResult(out)
		return nil
	}
	rt := len(tab.Shape)
	if k < 1 || k > rt || rt > interpMaxRank {
		return st.errorf("index depth %d for table %s", k, tab)
	}
	n += copy(shape[n:], tab.Shape[k:])
	out := fr.alloc(st.out[0], tab.DType, shape[:n])
	var ts [interpMaxRank]int
	rowMajorStrides(ts[:], tab.Shape)
	block := shapeElems(tab.Shape[k:])
	rows := len(idx.I) / k
	for i := 0; i < rows; i++ {
		off := 0
		for j := 0; j < k; j++ {
			v := idx.I[i*k+j]
			if v < 0 || v >= tab.Shape[j] {
				return st.errorf("index %d out of range [0, %d) on axis %d of %s", v, tab.Shape[j], j, tab)
			}
			off += int(v) * ts[j]
		}
		if tab.DType.IsFloat() {
			copy(out.F[i*block:(i+1)*block], tab.F[off:off+block])
		} else {
			copy(out.I[i*block:(i+1)*block], tab.I[off:off+block])
		}
	}
	return nil
}

// ---- reductions

// axisParts splits shape around axis: outer elements, the axis length, inner elements.
func axisParts(shape []int64, ax int) (int, int, int) {
	return shapeElems(shape[:ax]), int(shape[ax]), shapeElems(shape[ax+1:])
}

func (fr *interpFrame) scalarAxis(st *interpStep, x *Array) (int, error) {
	v, err := fr.operandInts(st, 1)
	if err != nil {
		return 0, err
	}
	if len(v) != 1 {
		return 0, st.errorf("axis operand holds %d values, want 1", len(v))
	}
	ax, err := graph.NormAxis(v[0], len(x.Shape))
	if err != nil {
		return 0, st.errorf("%v (operand %s)", err, x)
	}
	return ax, nil
}

func execSoftmax(fr *interpFrame, st *interpStep) error {
	x := fr.vals[st.in[0]]
	if !x.DType.IsFloat() {
		return st.errorf("operand is %s, want a float tensor", x)
	}
	ax, err := fr.scalarAxis(st, x)
	if err != nil {
		return err
	}
	out := fr.alloc(st.out[0], x.DType, x.Shape)
	outer, n, inner := axisParts(x.Shape, ax)
	for o := 0; o < outer; o++ {
		for i := 0; i < inner; i++ {
			base := o*n*inner + i
			m := float32(math.Inf(-1))
			for j := 0; j < n; j++ {
				m = max(m, x.F[base+j*inner])
			}
			// The denominator accumulates in float64 and each weight is rounded once, so the
			// result does not depend on the summation order's f32 rounding.
			var sum float64
			for j := 0; j < n; j++ {
				sum += math.Exp(float64(x.F[base+j*inner] - m))
			}
			inv := 1 / sum
			for j := 0; j < n; j++ {
				out.F[base+j*inner] = float32(math.Exp(float64(x.F[base+j*inner]-m)) * inv)
			}
		}
	}
	roundResult(out)
	return nil
}

func execReduce(fr *interpFrame, st *interpStep) error {
	x := fr.vals[st.in[0]]
	if !x.DType.IsFloat() {
		return st.errorf("operand is %s, want a float tensor", x)
	}
	axes, err := fr.operandInts(st, 1)
	if err != nil {
		return err
	}
	r := len(x.Shape)
	if r > interpMaxRank {
		return st.errorf("rank %d too large", r)
	}
	var red [interpMaxRank]bool
	var shape [interpMaxRank]int64
	copy(shape[:], x.Shape)
	count := 1
	for _, a := range axes {
		ax, err := graph.NormAxis(a, r)
		if err != nil || red[ax] {
			return st.errorf("axes %v invalid for %s", axes, x)
		}
		red[ax] = true
		count *= int(x.Shape[ax])
		shape[ax] = 1
	}
	out := fr.alloc(st.out[0], x.DType, shape[:r])
	isMax := st.op.Name == graph.OpReduceMax
	init := float32(0)
	if isMax {
		init = float32(math.Inf(-1))
	}
	for i := range out.F {
		out.F[i] = init
	}
	var dims, xs, os [interpMaxRank]int
	rowMajorStrides(xs[:], x.Shape)
	rowMajorStrides(os[:], shape[:r])
	for d := 0; d < r; d++ {
		dims[d] = int(x.Shape[d])
		if red[d] {
			os[d] = 0
		}
	}
	n, ok := coalesceDims(dims[:r], xs[:r], os[:r])
	if isMax {
		if ok {
			reduceWalk(out.F, os[:n], x.F, xs[:n], dims[:n], 0, 0, true)
		}
		roundResult(out)
		return nil
	}
	// Sums accumulate in float64 and round once: the result is then the correctly rounded sum
	// up to float64 error, independent of the order the walk visits the elements in.
	if cap(fr.acc64) < len(out.F) {
		fr.acc64 = make([]float64, len(out.F))
	}
	acc := fr.acc64[:len(out.F)]
	clear(acc)
	if ok {
		sumWalk64(acc, os[:n], x.F, xs[:n], dims[:n], 0, 0)
	}
	div := 1.0
	if st.op.Name == graph.OpReduceMean && count > 0 {
		div = float64(count)
	}
	for i, v := range acc {
		out.F[i] = float32(v / div)
	}
	roundResult(out)
	return nil
}

// sumWalk64 accumulates x (strides xs) into acc (strides os, 0 along reduced dims) in float64.
func sumWalk64(acc []float64, os []int, x []float32, xs []int, dims []int, oo, xo int) {
	if len(dims) == 1 {
		if os[0] == 1 && xs[0] == 1 { // each sum gets its one term, as in the loop below
			kernels.AccF64(acc[oo:oo+dims[0]], x[xo:xo+dims[0]])
			return
		}
		for i := 0; i < dims[0]; i++ {
			acc[oo+i*os[0]] += float64(x[xo+i*xs[0]])
		}
		return
	}
	for i := 0; i < dims[0]; i++ {
		sumWalk64(acc, os[1:], x, xs[1:], dims[1:], oo+i*os[0], xo+i*xs[0])
	}
}

// reduceWalk accumulates x (strides xs) into out (strides os, 0 along reduced dims).
func reduceWalk(out []float32, os []int, x []float32, xs []int, dims []int, oo, xo int, isMax bool) {
	if len(dims) == 1 {
		n := dims[0]
		if os[0] == 0 {
			acc := out[oo]
			if isMax {
				for i := 0; i < n; i++ {
					acc = max(acc, x[xo+i*xs[0]])
				}
			} else {
				for i := 0; i < n; i++ {
					acc += x[xo+i*xs[0]]
				}
			}
			out[oo] = acc
			return
		}
		if os[0] == 1 && xs[0] == 1 {
			o, v := out[oo:oo+n], x[xo:xo+n]
			if isMax {
				for i := range o {
					o[i] = max(o[i], v[i])
				}
			} else {
				kernels.Axpy(o, 1, v) // 1·v + o is exactly o + v
			}
			return
		}
		for i := 0; i < n; i++ {
			if isMax {
				out[oo+i*os[0]] = max(out[oo+i*os[0]], x[xo+i*xs[0]])
			} else {
				out[oo+i*os[0]] += x[xo+i*xs[0]]
			}
		}
		return
	}
	for i := 0; i < dims[0]; i++ {
		reduceWalk(out, os[1:], x, xs[1:], dims[1:], oo+i*os[0], xo+i*xs[0], isMax)
	}
}

func execArgmax(fr *interpFrame, st *interpStep) error {
	x := fr.vals[st.in[0]]
	ax, err := fr.scalarAxis(st, x)
	if err != nil {
		return err
	}
	var shape [interpMaxRank]int64
	if len(x.Shape) > interpMaxRank {
		return st.errorf("rank too large")
	}
	copy(shape[:], x.Shape)
	shape[ax] = 1
	out := fr.alloc(st.out[0], graph.UI32, shape[:len(x.Shape)])
	outer, n, inner := axisParts(x.Shape, ax)
	if n == 0 {
		return st.errorf("argmax over an empty axis of %s", x)
	}
	for o := 0; o < outer; o++ {
		for i := 0; i < inner; i++ {
			base := o*n*inner + i
			best := 0
			if x.DType.IsFloat() {
				// NaN counts as the maximum, as in numpy.
				bv := x.F[base]
				for j := 1; j < n && bv == bv; j++ {
					if v := x.F[base+j*inner]; v > bv || v != v {
						best, bv = j, v
					}
				}
			} else {
				bv := x.I[base]
				for j := 1; j < n; j++ {
					if v := x.I[base+j*inner]; v > bv {
						best, bv = j, v
					}
				}
			}
			out.I[o*inner+i] = int64(best)
		}
	}
	return nil
}

// ---- conversions

func execCast(fr *interpFrame, st *interpStep) error {
	x := fr.vals[st.in[0]]
	dt := st.op.Results[0].Type.DType
	out := fr.alloc(st.out[0], dt, x.Shape)
	switch {
	case x.DType.IsFloat() && dt.IsFloat():
		copy(out.F, x.F)
		roundResult(out)
	case x.DType.IsFloat():
		lo, hi := intRange(dt)
		for i, v := range x.F {
			switch {
			case dt == graph.I1:
				out.I[i] = 0
				if v != 0 {
					out.I[i] = 1
				}
			case v != v:
				out.I[i] = 0
			default:
				t := math.Trunc(float64(v))
				out.I[i] = int64(max(float64(lo), min(float64(hi), t)))
			}
		}
	case dt.IsFloat():
		for i, v := range x.I {
			out.F[i] = float32(v)
		}
		roundResult(out)
	default:
		for i, v := range x.I {
			out.I[i] = wrapInt(dt, v)
		}
	}
	return nil
}

func execGetShape(fr *interpFrame, st *interpStep) error {
	x := fr.vals[st.in[0]]
	out := fr.alloc(st.out[0], graph.UI32, []int64{int64(len(x.Shape))})
	copy(out.I, x.Shape)
	return nil
}

// blockIndex walks the elements of an array of shape dims (row-major) and calls fn with each
// element's index and the offset of its block in a grid array whose dim d has dims[d]/bs[d]
// entries with element strides gs.
func blockIndex(dims, bs, gs []int, fn func(i, g int)) {
	r := len(dims)
	total := 1
	for _, d := range dims {
		total *= d
	}
	if total == 0 {
		return
	}
	if r == 0 {
		fn(0, 0)
		return
	}
	var idx [interpMaxRank]int
	last := r - 1
	for i := 0; i < total; {
		base := 0
		for d := 0; d < last; d++ {
			base += idx[d] / bs[d] * gs[d]
		}
		for c := 0; c < dims[last]; c++ {
			fn(i, base+c/bs[last]*gs[last])
			i++
		}
		for d := last - 1; d >= 0; d-- {
			idx[d]++
			if idx[d] < dims[d] {
				break
			}
			idx[d] = 0
		}
	}
}

func execBlockwise(fr *interpFrame, st *interpStep) error {
	data, scale, off1, off2 := fr.vals[st.in[0]], fr.vals[st.in[1]], fr.vals[st.in[2]], fr.vals[st.in[3]]
	r := len(data.Shape)
	if data.DType.IsFloat() || !scale.DType.IsFloat() || len(scale.Shape) != r || r > interpMaxRank ||
		off1.Len() != scale.Len() || off2.Len() != scale.Len() || off1.DType.IsFloat() || !off2.DType.IsFloat() {
		return st.errorf("operands %s, %s, %s, %s do not fit", data, scale, off1, off2)
	}
	var dims, bs, gs [interpMaxRank]int
	for d := 0; d < r; d++ {
		s := scale.Shape[d]
		if s <= 0 || data.Shape[d]%s != 0 {
			return st.errorf("scale %s does not tile data %s", scale, data)
		}
		dims[d], bs[d] = int(data.Shape[d]), int(data.Shape[d]/s)
	}
	rowMajorStrides(gs[:], scale.Shape)
	out := fr.alloc(st.out[0], scale.DType, data.Shape)
	q, s, o1, o2, dst := data.I, scale.F, off1.I, off2.F, out.F
	blockIndex(dims[:r], bs[:r], gs[:r], func(i, g int) {
		dst[i] = float32(q[i]-o1[g])*s[g] + o2[g]
	})
	roundResult(out)
	return nil
}

func execLUTToDense(fr *interpFrame, st *interpStep) error {
	idx, lut := fr.vals[st.in[0]], fr.vals[st.in[1]]
	r := len(idx.Shape)
	if idx.DType.IsFloat() || !lut.DType.IsFloat() || len(lut.Shape) != r+2 || r > interpMaxRank {
		return st.errorf("operands %s, %s do not fit", idx, lut)
	}
	entries, vec := int(lut.Shape[r]), int(lut.Shape[r+1])
	if vec != 1 {
		return st.errorf("lut %s has vectors of %d entries; only scalar LUTs are supported", lut, vec)
	}
	var dims, bs, gs [interpMaxRank + 2]int
	for d := 0; d < r; d++ {
		g := lut.Shape[d]
		if g <= 0 || idx.Shape[d]%g != 0 {
			return st.errorf("lut groups %s do not tile indices %s", lut, idx)
		}
		dims[d], bs[d] = int(idx.Shape[d]), int(idx.Shape[d]/g)
	}
	rowMajorStrides(gs[:], lut.Shape)
	out := fr.alloc(st.out[0], lut.DType, idx.Shape)
	q, tab, dst := idx.I, lut.F, out.F
	bad := int64(-1)
	blockIndex(dims[:r], bs[:r], gs[:r], func(i, g int) {
		k := q[i]
		if k < 0 || k >= int64(entries) {
			bad = k
			return
		}
		dst[i] = tab[g+int(k)*vec]
	})
	if bad >= 0 {
		return st.errorf("index %d outside the %d-entry table", bad, entries)
	}
	roundResult(out)
	return nil
}
