package quant

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/x448/float16"
)

// Benchmark input: a 4096 x 1024 weight (16 MiB as fp32, 8 MiB as bf16), more
// than the caches hold, bf16-valued so both entry points see the same values.
const benchRows, benchCols = 4096, 1024

var benchW, benchBF16 = func() ([]float32, []byte) {
	r := rand.New(rand.NewPCG(9, 9))
	w := make([]float32, benchRows*benchCols)
	for i := range w {
		w[i] = bf16Round(float32(r.NormFloat64() * 0.02))
	}
	b, _ := toBF16(w)
	return w, b
}()

// naiveAbsmaxRow is the straightforward block-32 int8 loop, the baseline: a
// float max of math.Abs, x448's fp16 conversion, float32 division,
// math.RoundToEven, clamping by comparison.
func naiveAbsmaxRow(row []float32, q []int8, scales []uint16) {
	for b := 0; b < len(row); b += 32 {
		var m float32
		for _, v := range row[b : b+32] {
			if a := float32(math.Abs(float64(v))); a > m {
				m = a
			}
		}
		h := float16.Fromfloat32(m / 127)
		s := h.Float32()
		scales[b/32] = h.Bits()
		for i, v := range row[b : b+32] {
			x := 0.0
			if s != 0 {
				x = math.RoundToEven(float64(v / s))
			}
			if x > 127 {
				x = 127
			} else if x < -127 {
				x = -127
			}
			q[b+i] = int8(x)
		}
	}
}

// BenchmarkInt8Block32 measures block-32 int8 absmax, bytes = input bytes.
// row/*: one goroutine calling the row functions; driver/*: QuantizeLinear.
func BenchmarkInt8Block32(b *testing.B) {
	q := make([]int8, benchCols)
	sc := make([]uint16, benchCols/32)
	spec := Linear{Bits: 8, Scheme: Absmax, Granularity: Block32}
	saved := useAsm
	defer func() { useAsm = saved }()
	rows := func(b *testing.B, bytesPerValue int, f func(r int)) {
		b.SetBytes(int64(bytesPerValue * len(benchW)))
		for b.Loop() {
			for r := range benchRows {
				f(r)
			}
		}
	}
	b.Run("row/naive/f32", func(b *testing.B) {
		rows(b, 4, func(r int) { naiveAbsmaxRow(benchW[r*benchCols:(r+1)*benchCols], q, sc) })
	})
	for _, asm := range []bool{false, true} {
		if asm && !saved {
			continue
		}
		name := "go"
		if asm {
			name = "asm"
		}
		b.Run("row/"+name+"/f32", func(b *testing.B) {
			useAsm = asm
			rows(b, 4, func(r int) { _ = spec.QuantizeRow(benchW[r*benchCols:(r+1)*benchCols], q, sc) })
		})
		b.Run("row/"+name+"/bf16", func(b *testing.B) {
			useAsm = asm
			rows(b, 2, func(r int) { _ = spec.QuantizeRowBF16(benchBF16[2*r*benchCols:2*(r+1)*benchCols], q, sc) })
		})
	}
	useAsm = saved
	for _, tc := range []struct {
		name string
		src  RowSource
		size int
	}{
		{"f32", &Float32Matrix{R: benchRows, C: benchCols, Data: benchW}, 4},
		{"bf16", &BF16Matrix{R: benchRows, C: benchCols, Data: benchBF16}, 2},
	} {
		for _, workers := range []int{1, 2} {
			for _, metrics := range []bool{false, true} {
				name := "driver/" + tc.name + "/workers=" + string(rune('0'+workers))
				if metrics {
					name += "/metrics"
				}
				b.Run(name, func(b *testing.B) {
					var t LinearTensor // outputs reused across iterations
					b.SetBytes(int64(tc.size * len(benchW)))
					for b.Loop() {
						if err := QuantizeLinearInto(&t, tc.src, spec, Options{Workers: workers, NoMetrics: !metrics}); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}

// BenchmarkKMeans1M fits a 256-entry palette to 1M bf16-valued weights:
// histogram = counting + exact prefix sums + Lloyd on the distinct values;
// raw = Lloyd over the 1M values with exact sums; both from the same Ward
// initialisation, which is checked to give identical centroids.
func BenchmarkKMeans1M(b *testing.B) {
	w := benchW[:1<<20]
	const k = 256
	var km KMeans
	if err := km.histogram(w); err != nil {
		b.Fatal(err)
	}
	km.prefix()
	km.cent = make([]float64, k)
	km.hi, km.oldHi = make([]int, k), make([]int, k)
	km.initWard(k)
	init := slices.Clone(km.cent)
	hist := func() int {
		if err := km.histogram(w); err != nil {
			b.Fatal(err)
		}
		km.prefix()
		copy(km.cent, init)
		it, _ := km.lloyd(MaxLloydIterations)
		return it
	}
	raw := make([]float64, k)
	it := hist()
	copy(raw, init)
	rit, _ := rawLloyd(w, raw, MaxLloydIterations)
	if it != rit || !slices.Equal(raw, km.cent) {
		b.Fatalf("histogram Lloyd (%d iterations) and raw Lloyd (%d) differ", it, rit)
	}
	b.Logf("%d distinct values, %d Lloyd iterations", len(km.vals), it)
	b.Run("histogram", func(b *testing.B) {
		b.SetBytes(int64(4 * len(w)))
		for b.Loop() {
			hist()
		}
	})
	b.Run("raw", func(b *testing.B) {
		b.SetBytes(int64(4 * len(w)))
		for b.Loop() {
			copy(raw, init)
			rawLloyd(w, raw, MaxLloydIterations)
		}
	})
	b.Run("palettize", func(b *testing.B) { // the whole fit: histogram, Ward, Lloyd, LUT, indices
		lut, idx := make([]uint16, k), make([]uint8, len(w))
		b.SetBytes(int64(4 * len(w)))
		for b.Loop() {
			if _, err := km.Palettize(w, 8, lut, idx); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkLUTGroups palettizes the benchmark weight in groups of 32 rows.
func BenchmarkLUTGroups(b *testing.B) {
	src := &BF16Matrix{R: benchRows, C: benchCols, Data: benchBF16}
	for _, bits := range []int{8, 4} {
		b.Run(string(rune('0'+bits))+"bit", func(b *testing.B) {
			b.SetBytes(int64(2 * len(benchW)))
			for b.Loop() {
				if _, err := QuantizeLUT(src, Palette{Bits: bits, GroupRows: 32}, Options{NoMetrics: true}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
