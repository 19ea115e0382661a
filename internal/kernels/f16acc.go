package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// The fp16-accumulate product of the interpreter's stress mode (graph/interp/numerics.go,
// docs/kernels.md): every output row r runs one running sum that is rounded to fp16 after
// every term,
//
//	acc = 0; for c in [0, C): acc = fp16(acc + x[c]·W[r,c])
//
// with the multiply-add fused on amd64 (Axpy's semantics; the plain-Go path multiplies and
// adds as Axpy's Go loop does). The sum is one serial chain per row, so the vector lanes run
// across rows: tiles of f16AccTile rows are decoded with Row, transposed f16AccChunk columns at
// a time into an L1-sized [chunk][tile] block, and each column step updates the tile's
// f16AccTile sums at once. Rows never mix, so every result is bit-identical to the per-term
// Axpy + RoundF16 loop over a transposed copy of the matrix, whatever the tile, the chunk or
// the split over goroutines.

// f16AccTile is the rows one tile accumulates side by side: 8 zmm sums (two passes of 8 ymm
// without AVX-512), enough independent chains to cover the latency of one multiply-add and two
// conversions per step.
const f16AccTile = 128

// f16AccChunk is the columns transposed at once: a 32 KB block of the tile that stays in L1
// while every vector steps through it. (Decoding the rows chunk by chunk instead of whole, to
// keep them out of L3, measured slower: more, shorter decode calls.)
const f16AccChunk = 64

// MatVecF16Acc is MatVec with the fp16 accumulator: dst[v*R+r] is row r's fp16-accumulated
// product with x[v*C:(v+1)*C] (an fp16 value held in a float32), for every vector v < n. Row
// tiles are spread over GOMAXPROCS goroutines; the results do not depend on the split.
func MatVecF16Acc(m Matrix, dst, x []float32, n int) {
	rows, cols := m.Rows(), m.Cols()
	tiles := (rows + f16AccTile - 1) / f16AccTile
	workers := min(runtime.GOMAXPROCS(0), tiles)
	if workers <= 1 || rows*cols*n < parallelMinWork {
		MulRowsF16Acc(m, dst, x, n, 0, rows)
		return
	}
	// A few tiles per piece: each piece decodes its rows once, so pieces are not too small.
	chunkTiles := max(1, tiles/(workers*chunksPerWorker))
	chunkRows := chunkTiles * f16AccTile
	var next atomic.Int64
	work := func() {
		for {
			r0 := int(next.Add(int64(chunkRows))) - chunkRows
			if r0 >= rows {
				return
			}
			MulRowsF16Acc(m, dst, x, n, r0, min(r0+chunkRows, rows))
		}
	}
	var wg sync.WaitGroup
	for range workers - 1 {
		wg.Go(work)
	}
	work()
	wg.Wait()
}

// f16AccScratch is one goroutine's buffers: the tile's decoded rows, its transposed chunk and
// the sums of every vector.
type f16AccScratch struct {
	rows, block, acc []float32
}

var f16AccPool sync.Pool

// MulRowsF16Acc computes the rows [r0, r1) of MatVecF16Acc on the calling goroutine. It
// panics if the range or the slice lengths are out of bounds, as Matrix.MulRows does.
func MulRowsF16Acc(m Matrix, dst, x []float32, n, r0, r1 int) {
	rows, cols := m.Rows(), m.Cols()
	checkMulArgs("MulRowsF16Acc", rows, cols, dst, x, n, r0, r1)
	if r0 == r1 {
		return
	}
	s, _ := f16AccPool.Get().(*f16AccScratch)
	if s == nil {
		s = new(f16AccScratch)
	}
	// Decoded rows sit ld floats apart: a multiple of 16 plus 16, so the 8 rows one transpose
	// block reads do not fall into the same L1 sets (rows 4 KB apart would).
	ld := (cols+15)&^15 + 16
	s.rows = grow(s.rows, f16AccTile*ld)
	s.block = grow(s.block, f16AccChunk*f16AccTile)
	s.acc = grow(s.acc, n*f16AccTile)
	for t0 := r0; t0 < r1; t0 += f16AccTile {
		tr := min(f16AccTile, r1-t0)
		for i := range tr {
			m.Row(t0+i, s.rows[i*ld:i*ld+cols])
		}
		// Lanes past the last row accumulate zeros and are never stored.
		clear(s.rows[tr*ld:])
		clear(s.acc)
		for c0 := 0; c0 < cols; c0 += f16AccChunk {
			kc := min(f16AccChunk, cols-c0)
			block := s.block[:kc*f16AccTile]
			transposeTile(block, s.rows, ld, c0, kc)
			for v := range n {
				f16AccSteps(s.acc[v*f16AccTile:(v+1)*f16AccTile], block, x[v*cols+c0:v*cols+c0+kc])
			}
		}
		for v := range n {
			copy(dst[v*rows+t0:v*rows+t0+tr], s.acc[v*f16AccTile:v*f16AccTile+tr])
		}
	}
	f16AccPool.Put(s)
}

func grow(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}

// transposeTile sets block[k*f16AccTile+i] = rows[i*ld+c0+k] for the tile's rows i and the kc
// columns k.
func transposeTile(block, rows []float32, ld, c0, kc int) {
	_ = rows[(f16AccTile-1)*ld+c0+kc-1]
	_ = block[kc*f16AccTile-1]
	k := 0
	if useAsm && kc >= 8 {
		k = kc &^ 7
		transpose8AVX(&block[0], &rows[c0], ld*4, f16AccTile*4, f16AccTile/8, k/8)
	}
	for ; k < kc; k++ {
		b := block[k*f16AccTile : (k+1)*f16AccTile]
		for i := range b {
			b[i] = rows[i*ld+c0+k]
		}
	}
}

// f16AccSteps runs len(x) steps of the tile's fp16 sums: acc[i] = fp16(acc[i] +
// x[k]·block[k*f16AccTile+i]).
func f16AccSteps(acc, block, x []float32) {
	if len(x) == 0 {
		return
	}
	_ = acc[f16AccTile-1]
	_ = block[len(x)*f16AccTile-1]
	switch {
	case useAsm && useAVX512F16Acc:
		f16acc128AVX512(&acc[0], &block[0], &x[0], len(x))
		return
	case useAsm:
		for h := 0; h < f16AccTile; h += 64 {
			f16acc64AVX(&acc[h], &block[h], &x[0], len(x), 4*f16AccTile)
		}
		return
	}
	for k, xv := range x {
		b := block[k*f16AccTile : (k+1)*f16AccTile]
		for i := range b {
			acc[i] += xv * b[i]
		}
		roundF16Go(acc[:f16AccTile])
	}
}
