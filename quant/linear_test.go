package quant

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/x448/float16"
)

// refBlock is the goldens' rule written plainly, independent of the package:
// scale = fp16(max|w|/qmax), q = clamp(round_half_even(w/scale)), with the
// divisions in float32 and the rounding by math.RoundToEven. An fp16 scale of
// zero gives q = 0 (the all-zero block of the rule).
func refBlock(w []float32, qmax int) (uint16, []int8) {
	var m float32
	for _, v := range w {
		if a := float32(math.Abs(float64(v))); a > m {
			m = a
		}
	}
	s := float16.Fromfloat32(m / float32(qmax))
	sf := s.Float32()
	q := make([]int8, len(w))
	if sf == 0 {
		return s.Bits(), q
	}
	for i, v := range w {
		x := math.RoundToEven(float64(v / sf))
		q[i] = int8(math.Max(-float64(qmax), math.Min(float64(qmax), x)))
	}
	return s.Bits(), q
}

// withAsm runs f with the assembly kernels on and, separately, off.
func withAsm(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	saved := useAsm
	defer func() { useAsm = saved }()
	for _, on := range []bool{true, false} {
		if on && !saved {
			continue
		}
		useAsm = on
		name := "go"
		if on {
			name = "asm"
		}
		t.Run(name, f)
	}
}

func block32(vals ...float32) []float32 {
	w := make([]float32, 32)
	copy(w, vals)
	return w
}

func TestAbsmaxHandComputed(t *testing.T) {
	s127 := float32(0.00787353515625) // fp16(1/127) = 1032 * 2^-17, pattern 0x2008
	cases := []struct {
		name  string
		bits  int
		w     []float32
		scale uint16
		q     []int8 // leading values; the rest are 0
	}{
		{"int8 unit scale, ties both ways", 8,
			block32(127, 2.5, 3.5, -2.5, -3.5, 0.5, 1.5, -0.5, -1.5, 126.5, -127, 0.49999997, -126.5, 125.5),
			0x3c00, []int8{127, 2, 4, -2, -4, 0, 2, 0, -2, 126, -127, 0, -126, 126}},
		{"int8 scale fp16(1/127), exact ties", 8,
			block32(1, 2.5*s127, 3.5*s127, -2.5*s127, -3.5*s127, -1, 0.5),
			0x2008, []int8{127, 2, 4, -2, -4, -127, 64}},
		{"int4 unit scale, ties", 4,
			block32(7, 6.5, 5.5, -6.5, -5.5, 4.5, -7, 0.5, -0.5, 1.5),
			0x3c00, []int8{7, 6, 6, -6, -6, 4, -7, 0, 0, 2}},
		{"int4 negative max", 4,
			block32(-0.7, 0.35, 0.05, -0.15),
			0x2e66, []int8{-7, 4, 1, -2}}, // scale 0.0999755859375: 3.5009 -> 4, 0.5001 -> 1, -1.5004 -> -2
		{"all zero", 8, block32(), 0, nil},
		{"negative zeros", 4, block32(float32(math.Copysign(0, -1)), float32(math.Copysign(0, -1))), 0, nil},
		{"scale just below fp16 overflow", 8,
			block32(65519*127, -65504*127, 65504*63.5, 65504*64.5),
			0x7bff, []int8{127, -127, 64, 64}}, // 127.029 -> 127; 63.5 ties to 64, 64.5 ties to 64
		{"scale underflows to zero", 8,
			block32(127*0x1p-25, -127*0x1p-25), 0, nil}, // max/127 = 2^-25 ties to 0
		{"subnormal scale rounds up", 8,
			block32(127*0x1p-25*(1+0x1p-20), 0x1p-25), 0x0001, []int8{64, 0}}, // scale 2^-24; 0.5 ties to 0
		{"subnormal scale rounds down and saturates", 8,
			block32(127*1.4*0x1p-24, 50*0x1p-24, -170*0x1p-24), 0x0001, []int8{127, 50, -127}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			withAsm(t, func(t *testing.T) {
				l := Linear{Bits: tc.bits, Scheme: Absmax, Granularity: Block32}
				q := make([]int8, 32)
				sc := make([]uint16, 1)
				if err := l.QuantizeRow(tc.w, q, sc); err != nil {
					t.Fatal(err)
				}
				want := make([]int8, 32)
				copy(want, tc.q)
				if sc[0] != tc.scale || !slices.Equal(q, want) {
					t.Fatalf("scale %#04x q %v\nwant %#04x q %v", sc[0], q, tc.scale, want)
				}
				// The same through the bf16 entry point when the block is bf16-exact.
				raw, exact := toBF16(tc.w)
				if !exact {
					return
				}
				if err := l.QuantizeRowBF16(raw, q, sc); err != nil {
					t.Fatal(err)
				}
				if sc[0] != tc.scale || !slices.Equal(q, want) {
					t.Fatalf("bf16: scale %#04x q %v\nwant %#04x q %v", sc[0], q, tc.scale, want)
				}
			})
		})
	}
}

// toBF16 returns the little-endian bf16 bytes of w and whether w was exact.
func toBF16(w []float32) ([]byte, bool) {
	b := make([]byte, 2*len(w))
	exact := true
	for i, v := range w {
		u := math.Float32bits(v)
		exact = exact && u&0xffff == 0
		b[2*i], b[2*i+1] = byte(u>>16), byte(u>>24)
	}
	return b, exact
}

func TestAbsmaxOtherGranularities(t *testing.T) {
	// Block 8 and 16 are independent blocks; per-channel is one block per row.
	w := []float32{8, 1, 2, 3, 4, 5, 6, 7, 1, 0.5, 0.25, 0.125, 0, 0, 0, -1}
	for _, tc := range []struct {
		g      Granularity
		scales []uint16
		q      []int8
	}{
		{Block8, []uint16{0x2c08, 0x2008}, []int8{127, 16, 32, 48, 64, 79, 95, 111, 127, 64, 32, 16, 0, 0, 0, -127}},
		{Block16, []uint16{0x2c08}, []int8{127, 16, 32, 48, 64, 79, 95, 111, 16, 8, 4, 2, 0, 0, 0, -16}},
		{PerChannel, []uint16{0x2c08}, []int8{127, 16, 32, 48, 64, 79, 95, 111, 16, 8, 4, 2, 0, 0, 0, -16}},
	} {
		// fp16(8/127) = 1032*2^-14 (0x2c08): w/scale = 15.876*w, so 4 -> 63.504 -> 64, 5 -> 79.38 -> 79;
		// fp16(1/127) = 1032*2^-17 (0x2008): 0.5 -> 63.504 -> 64.
		l := Linear{Bits: 8, Scheme: Absmax, Granularity: tc.g}
		q := make([]int8, len(w))
		sc := make([]uint16, len(tc.scales))
		if err := l.QuantizeRow(w, q, sc); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(sc, tc.scales) || !slices.Equal(q, tc.q) {
			t.Errorf("%v: scales %#04x q %v\nwant %#04x q %v", tc.g, sc, q, tc.scales, tc.q)
		}
	}
}

func TestPerTensor(t *testing.T) {
	// max over the whole tensor is 4: scale fp16(4/7) = 0x3892 (0.5712890625).
	m := &Float32Matrix{R: 2, C: 3, Data: []float32{1, -4, 0.5, 2, 0.2857, -3}}
	lt, err := QuantizeLinear(m, Linear{Bits: 4, Scheme: Absmax, Granularity: PerTensor}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// 1/0.5713 = 1.75 -> 2; -7; 0.875 -> 1; 3.5009 -> 4; 0.50011 -> 1; -5.25 -> -5
	q := make([]int8, 6)
	UnpackInt4(q, lt.Data, 0)
	if lt.Scale(0) != 0x3892 || !slices.Equal(q, []int8{2, -7, 1, 4, 1, -5}) || len(lt.Scales) != 2 {
		t.Fatalf("scale %#04x q %v", lt.Scale(0), q)
	}
	// Packed over the flattened index: rows of 3 share byte 1.
	if !bytes.Equal(lt.Data, []byte{0x92, 0x41, 0xb1}) {
		t.Fatalf("packed %x", lt.Data)
	}
}

func TestQuantizeWithScaleAnyScale(t *testing.T) {
	// A scale far too small for the weights: quotients up to 2^30 clamp, not wrap.
	q := make([]int8, 5)
	QuantizeWithScale([]float32{1, -1, 0x1p-25, 3 * 0x1p-25, -0x1p-24}, 0x0001, 127, q) // scale 2^-24
	if !slices.Equal(q, []int8{127, -127, 0, 2, -1}) {
		t.Fatalf("q %v", q)
	}
	QuantizeWithScale([]float32{1e30, -2.5}, 0, 7, q[:2])
	if !slices.Equal(q[:2], []int8{0, 0}) {
		t.Fatalf("zero scale: q %v", q[:2])
	}
}

func TestInt4NibbleOrder(t *testing.T) {
	dst := make([]byte, 3)
	PackInt4(dst, 0, []int8{1, -1, 7, -7, 0, -8})
	if !bytes.Equal(dst, []byte{0xf1, 0x97, 0x80}) {
		t.Fatalf("packed %x, want f19780", dst)
	}
	// Odd start: index 1 is the high nibble of byte 0, the low nibble stays.
	dst = []byte{0x0a, 0xb0}
	PackInt4(dst, 1, []int8{-2, 3})
	if !bytes.Equal(dst, []byte{0xea, 0xb3}) {
		t.Fatalf("odd start packed %x, want eab3", dst)
	}
	q := make([]int8, 2)
	UnpackInt4(q, dst, 1)
	if !slices.Equal(q, []int8{-2, 3}) {
		t.Fatalf("unpacked %v", q)
	}
	idx := make([]uint8, 3)
	u := make([]byte, 2)
	PackUint4(u, 0, []uint8{15, 0, 9})
	UnpackUint4(idx, u, 0)
	if !bytes.Equal(u, []byte{0x0f, 0x09}) || !slices.Equal(idx, []uint8{15, 0, 9}) {
		t.Fatalf("uint4 %x %v", u, idx)
	}

	// Through the driver: block 32 int4, row 1 starts at byte 16.
	w := make([]float32, 64)
	w[0], w[1], w[32], w[33] = 7, -7, -7, 3
	lt, err := QuantizeLinear(&Float32Matrix{R: 2, C: 32, Data: w}, Linear{Bits: 4, Granularity: Block32}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if lt.Data[0] != 0x97 || lt.Data[16] != 0x39 || len(lt.Data) != 32 {
		t.Fatalf("bytes 0 and 16: %#02x %#02x", lt.Data[0], lt.Data[16])
	}
}

func TestWeightErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		spec     Linear
		v        float32
		row, col int
		reason   string
	}{
		{"NaN", Linear{Bits: 8, Granularity: Block32}, float32(math.NaN()), 2, 37, reasonNonFinite},
		{"Inf", Linear{Bits: 4, Granularity: Block16}, float32(math.Inf(-1)), 1, 5, reasonNonFinite},
		{"NaN per channel", Linear{Bits: 8, Granularity: PerChannel}, float32(math.NaN()), 3, 63, reasonNonFinite},
		{"NaN per tensor", Linear{Bits: 8, Granularity: PerTensor, Scheme: Clip}, float32(math.NaN()), 3, 0, reasonNonFinite},
		// max/qmax = 65536 rounds to an fp16 Inf (the values are bf16-exact).
		{"int8 scale overflow", Linear{Bits: 8, Granularity: Block32}, 65536 * 127, 2, 40, reasonScaleOverflow},
		{"int4 scale overflow", Linear{Bits: 4, Granularity: Block8, Scheme: Clip}, -65536 * 7, 0, 9, reasonScaleOverflow},
		{"per tensor overflow", Linear{Bits: 8, Granularity: PerTensor}, 1e7, 1, 3, reasonScaleOverflow},
	} {
		t.Run(tc.name, func(t *testing.T) {
			withAsm(t, func(t *testing.T) {
				w := make([]float32, 4*64)
				for i := range w {
					w[i] = float32(i%7) * 0.01
				}
				w[tc.row*64+tc.col] = tc.v
				bf, _ := toBF16(w)
				for _, src := range []RowSource{&Float32Matrix{R: 4, C: 64, Data: w}, &BF16Matrix{R: 4, C: 64, Data: bf}} {
					for _, workers := range []int{1, 2} {
						_, err := QuantizeLinear(src, tc.spec, Options{Workers: workers})
						var we *WeightError
						if !errors.As(err, &we) || we.Row != tc.row || we.Col != tc.col || we.Reason != tc.reason {
							t.Fatalf("%T workers %d: got %v, want row %d column %d: %s", src, workers, err, tc.row, tc.col, tc.reason)
						}
					}
				}
			})
		})
	}
	// The first bad row is reported whatever the worker count.
	w := make([]float32, 1000*32)
	for _, r := range []int{997, 10, 600} {
		w[r*32+3] = float32(math.NaN())
	}
	for _, workers := range []int{1, 2, 5} {
		_, err := QuantizeLinear(&Float32Matrix{R: 1000, C: 32, Data: w}, Linear{Bits: 8, Granularity: Block32}, Options{Workers: workers})
		var we *WeightError
		if !errors.As(err, &we) || we.Row != 10 || we.Col != 3 {
			t.Fatalf("workers %d: %v", workers, err)
		}
	}
}

func TestSkippedShapes(t *testing.T) {
	for _, tc := range []struct {
		g    Granularity
		cols int
	}{{Block32, 100}, {Block16, 100}, {Block8, 36}, {Block32, 16}} {
		spec := Linear{Bits: 8, Granularity: tc.g}
		lt, err := QuantizeLinear(&Float32Matrix{R: 4, C: tc.cols, Data: make([]float32, 4*tc.cols)}, spec, Options{})
		if err != nil || !lt.Skipped || lt.Data != nil || lt.SkipReason == "" || lt.SkipReason != spec.Check(4, tc.cols) {
			t.Fatalf("%v cols %d: skipped %v (%q), err %v", tc.g, tc.cols, lt.Skipped, lt.SkipReason, err)
		}
	}
	// Per-channel and per-tensor take any input dimension.
	for _, g := range []Granularity{PerChannel, PerTensor} {
		lt, err := QuantizeLinear(&Float32Matrix{R: 4, C: 100, Data: make([]float32, 400)}, Linear{Bits: 8, Granularity: g}, Options{})
		if err != nil || lt.Skipped {
			t.Fatalf("%v: %v %v", g, err, lt.SkipReason)
		}
	}
	lt, err := QuantizeLUT(&Float32Matrix{R: 8, C: 4, Data: make([]float32, 32)}, Palette{Bits: 8, GroupRows: 32}, Options{})
	if err != nil || !lt.Skipped || lt.SkipReason == "" || lt.Indices != nil {
		t.Fatalf("LUT on 8 rows: %+v %v", lt, err)
	}
	if err := (Linear{Bits: 3, Granularity: Block32}).Validate(); err == nil {
		t.Fatal("int3 accepted")
	}
	if _, err := QuantizeLinear(&Float32Matrix{R: 1, C: 32, Data: make([]float32, 32)}, Linear{Bits: 8, Granularity: 12}, Options{}); err == nil {
		t.Fatal("block 12 accepted")
	}
}

// randomRow fills a row with a mix the kernels must agree on: normal weights,
// outliers, zero blocks, tiny (subnormal-scale) blocks, exact ties and -0.
func randomRow(r *rand.Rand, w []float32) {
	for b := 0; b < len(w); b += 32 {
		blk := w[b : b+32]
		scale := float32(math.Exp2(r.Float64()*30 - 25))
		switch r.IntN(8) {
		case 0:
			clear(blk)
		case 1:
			scale = float32(math.Exp2(r.Float64()*8 - 31)) // max/127 near fp16's subnormal floor
		case 2:
			for i := range blk {
				blk[i] = float32(r.IntN(255)-127) + 0.5 // ties with a unit scale
			}
			blk[r.IntN(32)] = 127
			continue
		}
		for i := range blk {
			blk[i] = float32(r.NormFloat64()) * scale
		}
		if r.IntN(3) == 0 {
			blk[r.IntN(32)] *= 30 // outlier
		}
		if r.IntN(4) == 0 {
			blk[r.IntN(32)] = float32(math.Copysign(0, -1))
		}
	}
}

func TestAsmMatchesGo(t *testing.T) {
	if !useAsm {
		t.Skip("no AVX2/F16C: only the Go path exists")
	}
	defer func() { useAsm = true }()
	r := rand.New(rand.NewPCG(7, 8))
	w := make([]float32, 32*40)
	for trial := range 300 {
		randomRow(r, w)
		if trial%2 == 0 {
			for i := range w { // bf16-exact rows exercise the bf16 kernel too
				w[i] = math.Float32frombits(math.Float32bits(w[i]) &^ 0xffff)
			}
		}
		for _, bits := range []int{8, 4} {
			l := Linear{Bits: bits, Scheme: Absmax, Granularity: Block32}
			var qs [3][]int8
			var ss [3][]uint16
			for k := range qs {
				qs[k], ss[k] = make([]int8, len(w)), make([]uint16, len(w)/32)
			}
			useAsm = true
			if err := l.QuantizeRow(w, qs[0], ss[0]); err != nil {
				t.Fatal(err)
			}
			raw, exact := toBF16(w)
			if exact {
				if err := l.QuantizeRowBF16(raw, qs[2], ss[2]); err != nil {
					t.Fatal(err)
				}
			}
			useAsm = false
			if err := l.QuantizeRow(w, qs[1], ss[1]); err != nil {
				t.Fatal(err)
			}
			// Metric sums: the kernels' lane order reproduced by the Go loop.
			var sums [4][5]float64
			useAsm = true
			rowSumsLinear(w, qs[0], ss[0], 32, &sums[0])
			rowSumsLinearBF16(raw, qs[0], ss[0], 32, &sums[2])
			useAsm = false
			rowSumsLinear(w, qs[0], ss[0], 32, &sums[1])
			rowSumsLinearBF16(raw, qs[0], ss[0], 32, &sums[3])
			for k := range 5 {
				if math.Float64bits(sums[0][k]) != math.Float64bits(sums[1][k]) || math.Float64bits(sums[2][k]) != math.Float64bits(sums[3][k]) {
					t.Fatalf("trial %d int%d: metric sum %d: asm %v go %v; bf16 asm %v go %v", trial, bits, k, sums[0][k], sums[1][k], sums[2][k], sums[3][k])
				}
			}
			if exact && sums[0] != sums[2] {
				t.Fatalf("trial %d: f32 and bf16 sums differ on bf16-exact data", trial)
			}
			for b := range ss[0] {
				wantS, wantQ := refBlock(w[32*b:32*b+32], l.Qmax())
				for k := range 3 {
					if k == 2 && !exact {
						continue
					}
					if ss[k][b] != wantS || !slices.Equal(qs[k][32*b:32*b+32], wantQ) {
						t.Fatalf("trial %d int%d block %d path %d: scale %#04x q %v\nwant %#04x %v\nw %v",
							trial, bits, b, k, ss[k][b], qs[k][32*b:32*b+32], wantS, wantQ, w[32*b:32*b+32])
					}
				}
			}
		}
	}
}

// sqErrDeq is the block's squared error measured from dequantized values.
func sqErrDeq(w []float32, q []int8, scale uint16) float64 {
	s := float16.Frombits(scale).Float32()
	var e float64
	for i, v := range w {
		d := float64(v) - float64(float32(q[i])*s)
		e += d * d
	}
	return e
}

func TestClipNeverWorseThanAbsmax(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	better := 0
	total := 0
	for trial := range 4000 {
		n := []int{8, 16, 32, 96}[trial%4]
		w := make([]float32, n)
		scale := math.Exp2(r.Float64()*20 - 15)
		for i := range w {
			switch trial % 3 {
			case 0:
				w[i] = float32(r.NormFloat64() * scale)
			case 1:
				w[i] = float32((r.Float64()*2 - 1) * scale)
			default: // heavy tail
				w[i] = float32(r.NormFloat64() * r.ExpFloat64() * scale)
			}
		}
		for range r.IntN(3) {
			w[r.IntN(n)] *= float32(1 + r.Float64()*50)
		}
		for _, qmax := range []int{127, 7} {
			qa, qc := make([]int8, n), make([]int8, n)
			ha, err := QuantizeBlock(w, qmax, Absmax, qa, 0)
			if err != nil {
				t.Fatal(err)
			}
			hc, err := QuantizeBlock(w, qmax, Clip, qc, 0)
			if err != nil {
				t.Fatal(err)
			}
			ea, ec := sqErrDeq(w, qa, ha), sqErrDeq(w, qc, hc)
			if ec > ea {
				t.Fatalf("trial %d qmax %d: clip error %g > absmax %g", trial, qmax, ec, ea)
			}
			// Clip is the argmin over the documented grid (ties to the larger c).
			var m float32
			for _, v := range w {
				m = max(m, float32(math.Abs(float64(v))))
			}
			bestE, bestH := math.Inf(1), uint16(0)
			for i := 0; i <= 16; i++ {
				c := m * float32(32-i) / 32
				h := float16.Fromfloat32(c / float32(qmax))
				_, qref := refBlockScale(w, h, qmax)
				if e := sqErrDeq(w, qref, h.Bits()); e < bestE {
					bestE, bestH = e, h.Bits()
				}
			}
			if hc != bestH || ec != bestE {
				t.Fatalf("trial %d qmax %d: clip chose %#04x (err %g), grid argmin %#04x (err %g)", trial, qmax, hc, ec, bestH, bestE)
			}
			total++
			if ec < ea {
				better++
			}
		}
	}
	// Clip must actually clip where it pays: most int4 blocks with outliers do.
	if better < total/4 {
		t.Fatalf("clip beat absmax on only %d of %d blocks", better, total)
	}
	t.Logf("clip strictly better on %d of %d blocks", better, total)
}

// refBlockScale quantizes w with a given fp16 scale (zero scale: q = 0).
func refBlockScale(w []float32, h float16.Float16, qmax int) (float32, []int8) {
	sf := h.Float32()
	q := make([]int8, len(w))
	if sf == 0 {
		return 0, q
	}
	for i, v := range w {
		x := math.RoundToEven(float64(v / sf))
		q[i] = int8(math.Max(-float64(qmax), math.Min(float64(qmax), x)))
	}
	return sf, q
}

func TestClipSaturates(t *testing.T) {
	// 31 weights at 1 and one at 2.6, int4. Candidate c = 2.6*29/32 wins:
	// scale fp16(c/7) = 1379*2^-12 (0x3563); 1 -> q 3 (err 0.0100^2 each), the
	// outlier saturates at 7 (err 0.2433^2): 0.0623 in all, against 0.0878 for
	// c = 2.6*30/32, 0.1255 for c = 2.6*28/32 and 0.40 for absmax.
	w := make([]float32, 32)
	for i := range w {
		w[i] = 1
	}
	w[5] = 2.6
	q := make([]int8, 32)
	h, err := QuantizeBlock(w, 7, Clip, q, 0)
	if err != nil {
		t.Fatal(err)
	}
	if h != 0x3563 || q[5] != 7 || q[0] != 3 {
		t.Fatalf("scale %#04x q[5] %d q[0] %d", h, q[5], q[0])
	}
	if e := SquaredError(w, q, h); math.Abs(e-0.0623) > 5e-4 {
		t.Fatalf("squared error %g", e)
	}
}

func TestDeterministicAcrossWorkers(t *testing.T) {
	saved := chunkWeights
	chunkWeights = 4096 // 64-row chunks: many work units
	defer func() { chunkWeights = saved }()
	r := rand.New(rand.NewPCG(11, 12))
	rows, cols := 3000, 64
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(r.NormFloat64() * 0.05)
	}
	bf, _ := toBF16(w)
	for _, spec := range []Linear{
		{8, Absmax, Block32}, {4, Absmax, Block32}, {8, Clip, Block16}, {4, Clip, PerChannel},
		{8, Clip, PerTensor}, {4, Absmax, PerTensor}, {8, Absmax, Block8},
	} {
		for _, src := range []RowSource{&Float32Matrix{R: rows, C: cols, Data: w}, &BF16Matrix{R: rows, C: cols, Data: bf}} {
			var first *LinearTensor
			for _, workers := range []int{1, 2, 3, 8} {
				lt, err := QuantizeLinear(src, spec, Options{Workers: workers})
				if err != nil {
					t.Fatal(err)
				}
				if first == nil {
					first = lt
					continue
				}
				if !bytes.Equal(lt.Data, first.Data) || !bytes.Equal(lt.Scales, first.Scales) || lt.Metrics != first.Metrics {
					t.Fatalf("%v %T: %d workers differ from 1", spec, src, workers)
				}
			}
		}
	}
}

func TestMetrics(t *testing.T) {
	// Two weights, per tensor int8: max 2, scale fp16(2/127) = 0x2408 (0.0157470703125).
	// q = [64 (63.504), -127 (-127.008)].
	m := &Float32Matrix{R: 1, C: 2, Data: []float32{1, -2}}
	lt, err := QuantizeLinear(m, Linear{Bits: 8, Granularity: PerTensor}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := 0.0157470703125
	d0, d1 := 64*s, -127*s
	e0, e1 := 1-d0, -2-d1
	want := Metrics{
		N:         2,
		SNR:       10 * math.Log10(5/(e0*e0+e1*e1)),
		MaxAbsErr: math.Max(math.Abs(e0), math.Abs(e1)),
		Cosine:    (d0 - 2*d1) / math.Sqrt(5*(d0*d0+d1*d1)),
		MSE:       (e0*e0 + e1*e1) / 2,
	}
	got := lt.Metrics
	if got.N != 2 || math.Abs(got.SNR-want.SNR) > 1e-9 || got.MaxAbsErr != want.MaxAbsErr ||
		math.Abs(got.Cosine-want.Cosine) > 1e-15 || math.Abs(got.MSE-want.MSE) > 1e-18 {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	// Exact reproduction: infinite SNR, cosine 1.
	lt, err = QuantizeLinear(&Float32Matrix{R: 1, C: 8, Data: []float32{7, 0, -7, 1, 0, 0, 3, 0}}, Linear{Bits: 4, Granularity: Block8}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !math.IsInf(lt.Metrics.SNR, 1) || lt.Metrics.Cosine != 1 || lt.Metrics.MaxAbsErr != 0 {
		t.Fatalf("exact: %+v", lt.Metrics)
	}
}

func TestDequantizeRow(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	rows, cols := 5, 64
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(r.NormFloat64())
	}
	for _, spec := range []Linear{{8, Absmax, Block32}, {4, Clip, Block8}, {8, Absmax, PerChannel}, {4, Absmax, PerTensor}} {
		lt, err := QuantizeLinear(&Float32Matrix{R: rows, C: cols, Data: w}, spec, Options{})
		if err != nil {
			t.Fatal(err)
		}
		dst := make([]float32, cols)
		var ee float64
		for row := range rows {
			lt.DequantizeRow(row, dst)
			// Recompute with the row function and Dequantize.
			q := make([]int8, cols)
			bl := spec.blockLen(cols)
			sc := make([]uint16, cols/bl)
			if spec.Granularity == PerTensor {
				sc[0] = lt.Scale(0)
				QuantizeWithScale(w[row*cols:(row+1)*cols], sc[0], spec.Qmax(), q)
			} else if err := spec.QuantizeRow(w[row*cols:(row+1)*cols], q, sc); err != nil {
				t.Fatal(err)
			}
			want := make([]float32, cols)
			Dequantize(want, q, sc, bl)
			if !slices.Equal(dst, want) {
				t.Fatalf("%v row %d: %v\nwant %v", spec, row, dst[:8], want[:8])
			}
			for c, v := range dst {
				e := float64(w[row*cols+c]) - float64(v)
				ee += e * e
			}
		}
		if math.Abs(ee/float64(rows*cols)-lt.Metrics.MSE) > 1e-12*ee {
			t.Fatalf("%v: MSE %g, recomputed %g", spec, lt.Metrics.MSE, ee/float64(rows*cols))
		}
	}
}
