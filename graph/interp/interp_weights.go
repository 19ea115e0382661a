package interp

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/x448/float16"

	"qconv/graph"
	"qconv/internal/kernels"
)

// Constants and fused weight products for the interpreter.

// constBytes returns the little-endian element bytes of a constant op's value (a splat dense
// value is expanded), with its type. Resource bytes are read once and may alias a mapping.
func (pl *planner) constBytes(op *graph.Op) ([]byte, graph.Type, error) {
	switch a := op.Attrs["value"].(type) {
	case graph.DenseAttr:
		n := a.Type.NumElements()
		if n < 0 {
			return nil, a.Type, fmt.Errorf("dense value of dynamic type %s", a.Type)
		}
		if !a.Splat() {
			if len(a.Data) != graph.BytesFor(a.Type.DType, int(n)) {
				return nil, a.Type, fmt.Errorf("dense value of %d bytes does not fit %s", len(a.Data), a.Type)
			}
			return a.Data, a.Type, nil
		}
		if a.Type.DType.Bits() < 8 {
			out := make([]byte, graph.BytesFor(a.Type.DType, int(n)))
			v := a.Int(0)
			for i := 0; i < int(n); i++ {
				graph.PutInt(a.Type.DType, out, i, v)
			}
			return out, a.Type, nil
		}
		out := make([]byte, 0, len(a.Data)*int(n))
		for range n {
			out = append(out, a.Data...)
		}
		return out, a.Type, nil
	case graph.ResourceAttr:
		if a.Res == nil {
			return nil, a.Type, fmt.Errorf("dense_resource without a blob")
		}
		b, ok := pl.resBytes[a.Res]
		if !ok {
			var err error
			if b, err = a.Res.Bytes(); err != nil {
				return nil, a.Type, err
			}
			pl.resBytes[a.Res] = b
		}
		n := a.Type.NumElements()
		if n < 0 || len(b) != graph.BytesFor(a.Type.DType, int(n)) {
			return nil, a.Type, fmt.Errorf("resource %s holds %d bytes, %s needs %d", a.Res.Key, len(b), a.Type, graph.BytesFor(a.Type.DType, int(max(n, 0))))
		}
		return b, a.Type, nil
	}
	return nil, graph.Type{}, fmt.Errorf("constant without a dense or dense_resource value")
}

// constArray decodes a constant op's value.
func (pl *planner) constArray(op *graph.Op) (*Array, error) {
	b, t, err := pl.constBytes(op)
	if err != nil {
		return nil, err
	}
	if t.Kind != graph.TensorKind || !t.DType.Valid() {
		return nil, fmt.Errorf("constant of type %s", t)
	}
	return decodeArray(t, b), nil
}

// decodeArray converts little-endian element bytes (sub-byte types packed low bits first, si4
// two's complement) of static type t.
func decodeArray(t graph.Type, b []byte) *Array {
	n := int(t.NumElements())
	a := &Array{DType: t.DType, Shape: append([]int64{}, t.Shape...)}
	switch t.DType {
	case graph.F32:
		a.F = make([]float32, n)
		for i := range a.F {
			a.F[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	case graph.F16:
		a.F = make([]float32, n)
		kernels.F16ToF32(a.F, b[:2*n])
	case graph.BF16:
		a.F = make([]float32, n)
		kernels.BF16ToF32(a.F, b[:2*n])
	default:
		a.I = make([]int64, n)
		for i := range a.I {
			a.I[i] = graph.ElemInt(t.DType, b, i)
		}
	}
	return a
}

// fusedWeight is a constant [rows, cols] weight as a matrix in its stored encoding.
type fusedWeight struct {
	m          kernels.Matrix
	rows, cols int
	dtype      graph.DType // the float dtype the graph gives the weight
}

// fuse recognises matmul(x, transpose(W, [1,0])) and gather_nd(W, idx[..., 1]) with a constant
// weight W and attaches its matrix to the step.
func (pl *planner) fuse(st *interpStep) error {
	op := st.op
	var w *graph.Value
	switch op.Name {
	case graph.OpMatmul:
		t := op.Operands[1]
		if t.Def == nil || t.Def.Name != graph.OpTranspose || t.Type.Rank() != 2 {
			return nil
		}
		perm, ok := graph.ConstInts(t.Def.Operands[1])
		if !ok || len(perm) != 2 || perm[0] != 1 || perm[1] != 0 {
			return nil
		}
		w = t.Def.Operands[0]
	case graph.OpGatherND:
		idx := op.Operands[1].Type
		if idx.Rank() < 1 || idx.Shape[idx.Rank()-1] != 1 || op.Operands[0].Type.Rank() != 2 {
			return nil
		}
		w = op.Operands[0]
	default:
		return nil
	}
	fw, err := pl.weight(w)
	if err != nil || fw == nil {
		return err
	}
	st.w = fw
	return nil
}

// weight returns the matrix of a constant [out, in] weight value, or nil when v is not one.
func (pl *planner) weight(v *graph.Value) (*fusedWeight, error) {
	if fw, ok := pl.weights[v]; ok {
		return fw, nil
	}
	fw, err := pl.matchWeight(v)
	if err != nil {
		return nil, err
	}
	pl.weights[v] = fw
	return fw, nil
}

func isConst(v *graph.Value) bool { return v != nil && v.Def != nil && v.Def.Name == graph.OpConstant }

func (pl *planner) matchWeight(v *graph.Value) (*fusedWeight, error) {
	if v.Def == nil || v.Type.Rank() != 2 || !v.Type.Static() || !v.Type.DType.IsFloat() {
		return nil, nil
	}
	rows, cols := int(v.Type.Shape[0]), int(v.Type.Shape[1])
	if rows == 0 || cols == 0 {
		return nil, nil
	}
	fw := &fusedWeight{rows: rows, cols: cols, dtype: v.Type.DType}
	op := v.Def
	var err error
	switch op.Name {
	case graph.OpConstant:
		b, t, e := pl.constBytes(op)
		if e != nil {
			return nil, e
		}
		switch t.DType {
		case graph.F16:
			fw.m, err = kernels.NewF16Matrix(b, rows, cols)
		case graph.F32:
			fw.m, err = kernels.NewF32Matrix(b, rows, cols)
		case graph.BF16:
			fw.m, err = kernels.NewBF16Matrix(b, rows, cols)
		}
	case graph.OpCast:
		// A widening f16 or bf16 -> f32 cast of a weight is exact.
		src := op.Operands[0]
		if (src.Type.DType != graph.F16 && src.Type.DType != graph.BF16) || v.Type.DType != graph.F32 {
			return nil, nil
		}
		inner, e := pl.weight(src)
		if e != nil || inner == nil {
			return nil, e
		}
		fw.m = inner.m
	case graph.OpBlockwise:
		fw.m, err = pl.blockwiseMatrix(op, rows, cols)
	case graph.OpLUTToDense:
		fw.m, err = pl.lutMatrix(op, rows, cols)
	}
	if err != nil {
		return nil, fmt.Errorf("weight %s: %w", v.Type, err)
	}
	if fw.m == nil {
		return nil, nil
	}
	if v.Type.DType == graph.BF16 && (op.Name == graph.OpBlockwise || op.Name == graph.OpLUTToDense) {
		fw.m = bf16Matrix{fw.m} // the dequantized weight is a bf16 tensor (bf16.go)
	}
	return fw, nil
}

// f16Bytes returns a float constant's elements as fp16 bytes when every one is exactly
// representable (so an f32 table or scale can use the fp16 kernels), else nil.
func f16Bytes(b []byte, t graph.Type) []byte {
	if t.DType == graph.F16 {
		return b
	}
	n := int(t.NumElements())
	out := make([]byte, 2*n)
	for i := 0; i < n; i++ {
		var f float32
		if t.DType == graph.BF16 {
			f = graph.BF16ToFloat32(binary.LittleEndian.Uint16(b[2*i:]))
		} else {
			f = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		h := float16.Fromfloat32(f)
		if h.Float32() != f {
			return nil
		}
		binary.LittleEndian.PutUint16(out[2*i:], h.Bits())
	}
	return out
}

func allZero(a *Array) bool {
	for _, x := range a.F {
		if x != 0 {
			return false
		}
	}
	for _, x := range a.I {
		if x != 0 {
			return false
		}
	}
	return true
}

// blockwiseMatrix builds the matrix of blockwise_shift_scale(data, scale, off1, off2) with
// constant operands: Q8Matrix/Q4Matrix when the offsets are zero and the scales fp16-exact,
// else a row-decoding matrix with the same formula.
func (pl *planner) blockwiseMatrix(op *graph.Op, rows, cols int) (kernels.Matrix, error) {
	for _, o := range op.Operands {
		if !isConst(o) || o.Type.Rank() != 2 {
			return nil, nil
		}
	}
	data, scale := op.Operands[0], op.Operands[1]
	if data.Type.DType != graph.SI8 && data.Type.DType != graph.SI4 {
		return nil, nil
	}
	sr, sc := int(scale.Type.Shape[0]), int(scale.Type.Shape[1])
	if sr <= 0 || sc <= 0 || rows%sr != 0 || cols%sc != 0 {
		return nil, fmt.Errorf("scale %s does not tile data %s", scale.Type, data.Type)
	}
	db, _, err := pl.constBytes(data.Def)
	if err != nil {
		return nil, err
	}
	sb, st, err := pl.constBytes(scale.Def)
	if err != nil {
		return nil, err
	}
	off1, err := pl.constArray(op.Operands[2].Def)
	if err != nil {
		return nil, err
	}
	off2, err := pl.constArray(op.Operands[3].Def)
	if err != nil {
		return nil, err
	}
	if h := f16Bytes(sb, st); h != nil && allZero(off1) && allZero(off2) {
		if data.Type.DType == graph.SI8 {
			return kernels.NewQ8Matrix(db, h, rows, cols, rows/sr, cols/sc)
		}
		return kernels.NewQ4Matrix(db, h, rows, cols, rows/sr, cols/sc)
	}
	scales := decodeArray(st, sb).F
	dt := data.Type.DType
	br, bc := rows/sr, cols/sc
	return &rowMatrix{r: rows, c: cols, row: func(r int, dst []float32) {
		for c := range dst[:cols] {
			s := (r/br)*sc + c/bc
			q := graph.ElemInt(dt, db, r*cols+c)
			dst[c] = float32(q-off1.I[s])*scales[s] + off2.F[s]
		}
	}}, nil
}

// lutMatrix builds the matrix of lut_to_dense(indices, lut [g0, g1, 2^n, 1], axis) with
// constant operands: LUTMatrix for fp16-exact tables grouped along rows only, else a
// row-decoding matrix.
func (pl *planner) lutMatrix(op *graph.Op, rows, cols int) (kernels.Matrix, error) {
	idx, lut := op.Operands[0], op.Operands[1]
	if !isConst(idx) || !isConst(lut) || idx.Type.Rank() != 2 || lut.Type.Rank() != 4 {
		return nil, nil
	}
	bits := idx.Type.DType.Bits()
	if (idx.Type.DType != graph.UI8 && idx.Type.DType != graph.UI4) || lut.Type.Shape[2] != 1<<bits || lut.Type.Shape[3] != 1 {
		return nil, nil
	}
	g0, g1 := int(lut.Type.Shape[0]), int(lut.Type.Shape[1])
	if g0 <= 0 || g1 <= 0 || rows%g0 != 0 || cols%g1 != 0 {
		return nil, fmt.Errorf("lut %s does not tile indices %s", lut.Type, idx.Type)
	}
	ib, _, err := pl.constBytes(idx.Def)
	if err != nil {
		return nil, err
	}
	lb, lt, err := pl.constBytes(lut.Def)
	if err != nil {
		return nil, err
	}
	if h := f16Bytes(lb, lt); h != nil && g1 == 1 {
		return kernels.NewLUTMatrix(ib, h, bits, rows, cols, rows/g0)
	}
	table := decodeArray(lt, lb).F
	dt, k := idx.Type.DType, 1<<bits
	gr, gc := rows/g0, cols/g1
	return &rowMatrix{r: rows, c: cols, row: func(r int, dst []float32) {
		for c := range dst[:cols] {
			g := (r/gr)*g1 + c/gc
			dst[c] = table[g*k+int(graph.ElemInt(dt, ib, r*cols+c))]
		}
	}}, nil
}

// rowMatrix is the general fallback kernels.Matrix: each row is decoded by a function and
// dotted with the vectors (used for f32 tables or scales that fp16 cannot hold exactly,
// nonzero offsets, and LUT groups along columns).
type rowMatrix struct {
	r, c int
	row  func(r int, dst []float32)
}

func (m *rowMatrix) Rows() int { return m.r }
func (m *rowMatrix) Cols() int { return m.c }

func (m *rowMatrix) Row(r int, dst []float32) { m.row(r, dst) }

func (m *rowMatrix) MulRows(dst, x []float32, n, r0, r1 int) {
	buf := make([]float32, m.c)
	for r := r0; r < r1; r++ {
		m.row(r, buf)
		for v := 0; v < n; v++ {
			dst[v*m.r+r] = kernels.Dot(buf, x[v*m.c:(v+1)*m.c])
		}
	}
}
