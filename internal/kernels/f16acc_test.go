package kernels

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/x448/float16"
)

// f16AccRef is the fp16-accumulate product as the interpreter first computed it: the matrix
// decoded and transposed to [cols][rows], then per vector one Axpy of every column into the
// running sums followed by RoundF16.
func f16AccRef(m Matrix, x []float32, n int) []float32 {
	rows, cols := m.Rows(), m.Cols()
	bt := make([]float32, rows*cols)
	row := make([]float32, cols)
	for r := range rows {
		m.Row(r, row)
		for c, v := range row {
			bt[c*rows+r] = v
		}
	}
	out := make([]float32, n*rows)
	for v := range n {
		acc := out[v*rows : (v+1)*rows]
		for c, xv := range x[v*cols : (v+1)*cols] {
			Axpy(acc, xv, bt[c*rows:(c+1)*rows])
			RoundF16(acc)
		}
	}
	return out
}

// The tiled kernel equals the per-term Axpy + RoundF16 loop bit for bit, for every encoding,
// row counts around the 64-row tile, column counts around the 8-column transpose and the
// 64-column chunk, one and several vectors, on one and several goroutines; and the fp16
// accumulator really is one (the sums differ from float32 accumulation).
func TestMatVecF16AccEqualsReference(t *testing.T) {
	wide := useAVX512F16Acc
	defer func() { useAVX512F16Acc = wide }()
	if wide {
		t.Run("avx512", testMatVecF16AccEqualsReference)
	}
	useAVX512F16Acc = false
	t.Run("avx2", testMatVecF16AccEqualsReference)
}

func testMatVecF16AccEqualsReference(t *testing.T) {
	implementations(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(5, 9))
		differs := 0
		for _, shape := range [][2]int{{1, 1}, {7, 5}, {64, 64}, {65, 65}, {130, 9}, {70, 200}, {129, 1031}} {
			rows, cols := shape[0], shape[1]
			mats := randMatrices(rng, rows, cols, 1)
			// randMatrices' f16 values span the whole half range (their sums overflow); one
			// with moderate values too.
			h := make([]byte, 2*rows*cols)
			for i := 0; i < rows*cols; i++ {
				binary.LittleEndian.PutUint16(h[2*i:], float16.Fromfloat32(float32(rng.NormFloat64())).Bits())
			}
			mats = append(mats, refMatrix{name: "f16-normal", m: must(NewF16Matrix(h, rows, cols))})
			for _, rm := range mats {
				for _, n := range []int{1, 3} {
					x := make([]float32, n*cols)
					for i := range x {
						// Terms near 1 and a few large ones: sums reach magnitudes where fp16
						// steps are coarse, so every rounding shows.
						x[i] = float32(rng.NormFloat64() * 8)
					}
					want := f16AccRef(rm.m, x, n)
					got := nanSlice(n * rows)
					MatVecF16Acc(rm.m, got, x, n)
					exact := make([]float32, n*rows)
					MatVec(rm.m, exact, x, n)
					finite := 0
					for i := range got {
						if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
							t.Fatalf("%s [%dx%d] n=%d: dst[%d] = %v, reference %v", rm.name, rows, cols, n, i, got[i], want[i])
						}
						if !math.IsInf(float64(got[i]), 0) && !math.IsNaN(float64(got[i])) {
							finite++
						}
						if float64(got[i]) != float64(float16Round(exact[i])) {
							differs++
						}
					}
					if rm.name != "f16" && finite < len(got)/2 {
						t.Fatalf("%s [%dx%d]: only %d of %d sums finite: the test proves little", rm.name, rows, cols, finite, len(got))
					}
				}
			}
		}
		if differs == 0 {
			t.Fatal("fp16 accumulation never differed from float32 accumulation rounded once")
		}
	})
}

func float16Round(v float32) float32 {
	x := []float32{v}
	roundF16Go(x)
	return x[0]
}

// A row range writes only its rows, and the sums saturate as an fp16 accumulator does:
// 2048 + 1 + 1 + 1 stays 2048 (each 2049 rounds back to even), where float32 gives 2051.
func TestMulRowsF16AccRangeAndRounding(t *testing.T) {
	implementations(t, func(t *testing.T) {
		const rows, cols = 70, 4
		w := make([]float32, rows*cols)
		for i := range w {
			w[i] = 1
		}
		m := must(NewF32Matrix(f32Bytes(w...), rows, cols))
		x := []float32{2048, 1, 1, 1}
		dst := nanSlice(rows)
		MulRowsF16Acc(m, dst, x, 1, 3, 67)
		for r, v := range dst {
			switch {
			case r < 3 || r >= 67:
				if !math.IsNaN(float64(v)) {
					t.Errorf("row %d outside [3, 67) written: %v", r, v)
				}
			case v != 2048:
				t.Errorf("row %d = %v, want 2048 (fp16 accumulation)", r, v)
			}
		}
	})
}

// BenchmarkF16Acc: the fp16-accumulate product against the exact one-vector MatVec of the same
// matrix, alternating (x-exact = MatVec time / MatVecF16Acc time; 1 = as fast as the exact
// product), for the encodings the stress gate meets (fp16 and int8 block-32 pipelined bodies,
// LUT8 ios-ane ones) at the 0.8B's MLP shapes, with 1 and 4 vectors.
func BenchmarkF16Acc(b *testing.B) {
	for _, shape := range [][2]int{{3584, 1024}, {1024, 3584}} {
		rows, cols := shape[0], shape[1]
		for _, bm := range benchMatrices(rows, cols) {
			if bm.kind != "f16" && bm.kind != "q8b32" && bm.kind != "lut8" {
				continue
			}
			for _, n := range []int{1, 4} {
				x := make([]float32, n*cols)
				for i := range x {
					x[i] = float32(i%17) / 17
				}
				dst := make([]float32, n*rows)
				b.Run(fmt.Sprintf("%dx%d/%s/n%d", rows, cols, bm.kind, n), func(b *testing.B) {
					benchPair(b, 0, "x-exact",
						func() { MatVec(bm.m, dst, x, n) },
						func() { MatVecF16Acc(bm.m, dst, x, n) })
				})
			}
		}
	}
}
