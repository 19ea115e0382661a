package quant

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
)

// RowSource yields the rows of an [out, in] weight as float32 (the checkpoint
// reader converts bf16/fp16/fp32 storage). Row may be called concurrently.
type RowSource interface {
	Rows() int
	Cols() int
	Row(r int, dst []float32) error
}

// BF16RowSource is a RowSource whose rows are stored as bf16: the drivers read
// the bf16 bits directly where a kernel takes them, skipping the conversion.
type BF16RowSource interface {
	RowSource
	// BF16Row returns row r as 2*Cols() little-endian bf16 bytes, read-only
	// (typically a view of the mmapped file).
	BF16Row(r int) ([]byte, error)
}

// Float32Matrix is a RowSource over a row-major float32 slice.
type Float32Matrix struct {
	R, C int
	Data []float32
}

func (m *Float32Matrix) Rows() int { return m.R }
func (m *Float32Matrix) Cols() int { return m.C }
func (m *Float32Matrix) Row(r int, dst []float32) error {
	if r < 0 || r >= m.R || len(m.Data) < m.R*m.C {
		return fmt.Errorf("quant: row %d out of range of a [%d, %d] matrix with %d values", r, m.R, m.C, len(m.Data))
	}
	copy(dst[:m.C], m.Data[r*m.C:(r+1)*m.C])
	return nil
}

// BF16Matrix is a BF16RowSource over row-major little-endian bf16 bytes.
type BF16Matrix struct {
	R, C int
	Data []byte
}

func (m *BF16Matrix) Rows() int { return m.R }
func (m *BF16Matrix) Cols() int { return m.C }
func (m *BF16Matrix) BF16Row(r int) ([]byte, error) {
	if r < 0 || r >= m.R || len(m.Data) < 2*m.R*m.C {
		return nil, fmt.Errorf("quant: row %d out of range of a [%d, %d] bf16 matrix of %d bytes", r, m.R, m.C, len(m.Data))
	}
	return m.Data[2*r*m.C : 2*(r+1)*m.C], nil
}
func (m *BF16Matrix) Row(r int, dst []float32) error {
	b, err := m.BF16Row(r)
	if err != nil {
		return err
	}
	bf16ToF32(dst[:m.C], b)
	return nil
}

// Options control the drivers.
type Options struct {
	Workers   int  // goroutines; 0 means GOMAXPROCS
	NoMetrics bool // skip the error metrics (they cost about as much as quantizing)
}

func (o Options) workers() int {
	if o.Workers > 0 {
		return o.Workers
	}
	return runtime.GOMAXPROCS(0)
}

// chunkWeights is the approximate number of weights per work unit.
var chunkWeights = 1 << 16

// chunkRows is the fixed number of rows per work unit: about chunkWeights
// weights, even so that int4 chunks start on a byte boundary.
func chunkRows(cols int) int {
	r := max(2, (chunkWeights+cols-1)/cols)
	return (r + 1) &^ 1
}

// runChunks calls fn(worker, chunk) for every chunk in [0, n) on up to workers
// goroutines and returns the error of the lowest failing chunk, so the reported
// error does not depend on scheduling. Chunks above a failed one may be skipped.
func runChunks(n, workers int, fn func(worker, chunk int) error) error {
	workers = min(workers, n)
	if workers <= 1 {
		for c := range n {
			if err := fn(0, c); err != nil {
				return err
			}
		}
		return nil
	}
	var next atomic.Int64
	var failed atomic.Int64
	failed.Store(int64(n))
	errs := make([]error, n)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for {
				c := int(next.Add(1) - 1)
				if c >= n || int64(c) > failed.Load() {
					return
				}
				if err := fn(w, c); err != nil {
					errs[c] = err
					for f := failed.Load(); int64(c) < f && !failed.CompareAndSwap(f, int64(c)); f = failed.Load() {
					}
				}
			}
		})
	}
	wg.Wait()
	if f := failed.Load(); f < int64(n) {
		return errs[f]
	}
	return nil
}

// atRow sets the row of a *WeightError from a row function, or names the row.
func atRow(err error, r int) error {
	var we *WeightError
	if errors.As(err, &we) {
		we.Row = r
		return err
	}
	return fmt.Errorf("row %d: %w", r, err)
}

// LinearTensor is a weight quantized with a Linear spec.
type LinearTensor struct {
	Spec       Linear
	Rows, Cols int
	// Data: int8, one byte per weight, row-major; int4, packed nibbles over the
	// flattened index (see the package documentation).
	Data []byte
	// Scales: fp16 bit patterns, little-endian: [Rows, Cols/block] for blocks,
	// [Rows] per channel, [1] per tensor.
	Scales  []byte
	Metrics Metrics // zero with Options.NoMetrics
	// Skipped is set, with the reason, when the shape does not take the spec;
	// Data and Scales are then nil and the caller keeps the weight unquantized.
	Skipped    bool
	SkipReason string
}

// Scale returns the i-th fp16 scale pattern.
func (t *LinearTensor) Scale(i int) uint16 { return binary.LittleEndian.Uint16(t.Scales[2*i:]) }

// DequantizeRow writes the dequantized row r (q*scale) to dst[:Cols].
func (t *LinearTensor) DequantizeRow(r int, dst []float32) {
	cols := t.Cols
	bl := t.Spec.blockLen(cols)
	dst = dst[:cols]
	for c := range dst {
		k := r*cols + c
		var q int8
		if t.Spec.Bits == 4 {
			q = int8(t.Data[k>>1]>>(4*(k&1))<<4) >> 4
		} else {
			q = int8(t.Data[k])
		}
		si := 0
		switch t.Spec.Granularity {
		case PerChannel:
			si = r
		case PerTensor:
		default:
			si = k / bl
		}
		dst[c] = float32(q) * F16ToFloat32(t.Scale(si))
	}
}

type linearJob struct {
	spec        Linear
	src         RowSource
	bf          BF16RowSource // set when rows can be read as bf16 by the row functions
	rows, cols  int
	block, nb   int // weights per scale within a row, scales per row
	qmax        int
	t           *LinearTensor
	q8          []int8 // t.Data as int8 for int8 specs: rows are written in place
	tensorScale uint16
	chunk       int
	parts       []partial // per chunk, nil without metrics
}

type linWorker struct {
	f32 []float32
	q   []int8
	sc  []uint16
}

// QuantizeLinear quantizes every row of src with spec on opt.Workers goroutines.
// A shape that does not take the spec returns a tensor with Skipped set and a
// nil error. A bad weight returns a *WeightError with its row and column.
func QuantizeLinear(src RowSource, spec Linear, opt Options) (*LinearTensor, error) {
	t := new(LinearTensor)
	if err := QuantizeLinearInto(t, src, spec, opt); err != nil {
		return nil, err
	}
	return t, nil
}

// QuantizeLinearInto is QuantizeLinear writing into t, whose Data and Scales
// buffers are reused when large enough: converting tensor after tensor then
// allocates no output memory (fresh memory is slow to touch on first use).
func QuantizeLinearInto(t *LinearTensor, src RowSource, spec Linear, opt Options) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	rows, cols := src.Rows(), src.Cols()
	data, scales := t.Data, t.Scales
	*t = LinearTensor{Spec: spec, Rows: rows, Cols: cols}
	if reason := spec.Check(rows, cols); reason != "" {
		t.Skipped, t.SkipReason = true, reason
		return nil
	}
	n := rows * cols
	if spec.Bits == 4 {
		t.Data = grow(data, (n+1)/2)
		t.Data[len(t.Data)-1] = 0 // an odd count leaves the last high nibble 0
	} else {
		t.Data = grow(data, n)
	}
	t.Scales = grow(scales, 2*spec.ScaleCount(rows, cols))
	j := &linearJob{spec: spec, src: src, rows: rows, cols: cols, qmax: spec.Qmax(), t: t,
		block: spec.blockLen(cols), chunk: chunkRows(cols)}
	j.nb = cols / j.block
	if spec.Bits == 8 {
		j.q8 = unsafe.Slice((*int8)(unsafe.Pointer(unsafe.SliceData(t.Data))), n)
	}
	if bf, ok := src.(BF16RowSource); ok && spec.Granularity > 0 {
		j.bf = bf
	}
	nchunks := (rows + j.chunk - 1) / j.chunk
	if !opt.NoMetrics {
		j.parts = make([]partial, nchunks)
	}
	workers := min(opt.workers(), nchunks)
	ws := make([]linWorker, workers)
	for i := range ws {
		ws[i] = linWorker{f32: make([]float32, cols), q: make([]int8, cols), sc: make([]uint16, max(j.nb, 1))}
	}
	if spec.Granularity == PerTensor {
		h, err := j.perTensorScale(ws, nchunks)
		if err != nil {
			return err
		}
		j.tensorScale = h
		binary.LittleEndian.PutUint16(t.Scales, h)
	}
	err := runChunks(nchunks, workers, func(w, c int) error {
		var p *partial
		if j.parts != nil {
			p = &j.parts[c]
		}
		for r := c * j.chunk; r < min((c+1)*j.chunk, rows); r++ {
			if err := j.row(&ws[w], r, p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	t.Metrics = sumParts(j.parts)
	return nil
}

func (j *linearJob) row(w *linWorker, r int, p *partial) error {
	cols := j.cols
	q := w.q
	if j.q8 != nil {
		q = j.q8[r*cols : (r+1)*cols]
	}
	sc := w.sc
	if j.bf != nil {
		raw, err := j.bf.BF16Row(r)
		if err != nil {
			return fmt.Errorf("row %d: %w", r, err)
		}
		if len(raw) != 2*cols {
			return fmt.Errorf("row %d: bf16 row of %d bytes, want %d", r, len(raw), 2*cols)
		}
		if err := j.spec.QuantizeRowBF16(raw, q, sc); err != nil {
			return atRow(err, r)
		}
		if p != nil {
			p.addLinearBF16(raw, q, sc, j.block)
		}
	} else {
		if err := j.src.Row(r, w.f32); err != nil {
			return fmt.Errorf("row %d: %w", r, err)
		}
		if j.spec.Granularity == PerTensor {
			// Finite and in range: checked by the per-tensor pass.
			QuantizeWithScale(w.f32, j.tensorScale, j.qmax, q)
			sc[0] = j.tensorScale
		} else if err := j.spec.QuantizeRow(w.f32, q, sc); err != nil {
			return atRow(err, r)
		}
		if p != nil {
			p.addLinear(w.f32, q, sc, j.block)
		}
	}
	if j.spec.Bits == 4 {
		PackInt4(j.t.Data, r*cols, q)
	}
	if j.spec.Granularity != PerTensor {
		out := j.t.Scales[2*r*j.nb : 2*(r+1)*j.nb]
		for i, h := range sc[:j.nb] {
			binary.LittleEndian.PutUint16(out[2*i:], h)
		}
	}
	return nil
}

// perTensorScale reads the tensor once for max|w| (and, for Clip, once more
// for every candidate's squared error) and returns the tensor's scale.
func (j *linearJob) perTensorScale(ws []linWorker, nchunks int) (uint16, error) {
	maxes := make([]uint32, nchunks)
	err := runChunks(nchunks, len(ws), func(w, c int) error {
		row := ws[w].f32
		for r := c * j.chunk; r < min((c+1)*j.chunk, j.rows); r++ {
			if err := j.src.Row(r, row); err != nil {
				return fmt.Errorf("row %d: %w", r, err)
			}
			m := absMaxBits(row)
			if m >= f32InfBits {
				return atRow(nonFinite(row, 0), r)
			}
			maxes[c] = max(maxes[c], m)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	var mb uint32
	for _, m := range maxes {
		mb = max(mb, m)
	}
	m := math.Float32frombits(mb)
	h0, ok := ScaleFor(m, j.qmax)
	if !ok {
		return 0, j.locateOverflow(mb)
	}
	if j.spec.Scheme == Absmax {
		return h0, nil
	}
	// Clip: distinct candidate scales, then their tensor-wide squared errors,
	// summed per row in index order, rows in chunk order, chunks in order.
	cands := make([]uint16, 0, clipCount)
	for i := range clipCount {
		h := h0
		if i > 0 {
			h, _ = ScaleFor(ClipCandidate(m, i), j.qmax)
		}
		if len(cands) == 0 || cands[len(cands)-1] != h {
			cands = append(cands, h)
		}
	}
	errSums := make([]float64, nchunks*len(cands))
	err = runChunks(nchunks, len(ws), func(w, c int) error {
		row := ws[w].f32
		sums := errSums[c*len(cands) : (c+1)*len(cands)]
		for r := c * j.chunk; r < min((c+1)*j.chunk, j.rows); r++ {
			if err := j.src.Row(r, row); err != nil {
				return fmt.Errorf("row %d: %w", r, err)
			}
			for i, h := range cands {
				sums[i] += clipError(row, divisor(h), F16ToFloat32(h), int32(j.qmax))
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	best, bestErr := h0, math.Inf(1)
	for i, h := range cands {
		var e float64
		for c := range nchunks {
			e += errSums[c*len(cands)+i]
		}
		if e < bestErr {
			best, bestErr = h, e
		}
	}
	return best, nil
}

// locateOverflow names the first weight whose magnitude pattern is mb.
func (j *linearJob) locateOverflow(mb uint32) error {
	row := make([]float32, j.cols)
	for r := range j.rows {
		if err := j.src.Row(r, row); err != nil {
			return fmt.Errorf("row %d: %w", r, err)
		}
		if absMaxBits(row) == mb {
			return atRow(overflow(row, 0, mb), r)
		}
	}
	return &WeightError{Value: math.Float32frombits(mb), Reason: reasonScaleOverflow}
}
