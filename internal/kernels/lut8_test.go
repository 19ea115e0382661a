package kernels

import (
	"fmt"
	"math"
	"math/rand"
	"testing"
)

// The AVX-512 LUT8 product and row decode must equal the AVX2 ones bit for bit (gate reports
// embedded in bundles are compared byte for byte across machines), for every column count
// around its 64-column steps, tables with subnormal, negative-zero and huge fp16 entries, and a
// group split across the row range.
func TestLUT8AVX512BitIdentical(t *testing.T) {
	if !useAVX512LUT8 {
		t.Skip("no AVX-512 VBMI on this CPU")
	}
	rng := rand.New(rand.NewSource(11))
	for _, cols := range []int{64, 65, 72, 96, 127, 128, 129, 160, 200, 1024, 1031} {
		const rows, groupRows = 70, 10
		idx := make([]byte, rows*cols)
		rng.Read(idx)
		lut := make([]byte, 2*256*(rows/groupRows))
		rng.Read(lut)
		for g := 0; g < rows/groupRows; g++ {
			e := lut[2*256*g:]
			e[0], e[1] = 0x01, 0x00     // smallest subnormal
			e[2], e[3] = 0x00, 0x80     // -0
			e[4], e[5] = 0xff, 0x7b     // 65504
			e[510], e[511] = 0xff, 0x83 // negative subnormal
			for i := 1; i < len(e)/2 && i < 256; i += 2 {
				if e[2*i+1]&0x7c == 0x7c { // no Inf/NaN: they would make every sum NaN
					e[2*i+1] &^= 0x40
				}
			}
		}
		m, err := NewLUTMatrix(idx, lut, 8, rows, cols, groupRows)
		if err != nil {
			t.Fatal(err)
		}
		x := make([]float32, cols)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		for _, rr := range [][2]int{{0, rows}, {3, 27}, {69, 70}} {
			got := make([]float32, rows)
			want := make([]float32, rows)
			m.MulRows(got, x, 1, rr[0], rr[1])
			useAVX512LUT8 = false
			m.MulRows(want, x, 1, rr[0], rr[1])
			useAVX512LUT8 = true
			for r := rr[0]; r < rr[1]; r++ {
				if math.Float32bits(got[r]) != math.Float32bits(want[r]) {
					t.Errorf("cols %d rows %v: row %d: AVX-512 %v, AVX2 %v", cols, rr, r, got[r], want[r])
				}
			}
			// Row (the multi-vector and fp16-accumulate products decode with it).
			for _, r := range rr {
				r = min(r, rows-1)
				gotRow, wantRow := make([]float32, cols), make([]float32, cols)
				m.Row(r, gotRow)
				useAVX512LUT8 = false
				m.Row(r, wantRow)
				useAVX512LUT8 = true
				for c := range gotRow {
					if math.Float32bits(gotRow[c]) != math.Float32bits(wantRow[c]) {
						t.Fatalf("cols %d: Row(%d)[%d]: AVX-512 %v, AVX2 %v", cols, r, c, gotRow[c], wantRow[c])
					}
				}
			}
			var sum float64
			for r := rr[0]; r < rr[1]; r++ {
				sum += math.Abs(float64(got[r]))
			}
			if sum == 0 {
				t.Fatalf("cols %d: all-zero products prove nothing", cols)
			}
		}
	}
}

// BenchmarkLUT8: the LUT8 one-vector product with and without the AVX-512 kernel against
// the streaming read of as many bytes (x-read = read time / product time), alternating.
func BenchmarkLUT8(b *testing.B) {
	if !useAVX512LUT8 {
		b.Skip("no AVX-512 VBMI on this CPU")
	}
	for _, shape := range benchShapes {
		rows, cols := shape[0], shape[1]
		x := make([]float32, cols)
		for i := range x {
			x[i] = float32(i%17) / 17
		}
		dst := make([]float32, rows)
		buf, _ := benchBytes()
		for _, bm := range benchMatrices(rows, cols) {
			if bm.kind != "lut8" && bm.kind != "q8b32" {
				continue
			}
			for _, wide := range []bool{true, false} {
				if bm.kind == "q8b32" && !wide {
					continue
				}
				name := bm.kind
				if bm.kind == "lut8" && !wide {
					name += "-avx2"
				}
				b.Run(fmt.Sprintf("%dx%d/%s", rows, cols, name), func(b *testing.B) {
					useAVX512LUT8 = wide
					defer func() { useAVX512LUT8 = true }()
					benchPair(b, bm.bytes, "x-read",
						func() { sink += parallelRead(buf[:bm.bytes]) },
						func() { MatVec(bm.m, dst, x, 1) })
				})
			}
		}
	}
}
