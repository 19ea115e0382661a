package kernels

import (
	"fmt"
	"math"
	"math/bits"
	"unsafe"
)

// F32Matrix is a [R, C] matrix of little-endian float32 values, 4 bytes each.
type F32Matrix struct {
	Data []byte
	R, C int
}

// BF16Matrix is a [R, C] matrix of little-endian bfloat16 values (the top
// half of a float32), 2 bytes each.
type BF16Matrix struct {
	Data []byte
	R, C int
}

// F16Matrix is a [R, C] matrix of little-endian IEEE half values.
type F16Matrix struct {
	Data []byte
	R, C int
}

// Q8Matrix is a [R, C] matrix of int8 values q with fp16 block scales s:
// W[r,c] = q[r*C+c] · s[(r/BlockRows)*(C/BlockCols) + c/BlockCols].
// Blocks of 32 along the input axis are BlockRows = 1, BlockCols = 32;
// per-channel scales are BlockRows = 1, BlockCols = C; a per-tensor scale is
// BlockRows = R, BlockCols = C.
type Q8Matrix struct {
	Q, Scales                  []byte
	R, C, BlockRows, BlockCols int
}

// Q4Matrix is Q8Matrix with signed 4-bit values (-8..7) packed two per byte
// over the row-major index k = r*C+c: byte k/2, low nibble for even k.
type Q4Matrix struct {
	Q, Scales                  []byte
	R, C, BlockRows, BlockCols int
}

// LUTMatrix is a palettized [R, C] matrix: W[r,c] = LUT[r/GroupRows][Idx(k)]
// with k = r*C+c and LUT little-endian fp16 [R/GroupRows][1<<Bits]. With Bits
// 8 Idx holds one byte per element; with Bits 4 two unsigned nibbles per byte,
// packed like Q4Matrix. A per-tensor table is GroupRows = R.
type LUTMatrix struct {
	Idx, LUT              []byte
	Bits, R, C, GroupRows int
}

// shapeError checks a matrix shape and returns the element count.
func shapeError(kind string, rows, cols int) (int, error) {
	if rows <= 0 || cols <= 0 {
		return 0, fmt.Errorf("kernels: %s: shape [%d, %d]: rows and cols must be positive", kind, rows, cols)
	}
	hi, n := bits.Mul64(uint64(rows), uint64(cols))
	if hi != 0 || n > math.MaxInt/4 { // 4*n bytes must fit an int

		return 0, fmt.Errorf("kernels: %s: shape [%d, %d] is too large", kind, rows, cols)
	}
	return int(n), nil
}

func lenError(kind, field string, have, need int) error {
	if have != need {
		return fmt.Errorf("kernels: %s: %s has %d bytes, want %d", kind, field, have, need)
	}
	return nil
}

// NewF32Matrix checks that data holds rows×cols float32 values.
func NewF32Matrix(data []byte, rows, cols int) (F32Matrix, error) {
	n, err := shapeError("F32Matrix", rows, cols)
	if err == nil {
		err = lenError("F32Matrix", "data", len(data), 4*n)
	}
	if err != nil {
		return F32Matrix{}, err
	}
	return F32Matrix{Data: data, R: rows, C: cols}, nil
}

// NewBF16Matrix checks that data holds rows×cols bfloat16 values.
func NewBF16Matrix(data []byte, rows, cols int) (BF16Matrix, error) {
	n, err := shapeError("BF16Matrix", rows, cols)
	if err == nil {
		err = lenError("BF16Matrix", "data", len(data), 2*n)
	}
	if err != nil {
		return BF16Matrix{}, err
	}
	return BF16Matrix{Data: data, R: rows, C: cols}, nil
}

// NewF16Matrix checks that data holds rows×cols half values.
func NewF16Matrix(data []byte, rows, cols int) (F16Matrix, error) {
	n, err := shapeError("F16Matrix", rows, cols)
	if err == nil {
		err = lenError("F16Matrix", "data", len(data), 2*n)
	}
	if err != nil {
		return F16Matrix{}, err
	}
	return F16Matrix{Data: data, R: rows, C: cols}, nil
}

// blockError checks a block grid and returns the number of scales.
func blockError(kind string, rows, cols, blockRows, blockCols int) (int, error) {
	if blockRows <= 0 || blockCols <= 0 {
		return 0, fmt.Errorf("kernels: %s: block [%d, %d]: block sizes must be positive", kind, blockRows, blockCols)
	}
	if rows%blockRows != 0 || cols%blockCols != 0 {
		return 0, fmt.Errorf("kernels: %s: block [%d, %d] does not divide shape [%d, %d]", kind, blockRows, blockCols, rows, cols)
	}
	return (rows / blockRows) * (cols / blockCols), nil
}

// NewQ8Matrix checks that q holds rows×cols int8 values and scales one fp16
// scale per blockRows×blockCols block.
func NewQ8Matrix(q, scales []byte, rows, cols, blockRows, blockCols int) (Q8Matrix, error) {
	const kind = "Q8Matrix"
	n, err := shapeError(kind, rows, cols)
	if err != nil {
		return Q8Matrix{}, err
	}
	nScales, err := blockError(kind, rows, cols, blockRows, blockCols)
	if err == nil {
		err = lenError(kind, "q", len(q), n)
	}
	if err == nil {
		err = lenError(kind, "scales", len(scales), 2*nScales)
	}
	if err != nil {
		return Q8Matrix{}, err
	}
	return Q8Matrix{Q: q, Scales: scales, R: rows, C: cols, BlockRows: blockRows, BlockCols: blockCols}, nil
}

// NewQ4Matrix checks that q holds rows×cols packed nibbles (an odd count
// leaves the last high nibble unused) and scales one fp16 scale per block.
func NewQ4Matrix(q, scales []byte, rows, cols, blockRows, blockCols int) (Q4Matrix, error) {
	const kind = "Q4Matrix"
	n, err := shapeError(kind, rows, cols)
	if err != nil {
		return Q4Matrix{}, err
	}
	nScales, err := blockError(kind, rows, cols, blockRows, blockCols)
	if err == nil {
		err = lenError(kind, "q", len(q), (n+1)/2)
	}
	if err == nil {
		err = lenError(kind, "scales", len(scales), 2*nScales)
	}
	if err != nil {
		return Q4Matrix{}, err
	}
	return Q4Matrix{Q: q, Scales: scales, R: rows, C: cols, BlockRows: blockRows, BlockCols: blockCols}, nil
}

// NewLUTMatrix checks a palettized matrix: bits 4 or 8, groupRows dividing
// rows, idx holding rows×cols indices and lut one fp16 table of 1<<bits
// entries per group.
func NewLUTMatrix(idx, lut []byte, bits, rows, cols, groupRows int) (LUTMatrix, error) {
	const kind = "LUTMatrix"
	n, err := shapeError(kind, rows, cols)
	if err != nil {
		return LUTMatrix{}, err
	}
	var idxLen int
	switch bits {
	case 8:
		idxLen = n
	case 4:
		idxLen = (n + 1) / 2
	default:
		return LUTMatrix{}, fmt.Errorf("kernels: %s: bits = %d, want 4 or 8", kind, bits)
	}
	if groupRows <= 0 || rows%groupRows != 0 {
		return LUTMatrix{}, fmt.Errorf("kernels: %s: group of %d rows does not divide %d rows", kind, groupRows, rows)
	}
	err = lenError(kind, "idx", len(idx), idxLen)
	if err == nil {
		err = lenError(kind, "lut", len(lut), 2*(rows/groupRows)<<bits)
	}
	if err != nil {
		return LUTMatrix{}, err
	}
	return LUTMatrix{Idx: idx, LUT: lut, Bits: bits, R: rows, C: cols, GroupRows: groupRows}, nil
}

func ptr(b []byte) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(b)) }

// ---- F32

func (m F32Matrix) Rows() int { return m.R }
func (m F32Matrix) Cols() int { return m.C }

func (m F32Matrix) MulRows(dst, x []float32, n, r0, r1 int) {
	checkMulArgs("F32Matrix", m.R, m.C, dst, x, n, r0, r1)
	checkLen("F32Matrix", "Data", len(m.Data), 4*m.R*m.C)
	if r0 == r1 {
		return
	}
	if n > 1 {
		mulRowsDecoded(dst, x, n, m.R, m.C, r0, r1, m.row)
		return
	}
	w := m.Data[4*r0*m.C : 4*r1*m.C]
	if useAsm {
		gemvF32AVX(ptr(w), &x[0], &dst[r0], r1-r0, m.C)
		return
	}
	gemvF32Go(dst[r0:r1], w, x, m.C)
}

func (m F32Matrix) Row(r int, dst []float32) {
	checkRowArgs("F32Matrix", m.R, m.C, r, dst)
	checkLen("F32Matrix", "Data", len(m.Data), 4*m.R*m.C)
	m.row(r, dst[:m.C])
}

func (m F32Matrix) row(r int, dst []float32) {
	w := m.Data[4*r*m.C : 4*(r+1)*m.C]
	if useAsm { // little-endian: the bytes are the floats
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&dst[0])), len(w)), w)
		return
	}
	decodeF32Go(dst, w)
}

// ---- BF16

func (m BF16Matrix) Rows() int { return m.R }
func (m BF16Matrix) Cols() int { return m.C }

func (m BF16Matrix) MulRows(dst, x []float32, n, r0, r1 int) {
	checkMulArgs("BF16Matrix", m.R, m.C, dst, x, n, r0, r1)
	checkLen("BF16Matrix", "Data", len(m.Data), 2*m.R*m.C)
	if r0 == r1 {
		return
	}
	if n > 1 {
		mulRowsDecoded(dst, x, n, m.R, m.C, r0, r1, m.row)
		return
	}
	w := m.Data[2*r0*m.C : 2*r1*m.C]
	if useDotBlock && m.C%32 == 0 {
		gemvBF16AVX512(ptr(w), &x[0], &dst[r0], r1-r0, m.C)
		return
	}
	if useAsm {
		gemvBF16AVX(ptr(w), &x[0], &dst[r0], r1-r0, m.C)
		return
	}
	gemvBF16Go(dst[r0:r1], w, x, m.C)
}

func (m BF16Matrix) Row(r int, dst []float32) {
	checkRowArgs("BF16Matrix", m.R, m.C, r, dst)
	checkLen("BF16Matrix", "Data", len(m.Data), 2*m.R*m.C)
	m.row(r, dst[:m.C])
}

func (m BF16Matrix) row(r int, dst []float32) {
	BF16ToF32(dst, m.Data[2*r*m.C:2*(r+1)*m.C])
}

// ---- F16

func (m F16Matrix) Rows() int { return m.R }
func (m F16Matrix) Cols() int { return m.C }

func (m F16Matrix) MulRows(dst, x []float32, n, r0, r1 int) {
	checkMulArgs("F16Matrix", m.R, m.C, dst, x, n, r0, r1)
	checkLen("F16Matrix", "Data", len(m.Data), 2*m.R*m.C)
	if r0 == r1 {
		return
	}
	if n > 1 {
		mulRowsDecoded(dst, x, n, m.R, m.C, r0, r1, m.row)
		return
	}
	w := m.Data[2*r0*m.C : 2*r1*m.C]
	if useAsm {
		gemvF16AVX(ptr(w), &x[0], &dst[r0], r1-r0, m.C)
		return
	}
	gemvF16Go(dst[r0:r1], w, x, m.C)
}

func (m F16Matrix) Row(r int, dst []float32) {
	checkRowArgs("F16Matrix", m.R, m.C, r, dst)
	checkLen("F16Matrix", "Data", len(m.Data), 2*m.R*m.C)
	m.row(r, dst[:m.C])
}

func (m F16Matrix) row(r int, dst []float32) {
	F16ToF32(dst, m.Data[2*r*m.C:2*(r+1)*m.C])
}

// ---- Q8

func (m Q8Matrix) Rows() int { return m.R }
func (m Q8Matrix) Cols() int { return m.C }

// check panics on a matrix whose fields disagree (one not built by
// NewQ8Matrix): the kernels would otherwise read out of bounds.
func (m Q8Matrix) check() {
	if _, err := blockError("Q8Matrix", m.R, m.C, m.BlockRows, m.BlockCols); err != nil {
		panic(err.Error())
	}
	checkLen("Q8Matrix", "Q", len(m.Q), m.R*m.C)
	checkLen("Q8Matrix", "Scales", len(m.Scales), 2*(m.R/m.BlockRows)*(m.C/m.BlockCols))
}

func (m Q8Matrix) MulRows(dst, x []float32, n, r0, r1 int) {
	checkMulArgs("Q8Matrix", m.R, m.C, dst, x, n, r0, r1)
	m.check()
	if r0 == r1 {
		return
	}
	if n > 1 {
		mulRowsDecoded(dst, x, n, m.R, m.C, r0, r1, m.row)
		return
	}
	nb := m.C / m.BlockCols
	for r := r0; r < r1; {
		// Rows [r, end) read their scales starting at block row br, moving
		// scaleStride bytes per row.
		br := r / m.BlockRows
		end, scaleStride := r1, 2*nb
		if m.BlockRows > 1 {
			end, scaleStride = min(r1, (br+1)*m.BlockRows), 0
		}
		q := m.Q[r*m.C : end*m.C]
		scales := m.Scales[2*br*nb:]
		if useAsm {
			gemvQ8AVX(ptr(q), ptr(scales), &x[0], &dst[r], end-r, m.C, m.BlockCols, scaleStride)
		} else {
			gemvQ8Go(dst[r:end], q, scales, x, m.C, m.BlockCols, scaleStride)
		}
		r = end
	}
}

func (m Q8Matrix) Row(r int, dst []float32) {
	checkRowArgs("Q8Matrix", m.R, m.C, r, dst)
	m.check()
	m.row(r, dst[:m.C])
}

func (m Q8Matrix) row(r int, dst []float32) {
	nb := m.C / m.BlockCols
	q := m.Q[r*m.C : (r+1)*m.C]
	scales := m.Scales[2*(r/m.BlockRows)*nb : 2*(r/m.BlockRows+1)*nb]
	if useAsm {
		decodeQ8AVX(&dst[0], ptr(q), ptr(scales), m.C, m.BlockCols)
		return
	}
	decodeQ8Go(dst, q, scales, m.BlockCols)
}

// ---- Q4

func (m Q4Matrix) Rows() int { return m.R }
func (m Q4Matrix) Cols() int { return m.C }

func (m Q4Matrix) check() {
	if _, err := blockError("Q4Matrix", m.R, m.C, m.BlockRows, m.BlockCols); err != nil {
		panic(err.Error())
	}
	checkLen("Q4Matrix", "Q", len(m.Q), (m.R*m.C+1)/2)
	checkLen("Q4Matrix", "Scales", len(m.Scales), 2*(m.R/m.BlockRows)*(m.C/m.BlockCols))
}

// asmOK reports whether the assembly kernels apply: they take 32 nibbles
// (16 whole bytes) at a time, so rows and blocks must be multiples of 32.
func (m Q4Matrix) asmOK() bool { return useAsm && m.C%32 == 0 && m.BlockCols%32 == 0 }

func (m Q4Matrix) MulRows(dst, x []float32, n, r0, r1 int) {
	checkMulArgs("Q4Matrix", m.R, m.C, dst, x, n, r0, r1)
	m.check()
	if r0 == r1 {
		return
	}
	if n > 1 || !m.asmOK() {
		mulRowsDecoded(dst, x, n, m.R, m.C, r0, r1, m.row)
		return
	}
	nb := m.C / m.BlockCols
	for r := r0; r < r1; {
		br := r / m.BlockRows
		end, scaleStride := r1, 2*nb
		if m.BlockRows > 1 {
			end, scaleStride = min(r1, (br+1)*m.BlockRows), 0
		}
		q := m.Q[r*m.C/2 : end*m.C/2]
		gemvQ4AVX(ptr(q), ptr(m.Scales[2*br*nb:]), &x[0], &dst[r], end-r, m.C, m.BlockCols, scaleStride)
		r = end
	}
}

func (m Q4Matrix) Row(r int, dst []float32) {
	checkRowArgs("Q4Matrix", m.R, m.C, r, dst)
	m.check()
	m.row(r, dst[:m.C])
}

func (m Q4Matrix) row(r int, dst []float32) {
	nb := m.C / m.BlockCols
	scales := m.Scales[2*(r/m.BlockRows)*nb : 2*(r/m.BlockRows+1)*nb]
	if m.asmOK() {
		decodeQ4AVX(&dst[0], ptr(m.Q[r*m.C/2:(r+1)*m.C/2]), ptr(scales), m.C, m.BlockCols)
		return
	}
	decodeQ4Go(dst, m.Q, r*m.C, scales, m.BlockCols)
}

// ---- LUT

func (m LUTMatrix) Rows() int { return m.R }
func (m LUTMatrix) Cols() int { return m.C }

func (m LUTMatrix) check() {
	if m.Bits != 4 && m.Bits != 8 {
		panic(fmt.Sprintf("kernels: LUTMatrix: Bits = %d, want 4 or 8", m.Bits))
	}
	if m.R <= 0 || m.GroupRows <= 0 || m.R%m.GroupRows != 0 {
		panic(fmt.Sprintf("kernels: LUTMatrix: group of %d rows does not divide %d rows", m.GroupRows, m.R))
	}
	idxLen := m.R * m.C
	if m.Bits == 4 {
		idxLen = (idxLen + 1) / 2
	}
	checkLen("LUTMatrix", "Idx", len(m.Idx), idxLen)
	checkLen("LUTMatrix", "LUT", len(m.LUT), 2*(m.R/m.GroupRows)<<m.Bits)
}

// lut4AsmOK: like Q4Matrix.asmOK.
func (m LUTMatrix) lut4AsmOK() bool { return useAsm && m.C%32 == 0 }

func (m LUTMatrix) MulRows(dst, x []float32, n, r0, r1 int) {
	checkMulArgs("LUTMatrix", m.R, m.C, dst, x, n, r0, r1)
	m.check()
	if r0 == r1 {
		return
	}
	if n > 1 || m.Bits == 4 && !m.lut4AsmOK() {
		mulRowsDecoded(dst, x, n, m.R, m.C, r0, r1, m.row)
		return
	}
	var table [256]float32
	k := 1 << m.Bits
	if m.Bits == 8 && useAsm && useAVX512LUT8 && m.C >= 64 {
		m.mulRowsLUT8AVX512(dst, x, r0, r1, &table)
		return
	}
	for r := r0; r < r1; {
		g := r / m.GroupRows
		end := min(r1, (g+1)*m.GroupRows)
		F16ToF32(table[:k], m.LUT[2*g*k:2*(g+1)*k])
		if m.Bits == 4 {
			idx := m.Idx[r*m.C/2 : end*m.C/2]
			gemvLUT4AVX(ptr(idx), (*[16]float32)(table[:16]), &x[0], &dst[r], end-r, m.C)
		} else {
			idx := m.Idx[r*m.C : end*m.C]
			if useAsm {
				gemvLUT8AVX(ptr(idx), &table, &x[0], &dst[r], end-r, m.C)
			} else {
				gemvLUT8Go(dst[r:end], idx, &table, x, m.C)
			}
		}
		r = end
	}
}

// mulRowsLUT8AVX512 is the one-vector LUT8 product with gemvLUT8AVX512, group by group.
func (m LUTMatrix) mulRowsLUT8AVX512(dst, x []float32, r0, r1 int, table *[256]float32) {
	p := getScratch(m.C &^ 63)
	xp := *p
	lut8Permute(xp, x[:len(xp)])
	for r := r0; r < r1; {
		g := r / m.GroupRows
		end := min(r1, (g+1)*m.GroupRows)
		lut := m.LUT[512*g : 512*(g+1)]
		if m.C%64 != 0 { // the 1-63 column tail reads the float32 table
			F16ToF32(table[:], lut)
		}
		idx := m.Idx[r*m.C : end*m.C]
		gemvLUT8AVX512(ptr(idx), table, ptr(lut), &x[0], &xp[0], &dst[r], end-r, m.C)
		r = end
	}
	scratchPool.Put(p)
}

// lut8Permute sets xp to x in the column order gemvLUT8AVX512 widens its weights in: within
// every 64 columns the 8-column groups 1 and 2, and 5 and 6, swapped. len(xp) is a multiple
// of 64.
func lut8Permute(xp, x []float32) {
	for b := 0; b+64 <= len(xp); b += 64 {
		d, s := xp[b:b+64], x[b:b+64]
		copy(d[0:8], s[0:8])
		copy(d[8:16], s[16:24])
		copy(d[16:24], s[8:16])
		copy(d[24:40], s[24:40])
		copy(d[40:48], s[48:56])
		copy(d[48:56], s[40:48])
		copy(d[56:64], s[56:64])
	}
}

func (m LUTMatrix) Row(r int, dst []float32) {
	checkRowArgs("LUTMatrix", m.R, m.C, r, dst)
	m.check()
	m.row(r, dst[:m.C])
}

func (m LUTMatrix) row(r int, dst []float32) {
	var table [256]float32
	k := 1 << m.Bits
	g := r / m.GroupRows
	F16ToF32(table[:k], m.LUT[2*g*k:2*(g+1)*k])
	switch {
	case m.Bits == 8 && useAsm && useAVX512LUT8 && m.C >= 64:
		idx := m.Idx[r*m.C : (r+1)*m.C]
		c := m.C &^ 63
		decodeLUT8AVX512(&dst[0], ptr(idx), ptr(m.LUT[512*g:512*(g+1)]), c)
		if c < m.C {
			decodeLUT8AVX(&dst[c], ptr(idx[c:]), &table, m.C-c)
		}
	case m.Bits == 8 && useAsm:
		decodeLUT8AVX(&dst[0], ptr(m.Idx[r*m.C:(r+1)*m.C]), &table, m.C)
	case m.Bits == 8:
		decodeLUT8Go(dst, m.Idx[r*m.C:(r+1)*m.C], &table)
	case m.lut4AsmOK():
		decodeLUT4AVX(&dst[0], ptr(m.Idx[r*m.C/2:(r+1)*m.C/2]), (*[16]float32)(table[:16]), m.C)
	default:
		decodeLUT4Go(dst, m.Idx, r*m.C, (*[16]float32)(table[:16]))
	}
}
