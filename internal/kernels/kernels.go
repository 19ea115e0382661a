// Package kernels holds the numeric hot loops shared by the fp32 reference
// model (oracle) and the graph interpreter: matrix-vector products over
// weights in their stored encodings (f32, bf16, f16, block-quantized int8 and
// int4, palettized LUT) and a few vector kernels (dot, axpy, half-precision
// conversions).
//
// Weights are little-endian byte slices exactly as stored in a safetensors
// file or a bundle, so a Matrix can point straight into an mmap; the slices
// need no alignment. Products accumulate in float32 (fused multiply-add in the
// assembly) over several partial sums; the tests hold every result within
// 1e-5·Σ|w·x| of a float64 reference. Quantized weights are dequantized
// exactly (q*scale is exact in float32) before they multiply x, so a
// quantized product differs from the float32 product of the dequantized
// matrix only by summation order.
//
// On amd64 CPUs with AVX2, FMA and F16C the kernels run in assembly; elsewhere
// (or with the purego build tag) they run in plain Go. Matrix methods only
// read the weights, so one Matrix may serve many goroutines.
package kernels

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
)

// Matrix is a row-major [Rows, Cols] weight matrix in some stored encoding.
type Matrix interface {
	Rows() int
	Cols() int
	// MulRows computes dst[v*Rows()+r] = Σ_c W[r,c]·x[v*Cols()+c] for r in
	// [r0, r1) and every vector v < n. With n > 1 each weight row is read
	// from memory once for all n vectors. It panics if the range or the
	// slice lengths are out of bounds.
	MulRows(dst, x []float32, n, r0, r1 int)
	// Row writes row r, dequantized to float32, into dst[:Cols()].
	Row(r int, dst []float32)
}

// parallelMinWork is the number of multiply-adds below which MatVec stays on
// the calling goroutine: starting workers costs a few microseconds.
const parallelMinWork = 1 << 16

// chunksPerWorker splits the rows finer than one piece per worker so a worker
// whose core is busy with something else does not hold up the whole product.
const chunksPerWorker = 8

// MatVec computes dst[v*R+r] = Σ_c W[r,c]·x[v*C+c] for all rows r and vectors
// v < n, spreading the rows over GOMAXPROCS goroutines (MatVecs with one product).
func MatVec(m Matrix, dst, x []float32, n int) {
	if serial(m.Rows() * m.Cols() * n) { // without building the one-product list (no allocation)
		m.MulRows(dst, x, n, 0, m.Rows())
		return
	}
	MatVecs([]Product{{M: m, Dst: dst}}, x, n)
}

// serial says whether products of work multiply-adds in all stay on the calling goroutine.
func serial(work int) bool { return runtime.GOMAXPROCS(0) <= 1 || work < parallelMinWork }

// Product is one matrix of a MatVecs call and where its results go.
type Product struct {
	M   Matrix
	Dst []float32
}

// MatVecs computes every product's MatVec with the same x in one parallel pass: the workers take
// row chunks of all the matrices from one queue, so several small products that read the same
// activation cost one start and one wait instead of one each. A product's rows are split the
// same way whatever else runs with it, and rows never mix, so each result is the product's alone
// (TestMatVecsEqualsMatVec). Below parallelMinWork multiply-adds in all it stays on the calling
// goroutine.
func MatVecs(ps []Product, x []float32, n int) {
	work := 0
	for _, p := range ps {
		work += p.M.Rows() * p.M.Cols() * n
	}
	if serial(work) {
		for _, p := range ps {
			p.M.MulRows(p.Dst, x, n, 0, p.M.Rows())
		}
		return
	}
	type piece struct {
		p      *Product
		r0, r1 int
	}
	workers := runtime.GOMAXPROCS(0)
	var pieces []piece
	for i := range ps {
		p := &ps[i]
		rows := p.M.Rows()
		// About chunksPerWorker pieces per worker, so a worker whose core is busy elsewhere does
		// not hold up the rest. Even chunk starts keep the multi-vector kernel's row pairs at the
		// same absolute rows for every worker count, so results are bit-identical whatever
		// GOMAXPROCS is (gate reports written into bundles are compared byte for byte on other
		// machines).
		chunks := min(min(workers, rows)*chunksPerWorker, rows)
		chunkRows := (rows + chunks - 1) / chunks
		chunkRows += chunkRows & 1
		for r0 := 0; r0 < rows; r0 += chunkRows {
			pieces = append(pieces, piece{p, r0, min(r0+chunkRows, rows)})
		}
	}
	var next atomic.Int64
	run := func() {
		for {
			i := int(next.Add(1)) - 1
			if i >= len(pieces) {
				return
			}
			pc := pieces[i]
			pc.p.M.MulRows(pc.p.Dst, x, n, pc.r0, pc.r1)
		}
	}
	var wg sync.WaitGroup
	for range min(workers, len(pieces)) - 1 {
		wg.Go(run)
	}
	run()
	wg.Wait()
}

// checkMulArgs panics unless MulRows(dst, x, n, r0, r1) stays inside a
// rows×cols matrix and the given slices.
func checkMulArgs(kind string, rows, cols int, dst, x []float32, n, r0, r1 int) {
	if n < 1 {
		panic(fmt.Sprintf("kernels: %s.MulRows: n = %d vectors, need at least 1", kind, n))
	}
	if r0 < 0 || r1 > rows || r0 > r1 {
		panic(fmt.Sprintf("kernels: %s.MulRows: row range [%d, %d) outside [0, %d)", kind, r0, r1, rows))
	}
	if len(x) < n*cols {
		panic(fmt.Sprintf("kernels: %s.MulRows: len(x) = %d, need %d vectors × %d cols", kind, len(x), n, cols))
	}
	if r1 > r0 && len(dst) < (n-1)*rows+r1 {
		panic(fmt.Sprintf("kernels: %s.MulRows: len(dst) = %d, need %d for %d vectors × %d rows", kind, len(dst), (n-1)*rows+r1, n, rows))
	}
}

// checkRowArgs panics unless Row(r, dst) is inside a rows×cols matrix.
func checkRowArgs(kind string, rows, cols, r int, dst []float32) {
	if r < 0 || r >= rows {
		panic(fmt.Sprintf("kernels: %s.Row: row %d outside [0, %d)", kind, r, rows))
	}
	if len(dst) < cols {
		panic(fmt.Sprintf("kernels: %s.Row: len(dst) = %d, need %d", kind, len(dst), cols))
	}
}

// checkLen panics when a matrix built without its constructor has a data
// slice shorter than its shape needs; the kernels read through raw pointers,
// so this keeps them inside the slice.
func checkLen(kind, field string, have, need int) {
	if have < need {
		panic(fmt.Sprintf("kernels: %s.%s has %d bytes, the shape needs %d (build it with its New function)", kind, field, have, need))
	}
}

// scratchPool holds per-goroutine row buffers for the multi-vector path.
var scratchPool sync.Pool

func getScratch(n int) *[]float32 {
	p, _ := scratchPool.Get().(*[]float32)
	if p == nil {
		p = new([]float32)
	}
	if cap(*p) < n {
		*p = make([]float32, n)
	}
	*p = (*p)[:n]
	return p
}

// mulRowsDecoded is the n > 1 product: rows are decoded two at a time into a
// float32 buffer and dotted with every vector while they sit in L1.
func mulRowsDecoded(dst, x []float32, n, rows, cols, r0, r1 int, decode func(r int, row []float32)) {
	p := getScratch(2 * cols)
	pair := *p
	r := r0
	for ; r+2 <= r1; r += 2 {
		decode(r, pair[:cols])
		decode(r+1, pair[cols:])
		dotVectors2(dst[r:], rows, pair, x, n)
	}
	if r < r1 {
		decode(r, pair[:cols])
		dotVectors(dst[r:], rows, pair[:cols], x, n)
	}
	scratchPool.Put(p)
}

// dotVectors2 sets dst[v*stride+i] = row_i·x[v*cols:] for the two rows
// pair[:cols], pair[cols:] and v < n.
func dotVectors2(dst []float32, stride int, pair, x []float32, n int) {
	cols := len(pair) / 2
	v := 0
	if useAsm && cols > 0 {
		var out [8]float32
		for ; v+4 <= n; v += 4 {
			_ = x[(v+4)*cols-1]
			dot2x4AVX(&pair[0], &x[v*cols], cols*4, cols*4, cols, &out)
			for i := range 4 {
				dst[(v+i)*stride] = out[i]
				dst[(v+i)*stride+1] = out[4+i]
			}
		}
	}
	for ; v < n; v++ {
		xv := x[v*cols : (v+1)*cols]
		dst[v*stride] = Dot(pair[:cols], xv)
		dst[v*stride+1] = Dot(pair[cols:], xv)
	}
}

// dotVectors sets dst[v*stride] = row·x[v*len(row):] for v < n.
func dotVectors(dst []float32, stride int, row, x []float32, n int) {
	cols := len(row)
	v := 0
	if useAsm && cols > 0 {
		var out [4]float32
		for ; v+4 <= n; v += 4 {
			_ = x[(v+4)*cols-1]
			dot4AVX(&row[0], &x[v*cols], cols*4, cols, &out)
			dst[v*stride] = out[0]
			dst[(v+1)*stride] = out[1]
			dst[(v+2)*stride] = out[2]
			dst[(v+3)*stride] = out[3]
		}
	}
	for ; v < n; v++ {
		dst[v*stride] = Dot(row, x[v*cols:(v+1)*cols])
	}
}
