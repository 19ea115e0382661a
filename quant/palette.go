package quant

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
)

// PaletteGroupRows is the default number of output rows sharing one LUT.
const PaletteGroupRows = 32

// Palette is a k-means LUT scheme.
type Palette struct {
	Bits      int // 8 (256 entries, a byte per index) or 4 (16 entries, packed nibbles)
	GroupRows int // output rows sharing one LUT (32); 0 means one LUT per tensor
}

func (p Palette) String() string {
	if p.GroupRows == 0 {
		return fmt.Sprintf("lut%d-pertensor", p.Bits)
	}
	return fmt.Sprintf("lut%d-g%d", p.Bits, p.GroupRows)
}

// Entries is the LUT size, 2^Bits.
func (p Palette) Entries() int { return 1 << p.Bits }

// Validate reports a spec qconv does not offer.
func (p Palette) Validate() error {
	if p.Bits != 8 && p.Bits != 4 {
		return fmt.Errorf("quant: %d-bit palettes are not supported (8 or 4)", p.Bits)
	}
	if p.GroupRows < 0 {
		return fmt.Errorf("quant: negative palette group size %d", p.GroupRows)
	}
	return nil
}

// Check reports why a [rows, cols] weight cannot take this spec ("" if it can):
// a row count that is not a multiple of the group size.
func (p Palette) Check(rows, cols int) string {
	if rows <= 0 || cols <= 0 {
		return fmt.Sprintf("empty weight [%d, %d]", rows, cols)
	}
	if p.GroupRows > 0 && rows%p.GroupRows != 0 {
		return fmt.Sprintf("output dimension %d is not a multiple of the palette group size %d", rows, p.GroupRows)
	}
	if p.GroupRows == 0 && int64(rows)*int64(cols) >= 1<<32 {
		return fmt.Sprintf("%d weights is too many for one palette (limit 2^32)", int64(rows)*int64(cols))
	}
	return ""
}

// Groups is the number of LUTs of a weight with rows output rows.
func (p Palette) Groups(rows int) int {
	if p.GroupRows == 0 {
		return 1
	}
	return rows / p.GroupRows
}

// LUTTensor is a weight palettized with a Palette spec.
type LUTTensor struct {
	Spec       Palette
	Rows, Cols int
	// Indices: 8-bit, one byte per weight, row-major; 4-bit, unsigned nibbles
	// over the flattened index (byte k/2, low nibble even k).
	Indices []byte
	// LUT: fp16 bit patterns, little-endian, [groups, entries], ascending per group.
	LUT     []byte
	Fits    []Fit   // per group
	Metrics Metrics // zero with Options.NoMetrics
	// Skipped is set, with the reason, when the shape does not take the spec.
	Skipped    bool
	SkipReason string
}

// DequantizeRow writes the dequantized row r (its LUT entries) to dst[:Cols].
func (t *LUTTensor) DequantizeRow(r int, dst []float32) {
	g := 0
	if t.Spec.GroupRows > 0 {
		g = r / t.Spec.GroupRows
	}
	k := t.Spec.Entries()
	for c := range dst[:t.Cols] {
		i := r*t.Cols + c
		var e int
		if t.Spec.Bits == 4 {
			e = int(t.Indices[i>>1] >> (4 * (i & 1)) & 0x0f)
		} else {
			e = int(t.Indices[i])
		}
		dst[c] = F16ToFloat32(binary.LittleEndian.Uint16(t.LUT[2*(g*k+e):]))
	}
}

type lutWorker struct {
	km  KMeans
	f32 []float32 // a group of rows, or one row
	idx []uint8
	lut []uint16
}

// QuantizeLUT palettizes src with spec on opt.Workers goroutines (one group per
// work unit). A shape that does not take the spec returns a tensor with Skipped
// set and a nil error; a bad weight returns a *WeightError with its row and
// column (column -1 for a group whose centroid overflows fp16).
func QuantizeLUT(src RowSource, spec Palette, opt Options) (*LUTTensor, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	rows, cols := src.Rows(), src.Cols()
	t := &LUTTensor{Spec: spec, Rows: rows, Cols: cols}
	if reason := spec.Check(rows, cols); reason != "" {
		t.Skipped, t.SkipReason = true, reason
		return t, nil
	}
	n := rows * cols
	if spec.Bits == 4 {
		t.Indices = make([]byte, (n+1)/2)
	} else {
		t.Indices = make([]byte, n)
	}
	k := spec.Entries()
	groups := spec.Groups(rows)
	t.LUT = make([]byte, 2*groups*k)
	t.Fits = make([]Fit, groups)
	var err error
	if spec.GroupRows > 0 {
		err = quantizeGroups(src, t, opt)
	} else {
		err = quantizeWholeLUT(src, t, opt)
	}
	if err != nil {
		return nil, err
	}
	return t, nil
}

func (t *LUTTensor) putLUT(g int, lut []uint16) {
	k := t.Spec.Entries()
	for i, h := range lut[:k] {
		binary.LittleEndian.PutUint16(t.LUT[2*(g*k+i):], h)
	}
}

func (t *LUTTensor) putIndices(k0 int, idx []uint8) {
	if t.Spec.Bits == 4 {
		PackUint4(t.Indices, k0, idx)
	} else {
		copy(t.Indices[k0:], idx)
	}
}

// locate turns a *WeightError whose Col is an index into a block of rows
// starting at r0 into a row and column.
func locate(err error, r0, cols int) error {
	var we *WeightError
	if !errors.As(err, &we) {
		return err
	}
	if we.Col < 0 {
		we.Row = r0
		return err
	}
	we.Row, we.Col = r0+we.Col/cols, we.Col%cols
	return err
}

func quantizeGroups(src RowSource, t *LUTTensor, opt Options) error {
	g, cols, k := t.Spec.GroupRows, t.Cols, t.Spec.Entries()
	groups := t.Spec.Groups(t.Rows)
	workers := min(opt.workers(), groups)
	ws := make([]lutWorker, workers)
	for i := range ws {
		ws[i] = lutWorker{f32: make([]float32, g*cols), idx: make([]uint8, g*cols), lut: make([]uint16, k)}
	}
	var parts []partial
	if !opt.NoMetrics {
		parts = make([]partial, groups)
	}
	err := runChunks(groups, workers, func(w, c int) error {
		wk := &ws[w]
		r0 := c * g
		for r := range g {
			if err := src.Row(r0+r, wk.f32[r*cols:(r+1)*cols]); err != nil {
				return fmt.Errorf("row %d: %w", r0+r, err)
			}
		}
		fit, err := wk.km.Palettize(wk.f32, t.Spec.Bits, wk.lut, wk.idx)
		if err != nil {
			return locate(err, r0, cols)
		}
		t.Fits[c] = fit
		t.putLUT(c, wk.lut)
		t.putIndices(r0*cols, wk.idx)
		if parts != nil {
			parts[c].addLUT(wk.f32, wk.idx, wk.km.lutF)
		}
		return nil
	})
	if err != nil {
		return err
	}
	t.Metrics = sumParts(parts)
	return nil
}

func sumParts(parts []partial) Metrics {
	if parts == nil {
		return Metrics{}
	}
	var s partial
	for i := range parts {
		s.merge(&parts[i])
	}
	return s.metrics()
}

// quantizeWholeLUT fits one LUT to the whole tensor: the histogram is counted
// per worker by bf16 pattern, else by fp16 pattern, else (fp32 values) all
// weights are gathered and sorted; then one fit, then a parallel index pass.
func quantizeWholeLUT(src RowSource, t *LUTTensor, opt Options) error {
	rows, cols, k := t.Rows, t.Cols, t.Spec.Entries()
	chunk := chunkRows(cols)
	nchunks := (rows + chunk - 1) / chunk
	workers := min(opt.workers(), nchunks)
	ws := make([]lutWorker, workers)
	for i := range ws {
		ws[i] = lutWorker{f32: make([]float32, cols), idx: make([]uint8, cols)}
		ws[i].km.table = make([]uint32, 1<<16)
	}
	rowsOf := func(c int) (int, int) { return c * chunk, min((c+1)*chunk, rows) }
	master := &ws[0].km
	for _, kind := range []int{histBF16, histF16} {
		var miss atomic.Bool // a value without this 16-bit form
		err := runChunks(nchunks, workers, func(w, c int) error {
			wk := &ws[w]
			r0, r1 := rowsOf(c)
			for r := r0; r < r1; r++ {
				if err := src.Row(r, wk.f32); err != nil {
					return fmt.Errorf("row %d: %w", r, err)
				}
				if absMaxBits(wk.f32) >= f32InfBits {
					return atRow(nonFinite(wk.f32, 0), r)
				}
				if miss.Load() {
					continue
				}
				if kind == histBF16 && !countBF16(wk.f32, wk.km.table) || kind == histF16 && !countF16(wk.f32, wk.km.table, nil) {
					miss.Store(true)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if !miss.Load() {
			master.kind = kind
			break
		}
		for i := range ws {
			clear(ws[i].km.table)
		}
	}
	if master.kind == histBF16 || master.kind == histF16 {
		for i := 1; i < len(ws); i++ {
			for p, c := range ws[i].km.table {
				if c != 0 {
					master.table[p] += c
					ws[i].km.table[p] = 0
				}
			}
		}
		master.fromTable()
	} else {
		master.kind = histSort
		all := make([]float32, rows*cols)
		err := runChunks(nchunks, workers, func(w, c int) error {
			r0, r1 := rowsOf(c)
			for r := r0; r < r1; r++ {
				if err := src.Row(r, all[r*cols:(r+1)*cols]); err != nil {
					return fmt.Errorf("row %d: %w", r, err)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		master.fromSorted(all)
	}
	if err := master.fitLUT(k); err != nil {
		return locate(err, 0, cols)
	}
	t.Fits[0] = master.fit
	t.putLUT(0, master.lut)
	var parts []partial
	if !opt.NoMetrics {
		parts = make([]partial, nchunks)
	}
	err := runChunks(nchunks, workers, func(w, c int) error {
		wk := &ws[w]
		r0, r1 := rowsOf(c)
		for r := r0; r < r1; r++ {
			if err := src.Row(r, wk.f32); err != nil {
				return fmt.Errorf("row %d: %w", r, err)
			}
			if master.kind == histSort {
				master.assignSorted(wk.f32, wk.idx)
			} else {
				master.assignPattern(wk.f32, wk.idx)
			}
			t.putIndices(r*cols, wk.idx)
			if parts != nil {
				parts[c].addLUT(wk.f32, wk.idx, master.lutF)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	t.Metrics = sumParts(parts)
	return nil
}

// countBF16 counts w by bf16 pattern if every value is a bf16 value.
func countBF16(w []float32, table []uint32) bool {
	for _, v := range w {
		b := math.Float32bits(v)
		if b&0xffff != 0 {
			return false
		}
		table[b>>16]++
	}
	return true
}
