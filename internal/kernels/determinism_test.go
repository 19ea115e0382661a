package kernels

import (
	"math"
	"math/rand"
	"runtime"
	"testing"
)

// Results must not depend on how MatVec splits rows over workers: gate reports embedded in
// bundle metadata are compared byte for byte by `qconv export --check` on other machines.
func TestMatVecIndependentOfWorkers(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	rng := rand.New(rand.NewSource(7))
	const rows, cols = 1031, 96
	f32 := make([]byte, 4*rows*cols)
	b16 := make([]byte, 2*rows*cols)
	for i := 0; i < rows*cols; i++ {
		v := float32(rng.NormFloat64())
		bits := math.Float32bits(v)
		f32[4*i], f32[4*i+1], f32[4*i+2], f32[4*i+3] = byte(bits), byte(bits>>8), byte(bits>>16), byte(bits>>24)
		b16[2*i], b16[2*i+1] = byte(bits>>16), byte(bits>>24)
	}
	q := make([]byte, rows*cols)
	rng.Read(q)
	scales := make([]byte, 2*rows*cols/32)
	for i := 0; i < len(scales); i += 2 {
		scales[i], scales[i+1] = 0x00, 0x20
	}
	lut := make([]byte, 2*256*((rows+31)/32))
	for i := range lut {
		lut[i] = byte(i * 7)
		if i%2 == 1 {
			lut[i] &= 0x3b
		}
	}
	mats := map[string]Matrix{
		"f32":  F32Matrix{Data: f32, R: rows, C: cols},
		"bf16": BF16Matrix{Data: b16, R: rows, C: cols},
		"f16":  F16Matrix{Data: b16, R: rows, C: cols},
		"q8":   Q8Matrix{Q: q, Scales: scales, R: rows, C: cols, BlockRows: 1, BlockCols: 32},
	}
	for name, m := range mats {
		for _, n := range []int{1, 3, 16} {
			x := make([]float32, n*cols)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			var want []float32
			for _, procs := range []int{1, 2, 3, 5, 8} {
				runtime.GOMAXPROCS(procs)
				got := make([]float32, n*rows)
				MatVec(m, got, x, n)
				if want == nil {
					want = got
					continue
				}
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Errorf("%s n=%d: GOMAXPROCS %d gives %v at %d, 1 gives %v", name, n, procs, got[i], i, want[i])
						break
					}
				}
			}
		}
	}
}
