package graph

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/x448/float16"
)

// Attr is an attribute value. IsAttr only marks the kinds: the ones here, and the ones a writer
// adds for what it prints (graph/mlir's type, array, dictionary, unit and opaque attributes).
type Attr interface{ IsAttr() }

// DenseAttr is an inline dense<...> elements attribute: small constants such as axes, shapes,
// permutations and splat scalars. Data holds the elements little-endian, sub-byte types packed
// low bits first; a splat holds one element.
type DenseAttr struct {
	Type Type
	Data []byte
}

// ResourceAttr is dense_resource<key> : type, referring to a module blob (weights).
type ResourceAttr struct {
	Type Type
	Res  *Resource
}

// SymbolRefAttr is @name (a callee).
type SymbolRefAttr struct{ Name string }

// StringAttr is a string.
type StringAttr struct{ S string }

func (DenseAttr) IsAttr()     {}
func (ResourceAttr) IsAttr()  {}
func (SymbolRefAttr) IsAttr() {}
func (StringAttr) IsAttr()    {}

// Splat reports whether the attribute stores a single element for a bigger shape.
// Sub-byte tensors whose full data fits in one byte (up to 8 i1, 2 si4) are never splats.
func (d DenseAttr) Splat() bool {
	n := d.Type.NumElements()
	one := BytesFor(d.Type.DType, 1)
	return n != 1 && len(d.Data) == one && int64(BytesFor(d.Type.DType, int(n))) != int64(one)
}

// Len is the number of stored elements (1 for a splat).
func (d DenseAttr) Len() int {
	if d.Splat() {
		return 1
	}
	return int(d.Type.NumElements())
}

// Int returns stored element i as an integer (i is taken modulo a splat).
func (d DenseAttr) Int(i int) int64 {
	if d.Splat() {
		i = 0
	}
	return ElemInt(d.Type.DType, d.Data, i)
}

// Float returns stored element i as a float64.
func (d DenseAttr) Float(i int) float64 {
	if d.Splat() {
		i = 0
	}
	return elemFloat(d.Type.DType, d.Data, i)
}

// Ints returns all elements (expanded) as int64.
func (d DenseAttr) Ints() []int64 {
	n := int(d.Type.NumElements())
	out := make([]int64, n)
	for i := range out {
		out[i] = d.Int(i)
	}
	return out
}

// BytesFor is the storage size of n packed elements.
func BytesFor(dt DType, n int) int {
	return (n*dt.Bits() + 7) / 8
}

func ElemInt(dt DType, b []byte, i int) int64 {
	switch dt {
	case SI32:
		return int64(int32(binary.LittleEndian.Uint32(b[4*i:])))
	case UI32:
		return int64(binary.LittleEndian.Uint32(b[4*i:]))
	case SI16:
		return int64(int16(binary.LittleEndian.Uint16(b[2*i:])))
	case SI8:
		return int64(int8(b[i]))
	case UI8:
		return int64(b[i])
	case SI4:
		return int64(int8(nibble(b, i)<<4) >> 4)
	case UI4:
		return int64(nibble(b, i))
	case I1:
		return int64(b[i/8] >> (i % 8) & 1)
	case F32, F16, BF16:
		return int64(elemFloat(dt, b, i))
	}
	panic(fmt.Sprintf("graph: no integer view of %s", dt))
}

func elemFloat(dt DType, b []byte, i int) float64 {
	switch dt {
	case F32:
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])))
	case F16:
		return float64(float16.Frombits(binary.LittleEndian.Uint16(b[2*i:])).Float32())
	case BF16:
		return float64(BF16ToFloat32(binary.LittleEndian.Uint16(b[2*i:])))
	}
	return float64(ElemInt(dt, b, i))
}

// nibble is element i of a 4-bit packed buffer: low nibble first.
func nibble(b []byte, i int) byte {
	if i%2 == 0 {
		return b[i/2] & 0x0f
	}
	return b[i/2] >> 4
}

// DenseInts makes an integer dense attribute of type dt and shape (a splat when all equal and
// the shape has more than one element).
func DenseInts(dt DType, shape []int64, vals []int64) DenseAttr {
	t := Tensor(dt, shape...)
	n := int(t.NumElements())
	if len(vals) != n && len(vals) != 1 {
		panic(fmt.Sprintf("graph: %d values for %s", len(vals), t))
	}
	if len(vals) == n && n > 1 && allEqual(vals) && BytesFor(dt, n) > BytesFor(dt, 1) {
		vals = vals[:1]
	}
	if len(vals) == 1 && n > 1 && BytesFor(dt, n) == BytesFor(dt, 1) { // too small to be a splat
		vals = append(make([]int64, 0, n), vals[0])
		for len(vals) < n {
			vals = append(vals, vals[0])
		}
	}
	data := make([]byte, BytesFor(dt, len(vals)))
	for i, v := range vals {
		PutInt(dt, data, i, v)
	}
	return DenseAttr{Type: t, Data: data}
}

// DenseFloats makes a float dense attribute (values rounded to dt).
func DenseFloats(dt DType, shape []int64, vals []float64) DenseAttr {
	t := Tensor(dt, shape...)
	n := int(t.NumElements())
	if len(vals) != n && len(vals) != 1 {
		panic(fmt.Sprintf("graph: %d values for %s", len(vals), t))
	}
	if len(vals) == n && n > 1 {
		same := true
		for _, v := range vals[1:] {
			same = same && v == vals[0]
		}
		if same {
			vals = vals[:1]
		}
	}
	data := make([]byte, BytesFor(dt, len(vals)))
	for i, v := range vals {
		switch dt {
		case F32:
			binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(float32(v)))
		case F16:
			binary.LittleEndian.PutUint16(data[2*i:], float16.Fromfloat32(float32(v)).Bits())
		case BF16:
			binary.LittleEndian.PutUint16(data[2*i:], BF16FromFloat64(v))
		default:
			panic(fmt.Sprintf("graph: DenseFloats of %s", dt))
		}
	}
	return DenseAttr{Type: t, Data: data}
}

func allEqual(v []int64) bool {
	for _, x := range v[1:] {
		if x != v[0] {
			return false
		}
	}
	return true
}

func PutInt(dt DType, b []byte, i int, v int64) {
	switch dt {
	case SI32, UI32:
		binary.LittleEndian.PutUint32(b[4*i:], uint32(v))
	case SI16:
		binary.LittleEndian.PutUint16(b[2*i:], uint16(v))
	case SI8, UI8:
		b[i] = byte(v)
	case SI4, UI4:
		if i%2 == 0 {
			b[i/2] = b[i/2]&0xf0 | byte(v)&0x0f
		} else {
			b[i/2] = b[i/2]&0x0f | byte(v)<<4
		}
	case I1:
		if v != 0 {
			b[i/8] |= 1 << (i % 8)
		}
	case F32:
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(float32(v)))
	case F16:
		binary.LittleEndian.PutUint16(b[2*i:], float16.Fromfloat32(float32(v)).Bits())
	case BF16:
		binary.LittleEndian.PutUint16(b[2*i:], BF16FromFloat64(float64(v)))
	default:
		panic(fmt.Sprintf("graph: PutInt %s", dt))
	}
}

// DefaultAlign is the blob alignment qconv writes. Upstream mlir-opt copies a file into a
// 16-byte-aligned heap buffer, so larger alignments fail to load there (docs/bytecode.md#resources-and-alignment).
const DefaultAlign = 16

// Resource is a named weight blob in the bytecode's resource section. Its bytes are either in
// Data (in memory, or aliasing a mapped file) or produced on demand by Fill, so a writer can
// stream a large model without holding a second copy of every weight.
type Resource struct {
	Key   string
	Align uint64
	Size  int64
	Data  []byte
	Fill  func(dst []byte) error // writes exactly Size bytes
}

// Bytes returns the blob's bytes: Data, or a fresh buffer filled by Fill.
func (r *Resource) Bytes() ([]byte, error) {
	if r.Data != nil {
		if int64(len(r.Data)) != r.Size {
			return nil, fmt.Errorf("resource %s: %d bytes, declared %d", r.Key, len(r.Data), r.Size)
		}
		return r.Data, nil
	}
	if r.Fill == nil {
		return nil, fmt.Errorf("resource %s: no data", r.Key)
	}
	buf := make([]byte, r.Size)
	if err := r.Fill(buf); err != nil {
		return nil, fmt.Errorf("resource %s: %w", r.Key, err)
	}
	return buf, nil
}

// Materialize keeps the bytes in Data (runs Fill once).
func (r *Resource) Materialize() error {
	if r.Data != nil {
		return nil
	}
	b, err := r.Bytes()
	if err != nil {
		return err
	}
	r.Data = b
	return nil
}
