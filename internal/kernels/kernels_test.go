package kernels

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/x448/float16"
)

// implementations runs f once with the assembly kernels (when this CPU has
// them) and once with the plain-Go kernels.
func implementations(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	saved := useAsm
	defer func() { useAsm = saved }()
	if saved {
		t.Run("asm", f)
	} else {
		t.Log("assembly kernels unavailable on this CPU/build; testing Go kernels only")
	}
	useAsm = false
	t.Run("go", f)
}

// relTol bounds |got - want| as a fraction of Σ|w·x|: float32 accumulation of
// a few hundred terms stays far below it, while one wrong, missing or
// misplaced term (≥ 1/cols of the sum in these tests) is far above it.
const relTol = 1e-5

// ---- byte builders (little-endian, as on disk)

func f16Bytes(vals ...float32) []byte {
	b := make([]byte, 2*len(vals))
	for i, v := range vals {
		h := float16.Fromfloat32(v)
		if h.Float32() != v {
			panic(fmt.Sprintf("%v is not exact in fp16", v))
		}
		binary.LittleEndian.PutUint16(b[2*i:], h.Bits())
	}
	return b
}

func bf16Bytes(vals ...float32) []byte {
	b := make([]byte, 2*len(vals))
	for i, v := range vals {
		u := math.Float32bits(v)
		if u&0xffff != 0 {
			panic(fmt.Sprintf("%v is not exact in bf16", v))
		}
		binary.LittleEndian.PutUint16(b[2*i:], uint16(u>>16))
	}
	return b
}

func f32Bytes(vals ...float32) []byte {
	b := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

func i8Bytes(vals ...int8) []byte {
	b := make([]byte, len(vals))
	for i, v := range vals {
		b[i] = byte(v)
	}
	return b
}

// unaligned copies b to an odd offset inside a larger buffer.
func unaligned(b []byte, off int) []byte {
	buf := make([]byte, len(b)+off+3)
	copy(buf[off:], b)
	return buf[off : off+len(b)]
}

func must[M any](m M, err error) M {
	if err != nil {
		panic(err)
	}
	return m
}

// ---- hand-computed cases

type handCase struct {
	name string
	m    Matrix
	x    []float32 // n vectors
	n    int
	want []float32 // [n][rows]
	rows [][]float32
}

func handCases() []handCase {
	x3 := []float32{1, 0.5, -1, 0, 1, 2}
	return []handCase{
		{
			name: "f32",
			m:    must(NewF32Matrix(f32Bytes(1, 2, 3, 4, 5, 6), 2, 3)),
			x:    x3, n: 2,
			// [1+1-3, 4+2.5-6], [2+6, 5+12]
			want: []float32{-1, 0.5, 8, 17},
			rows: [][]float32{{1, 2, 3}, {4, 5, 6}},
		},
		{
			name: "bf16",
			m:    must(NewBF16Matrix(bf16Bytes(1, -2, 0.25, 3, 0.5, -8), 2, 3)),
			x:    x3, n: 2,
			// [1-1-0.25, 3+0.25+8], [-2+0.5, 0.5-16]
			want: []float32{-0.25, 11.25, -1.5, -15.5},
			rows: [][]float32{{1, -2, 0.25}, {3, 0.5, -8}},
		},
		{
			name: "f16",
			m:    must(NewF16Matrix(f16Bytes(1, -2, 0.25, 3, 0.5, -8), 2, 3)),
			x:    x3, n: 2,
			want: []float32{-0.25, 11.25, -1.5, -15.5},
			rows: [][]float32{{1, -2, 0.25}, {3, 0.5, -8}},
		},
		{
			// Blocks of 2 columns: row 0 scales 0.5, 2; row 1 scales 0.25, 1.
			name: "q8-block2",
			m: must(NewQ8Matrix(i8Bytes(1, -2, 3, 4, -128, 127, 0, 5),
				f16Bytes(0.5, 2, 0.25, 1), 2, 4, 1, 2)),
			x: []float32{1, 2, 3, 4}, n: 1,
			// W = [[0.5 -1 6 8] [-32 31.75 0 5]]
			want: []float32{0.5 - 2 + 18 + 32, -32 + 63.5 + 20},
			rows: [][]float32{{0.5, -1, 6, 8}, {-32, 31.75, 0, 5}},
		},
		{
			name: "q8-per-channel",
			m:    must(NewQ8Matrix(i8Bytes(1, -2, 3, 4, -128, 127), f16Bytes(0.5, -0.25), 2, 3, 1, 3)),
			x:    []float32{1, 2, 3}, n: 1,
			// W = [[0.5 -1 1.5] [-1 32 -31.75]]
			want: []float32{0.5 - 2 + 4.5, -1 + 64 - 95.25},
			rows: [][]float32{{0.5, -1, 1.5}, {-1, 32, -31.75}},
		},
		{
			name: "q8-per-tensor",
			m:    must(NewQ8Matrix(i8Bytes(1, -2, 3, 4, -128, 127), f16Bytes(0.125), 3, 2, 3, 2)),
			x:    []float32{2, 1}, n: 1,
			want: []float32{0, 1.25, -16.125},
			rows: [][]float32{{0.125, -0.25}, {0.375, 0.5}, {-16, 15.875}},
		},
		{
			// 2x2 blocks on a 4x4 matrix: scale index (r/2)*2 + c/2.
			name: "q8-block2x2",
			m: must(NewQ8Matrix(i8Bytes(1, 1, 1, 1, 2, 2, 2, 2, 1, 1, 1, 1, -1, -1, -1, -1),
				f16Bytes(1, 2, 4, 8), 4, 4, 2, 2)),
			x: []float32{1, 1, 1, 1}, n: 1,
			want: []float32{2 + 4, 4 + 8, 8 + 16, -8 - 16},
			rows: [][]float32{{1, 1, 2, 2}, {2, 2, 4, 4}, {4, 4, 8, 8}, {-4, -4, -8, -8}},
		},
		{
			// Nibbles k=0..7: 1 -2 3 -8 7 0 -1 5, low nibble first.
			name: "q4-nibble-order",
			m:    must(NewQ4Matrix([]byte{0xE1, 0x83, 0x07, 0x5F}, f16Bytes(0.5, 2), 2, 4, 1, 4)),
			x:    []float32{1, 10, 100, 1000}, n: 1,
			// W = [[0.5 -1 1.5 -4] [14 0 -2 10]]
			want: []float32{0.5 - 10 + 150 - 4000, 14 - 200 + 10000},
			rows: [][]float32{{0.5, -1, 1.5, -4}, {14, 0, -2, 10}},
		},
		{
			// 3x3: rows 1 and 2 start mid-byte. Nibbles 1..9 = 1 2 3 4 5 6 7 -8 -1.
			name: "q4-odd-cols",
			m:    must(NewQ4Matrix([]byte{0x21, 0x43, 0x65, 0x87, 0x0F}, f16Bytes(1), 3, 3, 3, 3)),
			x:    []float32{1, 10, 100}, n: 1,
			want: []float32{321, 654, 7 - 80 - 100},
			rows: [][]float32{{1, 2, 3}, {4, 5, 6}, {7, -8, -1}},
		},
		{
			// Two groups of one row; table entries 0..3 used.
			name: "lut8-groups",
			m: must(NewLUTMatrix([]byte{0, 1, 2, 3, 3, 2, 1, 0}, append(
				f16Bytes(append([]float32{0.5, -1, 2, 4}, make([]float32, 252)...)...),
				f16Bytes(append([]float32{-0.5, 8, 16, 0.25}, make([]float32, 252)...)...)...),
				8, 2, 4, 1)),
			x: []float32{1, 2, 3, 4}, n: 1,
			want: []float32{0.5 - 2 + 6 + 16, 0.25 + 32 + 24 - 2},
			rows: [][]float32{{0.5, -1, 2, 4}, {0.25, 16, 8, -0.5}},
		},
		{
			// Unsigned nibbles 0x1 0xF | 0x8 0x0, one table for both rows.
			name: "lut4-nibble-order",
			m: must(NewLUTMatrix([]byte{0xF1, 0x08},
				f16Bytes(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, -15), 4, 2, 2, 2)),
			x: []float32{1, 10}, n: 1,
			want: []float32{1 - 150, 8},
			rows: [][]float32{{1, -15}, {8, 0}},
		},
	}
}

func TestHandComputed(t *testing.T) {
	implementations(t, func(t *testing.T) {
		for _, tc := range handCases() {
			t.Run(tc.name, func(t *testing.T) {
				got := make([]float32, len(tc.want))
				tc.m.MulRows(got, tc.x, tc.n, 0, tc.m.Rows())
				for i := range got {
					if got[i] != tc.want[i] {
						t.Errorf("MulRows: dst[%d] = %v, want %v", i, got[i], tc.want[i])
					}
				}
				row := make([]float32, tc.m.Cols())
				for r, want := range tc.rows {
					tc.m.Row(r, row)
					for c := range want {
						if row[c] != want[c] {
							t.Errorf("Row(%d)[%d] = %v, want %v", r, c, row[c], want[c])
						}
					}
				}
			})
		}
	})
}

// TestHandComputedWide pins the 32-wide nibble kernels (the assembly path)
// to hand-known elements, read out with one-hot vectors.
func TestHandComputedWide(t *testing.T) {
	// Nibble k (k < 64) of the packed array is k%16: bytes 0x10, 0x32, ...
	packed := make([]byte, 32)
	for i := range packed {
		packed[i] = byte(2*i%16) | byte((2*i+1)%16)<<4
	}
	q4 := must(NewQ4Matrix(packed, f16Bytes(0.5, 2, -1, 4), 2, 32, 1, 16))
	lut := make([]float32, 16)
	for i := range lut {
		lut[i] = float32(i*i) / 4
	}
	lut4 := must(NewLUTMatrix(packed, f16Bytes(lut...), 4, 2, 32, 2))
	q8 := must(NewQ8Matrix(func() []byte {
		b := make([]byte, 64)
		for i := range b {
			b[i] = byte(i - 32)
		}
		return b
	}(), f16Bytes(0.5, 2, -1, 4), 2, 32, 1, 16))
	// element -> want, for (row, col) pairs: Q4 value is (k%16 as signed
	// nibble) * scale of block (r, c/16).
	signed := func(v int) float32 { return float32(int8(v<<4) >> 4) }
	cases := []struct {
		m    Matrix
		r, c int
		want float32
	}{
		{q4, 0, 0, 0}, {q4, 0, 1, 0.5}, {q4, 0, 9, signed(9) * 0.5}, {q4, 0, 15, -0.5},
		{q4, 0, 16, 0}, {q4, 0, 23, 14}, {q4, 0, 24, -16}, {q4, 0, 31, -2},
		{q4, 1, 0, 0}, {q4, 1, 7, -7}, {q4, 1, 8, 8}, {q4, 1, 17, 4}, {q4, 1, 31, -4},
		{lut4, 0, 3, 9.0 / 4}, {lut4, 0, 15, 225.0 / 4}, {lut4, 1, 30, 49}, {lut4, 1, 0, 0},
		{q8, 0, 0, -16}, {q8, 0, 15, -8.5}, {q8, 0, 16, -32}, {q8, 0, 31, -2},
		{q8, 1, 0, 0}, {q8, 1, 15, -15}, {q8, 1, 16, 64}, {q8, 1, 31, 124},
	}
	implementations(t, func(t *testing.T) {
		for _, tc := range cases {
			x := make([]float32, 32)
			x[tc.c] = 1
			got := make([]float32, 2)
			tc.m.MulRows(got, x, 1, 0, 2)
			row := make([]float32, 32)
			tc.m.Row(tc.r, row)
			if got[tc.r] != tc.want || row[tc.c] != tc.want {
				t.Errorf("%T W[%d,%d]: MulRows gives %v, Row gives %v, want %v", tc.m, tc.r, tc.c, got[tc.r], row[tc.c], tc.want)
			}
		}
	})
}

// ---- random matrices vs a float64 reference

// refMatrix is a matrix and its dequantized values, computed here from the
// format definitions independently of the package.
type refMatrix struct {
	name string
	m    Matrix
	w    []float64 // [rows][cols]
}

func randHalf(rng *rand.Rand) (uint16, float64) {
	for {
		h := float16.Frombits(uint16(rng.Uint32()))
		if h.IsFinite() {
			return h.Bits(), float64(h.Float32())
		}
	}
}

func randScale(rng *rand.Rand) (uint16, float64) {
	v := float16.Fromfloat32(float32((rng.Float64()*1.9 + 0.1) * float64(1-2*rng.IntN(2)) / 64))
	return v.Bits(), float64(v.Float32())
}

// randMatrices builds one matrix of every kind; off shifts every byte slice
// to an unaligned start.
func randMatrices(rng *rand.Rand, rows, cols, off int) []refMatrix {
	n := rows * cols
	var out []refMatrix

	// f32, bf16, f16
	f32 := make([]byte, 4*n)
	bf := make([]byte, 2*n)
	f16 := make([]byte, 2*n)
	wf32, wbf, wf16 := make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range n {
		v := float32(rng.NormFloat64())
		binary.LittleEndian.PutUint32(f32[4*i:], math.Float32bits(v))
		wf32[i] = float64(v)
		u := math.Float32bits(v) >> 16
		binary.LittleEndian.PutUint16(bf[2*i:], uint16(u))
		wbf[i] = float64(math.Float32frombits(u << 16))
		h, hv := randHalf(rng)
		binary.LittleEndian.PutUint16(f16[2*i:], h)
		wf16[i] = hv
	}
	out = append(out,
		refMatrix{"f32", must(NewF32Matrix(unaligned(f32, off), rows, cols)), wf32},
		refMatrix{"bf16", must(NewBF16Matrix(unaligned(bf, off), rows, cols)), wbf},
		refMatrix{"f16", must(NewF16Matrix(unaligned(f16, off), rows, cols)), wf16},
	)

	// Quantized: q and nibbles random, every scale grid that divides the shape.
	q8 := make([]byte, n)
	q4 := make([]byte, (n+1)/2)
	for i := range q8 {
		q8[i] = byte(rng.Uint32())
	}
	for i := range q4 {
		q4[i] = byte(rng.Uint32())
	}
	nib := func(k int) int { return int(q4[k/2]>>(4*(k%2))) & 0xf }
	type grid struct {
		name   string
		br, bc int
	}
	grids := []grid{{"per-channel", 1, cols}, {"per-tensor", rows, cols}}
	for _, bc := range []int{32, 16, 8} {
		if cols%bc == 0 && bc < cols {
			grids = append(grids, grid{fmt.Sprintf("block%d", bc), 1, bc})
		}
	}
	if rows%2 == 0 && cols%4 == 0 && cols > 4 {
		grids = append(grids, grid{"block2x4", 2, 4})
	}
	for _, g := range grids {
		nScales := (rows / g.br) * (cols / g.bc)
		sc := make([]byte, 2*nScales)
		sv := make([]float64, nScales)
		for i := range sv {
			h, v := randScale(rng)
			binary.LittleEndian.PutUint16(sc[2*i:], h)
			sv[i] = v
		}
		w8, w4 := make([]float64, n), make([]float64, n)
		for r := range rows {
			for c := range cols {
				s := sv[(r/g.br)*(cols/g.bc)+c/g.bc]
				k := r*cols + c
				w8[k] = float64(int8(q8[k])) * s
				w4[k] = float64((nib(k)^8)-8) * s
			}
		}
		out = append(out,
			refMatrix{"q8-" + g.name, must(NewQ8Matrix(unaligned(q8, off), unaligned(sc, off+1), rows, cols, g.br, g.bc)), w8},
			refMatrix{"q4-" + g.name, must(NewQ4Matrix(unaligned(q4, off), unaligned(sc, off+1), rows, cols, g.br, g.bc)), w4},
		)
	}

	// Palettized: per-tensor, and groups of rows when they divide.
	for _, gr := range []int{rows, 2, 1} {
		if rows%gr != 0 {
			continue
		}
		groups := rows / gr
		for _, bits := range []int{8, 4} {
			k := 1 << bits
			lut := make([]byte, 2*groups*k)
			lv := make([]float64, groups*k)
			for i := range lv {
				h, v := randScale(rng)
				binary.LittleEndian.PutUint16(lut[2*i:], h)
				lv[i] = v
			}
			idx := q8
			at := func(k int) int { return int(q8[k]) }
			if bits == 4 {
				idx = q4
				at = nib
			}
			w := make([]float64, n)
			for r := range rows {
				for c := range cols {
					w[r*cols+c] = lv[(r/gr)*k+at(r*cols+c)]
				}
			}
			out = append(out, refMatrix{fmt.Sprintf("lut%d-group%d", bits, gr),
				must(NewLUTMatrix(unaligned(idx, off), unaligned(lut, off+2), bits, rows, cols, gr)), w})
		}
	}
	return out
}

func randVec(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.Float64()*2 - 1)
	}
	return x
}

// checkProduct compares dst[v*rows+r] for r in [r0, r1) with the float64
// reference and checks the other rows were left untouched (NaN).
func checkProduct(t *testing.T, rm refMatrix, dst, x []float32, n, r0, r1 int) {
	t.Helper()
	rows, cols := rm.m.Rows(), rm.m.Cols()
	bad := 0
	for v := range n {
		for r := range rows {
			got := dst[v*rows+r]
			if r < r0 || r >= r1 {
				if !math.IsNaN(float64(got)) {
					t.Errorf("%s: row %d outside [%d, %d) was written", rm.name, r, r0, r1)
					return
				}
				continue
			}
			var want, mag float64
			for c := range cols {
				p := rm.w[r*cols+c] * float64(x[v*cols+c])
				want += p
				mag += math.Abs(p)
			}
			if err := math.Abs(float64(got) - want); !(err <= relTol*mag) {
				if bad++; bad <= 3 {
					t.Errorf("%s [%dx%d] n=%d: dst[v=%d, r=%d] = %v, want %v (error %.3g of Σ|wx| = %.3g, tolerance %g)",
						rm.name, rows, cols, n, v, r, got, want, err/mag, mag, relTol)
				}
			}
		}
	}
}

func nanSlice(n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(math.NaN())
	}
	return s
}

var randShapes = [][2]int{{1, 1}, {1, 7}, {3, 8}, {5, 33}, {4, 64}, {7, 100}, {6, 96}, {13, 257}, {2, 1024}}

func TestMulRowsRandom(t *testing.T) {
	implementations(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		for i, shape := range randShapes {
			rows, cols := shape[0], shape[1]
			for _, rm := range randMatrices(rng, rows, cols, 1+i%7) {
				for _, n := range []int{1, 3, 16} {
					x := randVec(rng, n*cols)
					dst := nanSlice(n * rows)
					rm.m.MulRows(dst, x, n, 0, rows)
					checkProduct(t, rm, dst, x, n, 0, rows)
					if rows > 2 { // an inner row range
						r0, r1 := 1, rows-1
						dst := nanSlice(n * rows)
						rm.m.MulRows(dst, x, n, r0, r1)
						checkProduct(t, rm, dst, x, n, r0, r1)
					}
				}
				// Row is exact: the dequantized value is a float32.
				row := make([]float32, cols)
				for r := range rows {
					rm.m.Row(r, row)
					for c, got := range row {
						if want := rm.w[r*cols+c]; float64(got) != want {
							t.Fatalf("%s [%dx%d]: Row(%d)[%d] = %v, want %v", rm.name, rows, cols, r, c, got, want)
						}
					}
				}
			}
		}
	})
}

// TestMatVecSplit runs MatVec on shapes big enough to be split, with worker
// counts that do not divide the rows.
func TestMatVecSplit(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	implementations(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 4))
		for _, shape := range [][2]int{{301, 224}, {97, 1031}} {
			rows, cols := shape[0], shape[1]
			for _, rm := range randMatrices(rng, rows, cols, 3) {
				for _, procs := range []int{1, 2, 3} {
					runtime.GOMAXPROCS(procs)
					for _, n := range []int{1, 16} {
						x := randVec(rng, n*cols)
						dst := nanSlice(n * rows)
						MatVec(rm.m, dst, x, n)
						checkProduct(t, rm, dst, x, n, 0, rows)
					}
				}
			}
		}
	})
}

func TestMulRowsMisuse(t *testing.T) {
	m := must(NewBF16Matrix(make([]byte, 2*3*4), 3, 4))
	cases := []struct {
		name   string
		f      func()
		substr string
	}{
		{"short x", func() { m.MulRows(make([]float32, 3), make([]float32, 3), 1, 0, 3) }, "len(x) = 3"},
		{"short dst", func() { m.MulRows(make([]float32, 5), make([]float32, 8), 2, 0, 3) }, "len(dst) = 5"},
		{"rows past end", func() { m.MulRows(make([]float32, 4), make([]float32, 4), 1, 0, 4) }, "row range [0, 4)"},
		{"no vectors", func() { m.MulRows(nil, nil, 0, 0, 3) }, "n = 0"},
		{"row out of range", func() { m.Row(3, make([]float32, 4)) }, "row 3 outside"},
		{"short row dst", func() { m.Row(0, make([]float32, 3)) }, "len(dst) = 3"},
		{"literal with short data", func() {
			BF16Matrix{Data: make([]byte, 10), R: 3, C: 4}.MulRows(make([]float32, 3), make([]float32, 4), 1, 0, 3)
		}, "Data has 10 bytes"},
		{"literal q8 with bad block", func() {
			Q8Matrix{Q: make([]byte, 12), Scales: make([]byte, 6), R: 3, C: 4, BlockRows: 1, BlockCols: 3}.Row(0, make([]float32, 4))
		}, "does not divide"},
		{"Dot lengths", func() { Dot(make([]float32, 3), make([]float32, 4)) }, "len(a) = 3"},
		{"F16ToF32 lengths", func() { F16ToF32(make([]float32, 3), make([]byte, 5)) }, "len(src) = 5"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if msg, _ := r.(string); !strings.Contains(msg, tc.substr) {
					t.Errorf("panic %v, want one containing %q", r, tc.substr)
				}
			}()
			tc.f()
		})
	}
}

func TestConstructorErrors(t *testing.T) {
	cases := []struct {
		name   string
		err    error
		substr string
	}{
		{"f32 short", err2(NewF32Matrix(make([]byte, 23), 2, 3)), "F32Matrix: data has 23 bytes, want 24"},
		{"bf16 zero rows", err2(NewBF16Matrix(nil, 0, 3)), "rows and cols must be positive"},
		{"f16 long", err2(NewF16Matrix(make([]byte, 14), 2, 3)), "F16Matrix: data has 14 bytes, want 12"},
		{"huge", err2(NewF16Matrix(nil, math.MaxInt, 3)), "too large"},
		{"q8 block not dividing", err2(NewQ8Matrix(make([]byte, 40), make([]byte, 4), 1, 40, 1, 32)), "block [1, 32] does not divide shape [1, 40]"},
		{"q8 zero block", err2(NewQ8Matrix(make([]byte, 32), make([]byte, 2), 1, 32, 0, 32)), "block sizes must be positive"},
		{"q8 scales", err2(NewQ8Matrix(make([]byte, 64), make([]byte, 2), 2, 32, 1, 32)), "Q8Matrix: scales has 2 bytes, want 4"},
		{"q8 q", err2(NewQ8Matrix(make([]byte, 63), make([]byte, 4), 2, 32, 1, 32)), "Q8Matrix: q has 63 bytes, want 64"},
		{"q4 q odd", err2(NewQ4Matrix(make([]byte, 4), make([]byte, 2), 3, 3, 3, 3)), "Q4Matrix: q has 4 bytes, want 5"},
		{"q4 scales", err2(NewQ4Matrix(make([]byte, 16), make([]byte, 4), 1, 32, 1, 32)), "Q4Matrix: scales has 4 bytes, want 2"},
		{"lut bits", err2(NewLUTMatrix(make([]byte, 4), make([]byte, 16), 3, 2, 2, 2)), "bits = 3"},
		{"lut group", err2(NewLUTMatrix(make([]byte, 6), make([]byte, 512), 8, 3, 2, 2)), "group of 2 rows does not divide 3"},
		{"lut table", err2(NewLUTMatrix(make([]byte, 8), make([]byte, 32), 4, 4, 4, 2)), "lut has 32 bytes, want 64"},
		{"lut idx", err2(NewLUTMatrix(make([]byte, 8), make([]byte, 512), 8, 2, 3, 2)), "idx has 8 bytes, want 6"},
	}
	for _, tc := range cases {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.substr) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, tc.err, tc.substr)
		}
	}
	if _, err := NewLUTMatrix(make([]byte, 3), make([]byte, 32), 4, 1, 5, 1); err != nil {
		t.Errorf("valid 1x5 LUT4 matrix: %v", err)
	}
}

func err2[M any](_ M, err error) error { return err }

// ---- vector kernels

func TestDotAxpy(t *testing.T) {
	implementations(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(5, 6))
		for _, n := range []int{0, 1, 2, 7, 8, 9, 15, 31, 32, 33, 63, 100, 1000, 4099} {
			a, b := randVec(rng, n), randVec(rng, n)
			var want, mag float64
			for i := range a {
				want += float64(a[i]) * float64(b[i])
				mag += math.Abs(float64(a[i]) * float64(b[i]))
			}
			if got := Dot(a, b); math.Abs(float64(got)-want) > relTol*mag {
				t.Errorf("Dot len %d = %v, want %v", n, got, want)
			}
			y := randVec(rng, n)
			y0 := append([]float32(nil), y...)
			alpha := float32(rng.Float64() - 0.5)
			Axpy(y, alpha, a)
			for i := range y {
				// One fused or two rounded operations: at most half an ulp
				// of the product plus half an ulp of the sum.
				prod := float64(alpha) * float64(a[i])
				exact := float64(y0[i]) + prod
				if d := math.Abs(float64(y[i]) - exact); d > (ulp32(prod)+ulp32(exact))/2 {
					t.Fatalf("Axpy len %d: y[%d] = %v, want %v", n, i, y[i], exact)
				}
			}
		}
	})
}

func ulp32(v float64) float64 {
	f := float32(math.Abs(v))
	return float64(math.Nextafter32(f, float32(math.Inf(1))) - f)
}

func TestBF16ToF32(t *testing.T) {
	src := make([]byte, 2*65536+1)
	for i := range 65536 {
		binary.LittleEndian.PutUint16(src[2*i+1:], uint16(i))
	}
	src = src[1:] // unaligned
	implementations(t, func(t *testing.T) {
		dst := make([]float32, 65536)
		BF16ToF32(dst, src)
		for i, v := range dst {
			if got, want := math.Float32bits(v), uint32(i)<<16; got != want {
				t.Fatalf("bf16 %#04x -> %#08x, want %#08x", i, got, want)
			}
		}
	})
}

// allHalves returns every 16-bit pattern, little-endian, at an odd offset,
// with a 7-element tail so the scalar loops run too.
func allHalves() []byte {
	b := make([]byte, 2*(65536+7)+1)[1:]
	for i := range 65536 + 7 {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(i))
	}
	return b
}

func TestF16ToF32All(t *testing.T) {
	src := allHalves()
	implementations(t, func(t *testing.T) {
		dst := make([]float32, len(src)/2)
		F16ToF32(dst, src)
		for i, v := range dst {
			want := float16.Frombits(uint16(i)).Float32()
			if math.Float32bits(v) != math.Float32bits(want) {
				t.Fatalf("half %#04x -> %#08x (%v), want %#08x (%v)", uint16(i), math.Float32bits(v), v, math.Float32bits(want), want)
			}
		}
	})
}

// edgeFloats are float32 inputs around every rounding decision of fp16.
func edgeFloats() []float32 {
	var fs []float32
	add := func(bits ...uint32) {
		for _, b := range bits {
			fs = append(fs, math.Float32frombits(b), math.Float32frombits(b|0x80000000))
		}
	}
	for h := range uint32(0x7c00) { // every finite positive half
		v := math.Float32bits(float16.Frombits(uint16(h)).Float32())
		next := math.Float32bits(float16.Frombits(uint16(h + 1)).Float32())
		mid := v + (next-v)/2 // exact midpoint (a tie) when the gap is even in f32 bits
		add(v, v+1, mid-1, mid, mid+1, next-1)
	}
	add(
		0, 1, 0x7fffff, 0x800000, // zero, f32 subnormals, smallest normal
		0x33000000, 0x33000001, 0x32ffffff, // 2^-25 (tie to zero), just above, just below
		0x337fffff, 0x33800000, 0x33c00000, // around the smallest half subnormal 2^-24
		0x387fc000, 0x387fe000, 0x38800000, // largest subnormal half, tie to 2^-14, 2^-14
		0x477fe000, 0x477fefff, 0x477ff000, 0x477ff001, 0x47800000, // 65504, below/at/above the overflow tie, 65536
		0x7f7fffff, 0x7f800000, // max float, Inf
		0x7fc00000, 0x7f800001, 0x7fa00000, 0x7fc02000, 0x7fffffff, 0x7f802000, // NaNs: quiet, signalling, payloads
	)
	rng := rand.New(rand.NewPCG(7, 8))
	for range 200000 {
		fs = append(fs, math.Float32frombits(rng.Uint32()))
	}
	return append(fs, 1, 2, 3) // odd length: tails
}

func TestF32ToF16(t *testing.T) {
	src := edgeFloats()
	implementations(t, func(t *testing.T) {
		dst := make([]byte, 2*len(src)+1)[1:]
		F32ToF16(dst, src)
		for i, f := range src {
			got := binary.LittleEndian.Uint16(dst[2*i:])
			if want := float16.Fromfloat32(f).Bits(); got != want {
				t.Fatalf("F32ToF16(%v = %#08x) = %#04x, want %#04x", f, math.Float32bits(f), got, want)
			}
		}
	})
}

func TestRoundF16(t *testing.T) {
	src := edgeFloats()
	implementations(t, func(t *testing.T) {
		x := append([]float32(nil), src...)
		RoundF16(x)
		for i, f := range src {
			want := float16.Fromfloat32(f).Float32()
			if math.Float32bits(x[i]) != math.Float32bits(want) {
				t.Fatalf("RoundF16(%v = %#08x) = %#08x, want %#08x", f, math.Float32bits(f), math.Float32bits(x[i]), math.Float32bits(want))
			}
		}
	})
}

func TestReadSum(t *testing.T) {
	b := make([]byte, 1000)
	var want uint64
	for i := range b {
		b[i] = byte(i * 7)
	}
	for i := 0; i+8 <= len(b); i += 8 {
		want += binary.LittleEndian.Uint64(b[i:])
	}
	implementations(t, func(t *testing.T) {
		if got := readSum(b); got != want {
			t.Errorf("readSum = %#x, want %#x", got, want)
		}
	})
}

// TestMulRowsAllocs: the products allocate nothing once the row buffers are
// pooled.
func TestMulRowsAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	implementations(t, func(t *testing.T) {
		for _, rm := range randMatrices(rng, 4, 64, 1) {
			for _, n := range []int{1, 16} {
				x := randVec(rng, n*64)
				dst := make([]float32, n*4)
				row := make([]float32, 64)
				allocs := testing.AllocsPerRun(20, func() {
					rm.m.MulRows(dst, x, n, 0, 4)
					rm.m.Row(1, row)
				})
				if allocs != 0 {
					t.Errorf("%s n=%d: %v allocations per MulRows+Row", rm.name, n, allocs)
				}
			}
		}
	})
}

// TestMatVecsEqualsMatVec checks that products run together by MatVecs give each product's
// MatVec result bit for bit, for matrices of every kind and size sharing one activation, at
// several worker counts.
func TestMatVecsEqualsMatVec(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	rng := rand.New(rand.NewPCG(9, 10))
	const cols = 224
	var ms []Matrix
	for _, rows := range []int{301, 3, 64} {
		for _, rm := range randMatrices(rng, rows, cols, 1) {
			ms = append(ms, rm.m)
		}
	}
	for _, procs := range []int{1, 2, 3} {
		runtime.GOMAXPROCS(procs)
		for _, n := range []int{1, 5} {
			x := randVec(rng, n*cols)
			ps := make([]Product, len(ms))
			for i, m := range ms {
				ps[i] = Product{M: m, Dst: nanSlice(n * m.Rows())}
			}
			MatVecs(ps, x, n)
			for i, m := range ms {
				want := nanSlice(n * m.Rows())
				MatVec(m, want, x, n)
				for j := range want {
					if math.Float32bits(ps[i].Dst[j]) != math.Float32bits(want[j]) {
						t.Fatalf("procs %d n %d: product %d value %d = %v, MatVec gives %v", procs, n, i, j, ps[i].Dst[j], want[j])
					}
				}
			}
		}
	}
}
