package quant

import (
	"bytes"
	"errors"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/x448/float16"
)

// randFloat32 draws float32 values over the whole range, subnormals included.
func randFloat32(r *rand.Rand) float32 {
	for {
		v := math.Float32frombits(r.Uint32())
		if !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) {
			return v
		}
	}
}

func TestWideSumExact(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	for trial := range 2000 {
		var w wide
		sum := new(big.Float).SetPrec(2000)
		n := 1 + r.IntN(50)
		scale := r.IntN(3)
		for range n {
			v := randFloat32(r)
			if scale == 1 { // nearby exponents: cancellation and carries
				v = float32(r.NormFloat64())
			}
			c := uint64(1 + r.IntN(1000))
			if scale == 2 {
				c = uint64(r.Int64N(maxExactCount / 64))
			}
			w.addTerm(v, c)
			term := new(big.Float).SetPrec(2000).SetFloat64(float64(v))
			term.Mul(term, new(big.Float).SetUint64(c))
			sum.Add(sum, term)
		}
		want, _ := sum.Float64()
		if got := w.float64(); got != want {
			t.Fatalf("trial %d: wide %v (%x), big %v", trial, got, w, want)
		}
		// Differences, as the prefix sums use them.
		var v wide
		v.addTerm(1.5, 3)
		var d wide
		d.sub(&w, &v)
		sum.Sub(sum, big.NewFloat(4.5))
		want, _ = sum.Float64()
		if got := d.float64(); got != want {
			t.Fatalf("trial %d: difference %v, big %v", trial, got, want)
		}
	}
	// A tie at float64 precision rounds to even, with and without sticky bits.
	var w wide
	w.addTerm(1, 1<<38)                    // 2^38
	w.addShifted(1, 149+38-53, false)      // + 2^-15: exactly half an ulp of 2^38
	if got := w.float64(); got != 0x1p38 { // ties to even: down
		t.Fatalf("tie: %v", got)
	}
	w.addShifted(1, 0, false) // + 2^-149 sticky: now above the tie
	if got := w.float64(); got != math.Nextafter(0x1p38, math.Inf(1)) {
		t.Fatalf("above tie: %v", got)
	}
}

func TestF16FromF64(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	for range 200000 {
		x := randFloat32(r)
		if r.IntN(2) == 0 {
			x = math.Float32frombits(r.Uint32()&0x807fffff | uint32(100+r.IntN(50))<<23) // fp16's range
		}
		if got, want := f16FromF64(float64(x)), float16.Fromfloat32(x).Bits(); got != want {
			t.Fatalf("%v: %#04x, want %#04x", x, got, want)
		}
	}
	for _, tc := range []struct {
		x    float64
		want uint16
	}{
		{1 + 0x1p-11, 0x3c00},           // tie: even
		{1 + 3*0x1p-11, 0x3c02},         // tie: even
		{1 + 0x1p-11 + 0x1p-40, 0x3c01}, // above the tie; float32 would lose the 2^-40 and round down
		{65504, 0x7bff}, {65519.99, 0x7bff}, {65520, 0x7c00},
		{0x1p-25, 0}, {0x1p-25 + 0x1p-60, 1}, {-3 * 0x1p-25, 0x8002}, {0x1p-14 - 0x1p-26, 0x0400},
	} {
		if got := f16FromF64(tc.x); got != tc.want {
			t.Errorf("%v: %#04x, want %#04x", tc.x, got, tc.want)
		}
	}
}

// plainLloyd is Lloyd's iteration over the raw values, written independently of
// the histogram version: each value scans for the first boundary it does not
// exceed, and cluster sums are exact big.Float sums rounded to float64 once.
func plainLloyd(w []float32, cent []float64, maxIter int) (int, bool) {
	k := len(cent)
	assign := make([]int, len(w))
	for i := range assign {
		assign[i] = -1
	}
	b := make([]float64, k-1)
	sums := make([]*big.Float, k)
	counts := make([]int, k)
	for iters := 0; ; iters++ {
		for i := range b {
			b[i] = (cent[i] + cent[i+1]) / 2
		}
		changed := false
		for i, v := range w {
			c := 0
			for c < k-1 && !(float64(v) <= b[c]) {
				c++
			}
			if c != assign[i] {
				changed, assign[i] = true, c
			}
		}
		if !changed {
			return iters, true
		}
		if iters == maxIter {
			return iters, false
		}
		for c := range sums {
			sums[c], counts[c] = new(big.Float).SetPrec(1200), 0
		}
		for i, v := range w {
			sums[assign[i]].Add(sums[assign[i]], big.NewFloat(float64(v)))
			counts[assign[i]]++
		}
		for c := range cent {
			if counts[c] > 0 {
				s, _ := sums[c].Float64()
				cent[c] = s / float64(counts[c])
			}
		}
	}
}

// rawLloyd is Lloyd's iteration over the raw values with the package's exact
// accumulator: the benchmark baseline for the histogram version.
func rawLloyd(w []float32, cent []float64, maxIter int) (int, bool) {
	k := len(cent)
	assign := make([]int32, len(w))
	for i := range assign {
		assign[i] = -1
	}
	bmax := make([]float64, k-1)
	sums := make([]wide, k)
	counts := make([]uint64, k)
	for iters := 0; ; iters++ {
		m := math.Inf(-1)
		for i := range bmax {
			m = max(m, (cent[i]+cent[i+1])/2)
			bmax[i] = m
		}
		changed := false
		for i, v := range w {
			lo, hi := 0, k-1 // first cluster c with v <= bmax[c], else k-1
			for lo < hi {
				mid := (lo + hi) / 2
				if float64(v) <= bmax[mid] {
					hi = mid
				} else {
					lo = mid + 1
				}
			}
			if int32(lo) != assign[i] {
				changed, assign[i] = true, int32(lo)
			}
		}
		if !changed {
			return iters, true
		}
		if iters == maxIter {
			return iters, false
		}
		clear(sums)
		clear(counts)
		for i, v := range w {
			sums[assign[i]].addTerm(v, 1)
			counts[assign[i]]++
		}
		for c := range cent {
			if counts[c] > 0 {
				cent[c] = sums[c].float64() / float64(counts[c])
			}
		}
	}
}

func TestLloydMatchesPlainLloyd(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	for _, tc := range []struct {
		name string
		n, k int
		gen  func() float32
	}{
		{"bf16 normal k16", 3000, 16, func() float32 { return bf16Round(float32(r.NormFloat64() * 0.02)) }},
		{"bf16 heavy tail k256", 2500, 256, func() float32 { return bf16Round(float32(r.NormFloat64() * r.ExpFloat64() * 0.03)) }},
		{"fp16 k16", 2000, 16, func() float32 { return float16.Fromfloat32(float32(r.NormFloat64())).Float32() }},
		{"fp32 wide range k16", 2000, 16, func() float32 { return float32(r.NormFloat64() * math.Exp2(r.Float64()*40-20)) }},
		{"fp32 k256", 1500, 256, func() float32 { return float32(r.NormFloat64()) }},
		{"fp32 k4, large clusters", 5000, 4, func() float32 { return float32(r.NormFloat64() * math.Exp2(r.Float64()*30)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := make([]float32, tc.n)
			for i := range w {
				w[i] = tc.gen()
			}
			w[0], w[1], w[2] = 0, float32(math.Copysign(0, -1)), 0 // a zero spike, both signs
			var km KMeans
			if err := km.histogram(w); err != nil {
				t.Fatal(err)
			}
			if len(km.vals) <= tc.k {
				t.Fatalf("only %d distinct values", len(km.vals))
			}
			km.prefix()
			km.cent = make([]float64, tc.k)
			km.hi, km.oldHi = make([]int, tc.k), make([]int, tc.k)
			km.initWard(tc.k)
			init := slices.Clone(km.cent)
			for i := 1; i < tc.k; i++ {
				if !(init[i] > init[i-1]) {
					t.Fatalf("initial centroids not strictly increasing at %d: %v", i, init[i-1:i+1])
				}
			}
			iters, conv := km.lloyd(MaxLloydIterations)
			plain := slices.Clone(init)
			piters, pconv := plainLloyd(w, plain, MaxLloydIterations)
			if iters != piters || conv != pconv {
				t.Fatalf("iterations %d (converged %v), plain %d (%v)", iters, conv, piters, pconv)
			}
			raw := slices.Clone(init)
			riters, rconv := rawLloyd(w, raw, MaxLloydIterations)
			if iters != riters || conv != rconv {
				t.Fatalf("iterations %d (converged %v), raw %d (%v)", iters, conv, riters, rconv)
			}
			for i := range plain {
				if math.Float64bits(km.cent[i]) != math.Float64bits(plain[i]) || math.Float64bits(raw[i]) != math.Float64bits(plain[i]) {
					t.Fatalf("centroid %d: %v, plain %v, raw %v", i, km.cent[i], plain[i], raw[i])
				}
			}
			t.Logf("%d distinct, %d iterations, converged %v", len(km.vals), iters, conv)
		})
	}
}

func bf16Round(v float32) float32 {
	return math.Float32frombits(math.Float32bits(v) &^ 0xffff)
}

func TestHistogramKindsAgree(t *testing.T) {
	// Values exact in both bf16 and fp16 (k/64, |k| < 256): the bf16 table, the
	// fp16 table and the sort path must find the same histogram and the same fit.
	r := rand.New(rand.NewPCG(4, 4))
	w := make([]float32, 4000)
	for i := range w {
		w[i] = float32(r.IntN(511)-255) / 64
	}
	var a, b, c KMeans
	if err := a.histogram(w); err != nil || a.kind != histBF16 {
		t.Fatal(err, a.kind)
	}
	w16 := slices.Clone(w)
	w16[7] = 1 + 0x1p-10 // fp16-exact, not bf16
	w16[8] = 1 + 0x1p-10
	if err := b.histogram(w16); err != nil || b.kind != histF16 {
		t.Fatal(err, b.kind)
	}
	w32 := slices.Clone(w)
	w32[7] = 1 + 0x1p-20 // neither
	w32[8] = 1 + 0x1p-20
	if err := c.histogram(w32); err != nil || c.kind != histSort {
		t.Fatal(err, c.kind)
	}
	// Same data through the sort path directly.
	var d KMeans
	d.fromSorted(slices.Clone(w))
	if !slices.Equal(a.vals, d.vals) || !slices.Equal(a.cnt, d.cnt) {
		t.Fatal("bf16 table and sort histograms differ")
	}
	lutA, lutD := make([]uint16, 256), make([]uint16, 16)
	idxA, idxD := make([]uint8, len(w)), make([]uint8, len(w))
	fa, err := a.Palettize(w, 4, lutA, idxA)
	if err != nil {
		t.Fatal(err)
	}
	d.kind = histSort
	if err := d.fitLUT(16); err != nil {
		t.Fatal(err)
	}
	d.assign(w, idxD)
	copy(lutD, d.lut)
	if !slices.Equal(lutA[:16], lutD) || !slices.Equal(idxA, idxD) || fa != d.fit {
		t.Fatalf("table and sort fits differ: %v vs %v", fa, d.fit)
	}
}

func TestPalettizeFewDistinct(t *testing.T) {
	w := []float32{0.5, -0.25, 0.5, 3, 0, float32(math.Copysign(0, -1)), 3, 3, -0.25}
	var km KMeans
	lut := make([]uint16, 256)
	idx := make([]uint8, len(w))
	fit, err := km.Palettize(w, 8, lut, idx)
	if err != nil {
		t.Fatal(err)
	}
	// Distinct values ascending (-0 is 0), then the largest repeated.
	want := []float32{-0.25, 0, 0.5, 3}
	for i, h := range lut {
		v := F16ToFloat32(h)
		if i < 4 && v != want[i] || i >= 4 && v != 3 {
			t.Fatalf("lut[%d] = %v", i, v)
		}
	}
	if !slices.Equal(idx, []uint8{2, 0, 2, 3, 1, 1, 3, 3, 0}) || fit != (Fit{Distinct: 4, Converged: true}) {
		t.Fatalf("idx %v fit %+v", idx, fit)
	}
	// Exactly 16 distinct values, 4 bits: exact.
	w = w[:0]
	for i := range 16 {
		w = append(w, float32(i*i)/8, float32(i*i)/8)
	}
	idx = make([]uint8, len(w))
	if _, err := km.Palettize(w, 4, lut, idx); err != nil {
		t.Fatal(err)
	}
	for i, v := range w {
		if F16ToFloat32(lut[idx[i]]) != v || idx[i] != uint8(i/2) {
			t.Fatalf("weight %d: idx %d lut %v", i, idx[i], F16ToFloat32(lut[idx[i]]))
		}
	}
}

func TestNearestEntryTies(t *testing.T) {
	// LUT [0, 1, 1, 3] (entries 1 and 2 equal): midpoint ties go to the lower
	// entry, equal entries to the lower index.
	km := KMeans{kind: histSort, vals: []float32{-1, 0.5, 0.75, 1, 2, 2.5, 4}, cnt: []uint64{1, 1, 1, 1, 1, 1, 1}}
	km.cent = []float64{0, 1, 1, 3} // fitLUT with D > k would run Lloyd: set the state it leaves
	km.used = 4
	km.lut = []uint16{0, 0x3c00, 0x3c00, 0x4200}
	km.lutF = []float32{0, 1, 1, 3}
	km.nearest()
	if !slices.Equal(km.idxOf, []uint8{0, 0, 1, 1, 1, 3, 3}) {
		t.Fatalf("indices %v", km.idxOf)
	}
}

func TestPalettizeErrors(t *testing.T) {
	var km KMeans
	w := make([]float32, 64)
	w[37] = float32(math.Inf(1))
	_, err := km.Palettize(w, 8, make([]uint16, 256), make([]uint8, 64))
	var we *WeightError
	if !errors.As(err, &we) || we.Col != 37 || we.Reason != reasonNonFinite {
		t.Fatalf("got %v", err)
	}
	// A centroid beyond fp16: a weight of 1e6.
	w[37] = 1e6
	_, err = km.Palettize(w, 4, make([]uint16, 16), make([]uint8, 64))
	if !errors.As(err, &we) || we.Reason != reasonLUTOverflow || we.Col != -1 {
		t.Fatalf("got %v", err)
	}
	m := make([]float32, 64*10)
	m[40*10+2] = 1e6
	_, err = QuantizeLUT(&Float32Matrix{R: 64, C: 10, Data: m}, Palette{Bits: 8, GroupRows: 32}, Options{})
	if !errors.As(err, &we) || we.Row != 32 || we.Col != -1 || err.Error() != "palette rows from 32: k-means centroid overflows fp16 (1e+06)" {
		t.Fatalf("got %v", err)
	}
	// Through the driver: rows and columns.
	m = make([]float32, 64*10)
	m[33*10+4] = float32(math.NaN())
	for _, spec := range []Palette{{8, 32}, {4, 0}} {
		_, err = QuantizeLUT(&Float32Matrix{R: 64, C: 10, Data: m}, spec, Options{Workers: 2})
		if !errors.As(err, &we) || we.Row != 33 || we.Col != 4 {
			t.Fatalf("%v: got %v", spec, err)
		}
	}
}

func TestQuantizeLUT(t *testing.T) {
	saved := chunkWeights
	chunkWeights = 1024
	defer func() { chunkWeights = saved }()
	r := rand.New(rand.NewPCG(5, 5))
	rows, cols := 128, 48
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(r.NormFloat64() * 0.02 * float64(1+i/cols%3))
	}
	bf := make([]float32, len(w))
	for i, v := range w {
		bf[i] = bf16Round(v)
	}
	f16 := make([]float32, len(w))
	for i, v := range w {
		f16[i] = float16.Fromfloat32(v).Float32()
	}
	for _, data := range [][]float32{bf, f16, w} {
		for _, spec := range []Palette{{8, 32}, {4, 32}, {8, 0}, {4, 0}} {
			var first *LUTTensor
			for _, workers := range []int{1, 2, 3} {
				lt, err := QuantizeLUT(&Float32Matrix{R: rows, C: cols, Data: data}, spec, Options{Workers: workers})
				if err != nil {
					t.Fatal(err)
				}
				if first == nil {
					first = lt
					continue
				}
				if !bytes.Equal(lt.Indices, first.Indices) || !bytes.Equal(lt.LUT, first.LUT) || lt.Metrics != first.Metrics || !slices.Equal(lt.Fits, first.Fits) {
					t.Fatalf("%v: %d workers differ from 1", spec, workers)
				}
			}
			// Each group's LUT and indices equal a direct Palettize of its rows.
			g := spec.GroupRows
			if g == 0 {
				g = rows
			}
			var km KMeans
			k := spec.Entries()
			lut := make([]uint16, k)
			idx := make([]uint8, g*cols)
			deq := make([]float32, cols)
			var ee float64
			for grp := range rows / g {
				if _, err := km.Palettize(data[grp*g*cols:(grp+1)*g*cols], spec.Bits, lut, idx); err != nil {
					t.Fatal(err)
				}
				for i, h := range lut {
					if got := uint16(first.LUT[2*(grp*k+i)]) | uint16(first.LUT[2*(grp*k+i)+1])<<8; got != h {
						t.Fatalf("%v group %d lut[%d] %#04x, want %#04x", spec, grp, i, got, h)
					}
				}
				for rr := range g {
					row := grp*g + rr
					first.DequantizeRow(row, deq)
					for c, v := range deq {
						if want := F16ToFloat32(lut[idx[rr*cols+c]]); v != want {
							t.Fatalf("%v (%d,%d): %v, want %v", spec, row, c, v, want)
						}
						e := float64(data[row*cols+c]) - float64(v)
						ee += e * e
					}
				}
			}
			if mse := ee / float64(rows*cols); math.Abs(mse-first.Metrics.MSE) > 1e-9*mse {
				t.Fatalf("%v: MSE %g, recomputed %g", spec, first.Metrics.MSE, mse)
			}
		}
	}
}

func TestQuantizeLUTFewDistinct(t *testing.T) {
	// Three distinct values in a 64 x 5 weight, 4-bit groups of 32 rows: the LUT
	// holds them exactly, indices pack across rows (5 is odd), SNR is infinite.
	rows, cols := 64, 5
	w := make([]float32, rows*cols)
	vals := []float32{-1, 0, 0.5}
	for i := range w {
		w[i] = vals[(i*7+i/3)%3]
	}
	lt, err := QuantizeLUT(&Float32Matrix{R: rows, C: cols, Data: w}, Palette{Bits: 4, GroupRows: 32}, Options{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(lt.Indices) != rows*cols/2 || len(lt.LUT) != 2*2*16 || !math.IsInf(lt.Metrics.SNR, 1) || lt.Fits[1] != (Fit{Distinct: 3, Converged: true}) {
		t.Fatalf("indices %d bytes, LUT %d bytes, metrics %+v, fits %+v", len(lt.Indices), len(lt.LUT), lt.Metrics, lt.Fits)
	}
	row := make([]float32, cols)
	idx := make([]uint8, cols)
	for r := range rows {
		lt.DequantizeRow(r, row)
		UnpackUint4(idx, lt.Indices, r*cols)
		for c, v := range row {
			want := w[r*cols+c]
			if v != want || idx[c] != uint8(slices.Index(vals, want)) {
				t.Fatalf("(%d,%d): %v index %d, want %v", r, c, v, idx[c], want)
			}
		}
	}
}
