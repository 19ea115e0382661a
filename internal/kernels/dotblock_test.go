package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestDotRowsEqualsDot checks DotRows against Dot bit for bit: column counts on and off the
// 32-column chunk, row counts around the 4-row block, even and odd vector counts, and values
// spread over many magnitudes so a different summation order shows in the last bits.
func TestDotRowsEqualsDot(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	val := func() float32 {
		return float32(rng.NormFloat64() * math.Pow(10, rng.Float64()*6-3))
	}
	for _, cols := range []int{32, 64, 80, 96, 1024, 1056, 3584, 7} {
		for _, nrows := range []int{1, 3, 4, 5, 8, 11} {
			for _, nvec := range []int{1, 2, 3, 5} {
				rows := make([]float32, nrows*cols)
				for i := range rows {
					rows[i] = val()
				}
				xs := make([][]float32, nvec)
				dst := make([][]float32, nvec)
				for v := range xs {
					xs[v] = make([]float32, cols)
					for i := range xs[v] {
						xs[v][i] = val()
					}
					dst[v] = make([]float32, nrows+3)
				}
				DotRows(dst, 3, rows, cols, xs)
				for v := range xs {
					for r := range nrows {
						want := Dot(rows[r*cols:(r+1)*cols], xs[v])
						if math.Float32bits(dst[v][3+r]) != math.Float32bits(want) {
							t.Fatalf("cols %d rows %d vectors %d: row %d vector %d = %v, Dot gives %v", cols, nrows, nvec, r, v, dst[v][3+r], want)
						}
					}
				}
			}
		}
	}
}

// TestDotRowsChecksArgs checks that DotRows panics (rather than reading out of bounds) on
// vectors or outputs of the wrong size.
func TestDotRowsChecksArgs(t *testing.T) {
	rows := make([]float32, 4*32)
	for name, f := range map[string]func(){
		"short vector": func() { DotRows([][]float32{make([]float32, 4)}, 0, rows, 32, [][]float32{make([]float32, 31)}) },
		"short output": func() { DotRows([][]float32{make([]float32, 3)}, 0, rows, 32, [][]float32{make([]float32, 32)}) },
		"ragged rows":  func() { DotRows(nil, 0, rows[:33], 32, nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

func BenchmarkDotRows(b *testing.B) {
	const cols, nrows, nvec = 1024, 8, 32
	rows := make([]float32, nrows*cols)
	xs := make([][]float32, nvec)
	dst := make([][]float32, nvec)
	for i := range rows {
		rows[i] = float32(i%13) * 0.1
	}
	for v := range xs {
		xs[v] = make([]float32, cols)
		for i := range xs[v] {
			xs[v][i] = float32((i+v)%7) * 0.3
		}
		dst[v] = make([]float32, nrows)
	}
	b.Run("DotRows", func(b *testing.B) {
		b.SetBytes(int64(4 * nrows * cols * nvec))
		for b.Loop() {
			DotRows(dst, 0, rows, cols, xs)
		}
	})
	b.Run("Dot", func(b *testing.B) {
		b.SetBytes(int64(4 * nrows * cols * nvec))
		for b.Loop() {
			for v := range xs {
				for r := range nrows {
					dst[v][r] = Dot(rows[r*cols:(r+1)*cols], xs[v])
				}
			}
		}
	})
}

// TestGemvBF16AVX512EqualsAVX2 checks the AVX-512 bf16 product against the AVX2 kernel
// bit for bit, on columns that take it and that do not.
func TestGemvBF16AVX512EqualsAVX2(t *testing.T) {
	if !useDotBlock {
		t.Skip("no AVX-512 on this machine")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, cols := range []int{32, 64, 1024, 3584, 40} {
		for _, rows := range []int{1, 2, 3, 8, 9} {
			w := make([]byte, 2*rows*cols)
			for i := 0; i < len(w); i += 2 {
				b := math.Float32bits(float32(rng.NormFloat64() * math.Pow(10, rng.Float64()*6-3)))
				w[i], w[i+1] = byte(b>>16), byte(b>>24)
			}
			x := make([]float32, cols)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			m := BF16Matrix{R: rows, C: cols, Data: w}
			got := make([]float32, rows)
			m.MulRows(got, x, 1, 0, rows)
			want := make([]float32, rows)
			gemvBF16AVX(ptr(w), &x[0], &want[0], rows, cols)
			for r := range rows {
				if math.Float32bits(got[r]) != math.Float32bits(want[r]) {
					t.Fatalf("cols %d rows %d: row %d = %v, gemvBF16AVX gives %v", cols, rows, r, got[r], want[r])
				}
			}
		}
	}
}
