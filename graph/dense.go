package graph

import (
	"encoding/binary"
	"fmt"
)

// DenseElements returns the elements of a validated dense attribute as bit patterns, canonical
// as MLIR stores them: one element when all are equal (or there is only one), none for an empty
// shape, otherwise all of them.
func DenseElements(d DenseAttr) []uint64 {
	n := int(d.Type.NumElements())
	if n == 0 {
		return nil
	}
	count := n
	if d.Splat() {
		count = 1
	}
	elems := make([]uint64, count)
	for i := range elems {
		elems[i] = elemBits(d.Type.DType, d.Data, i)
	}
	for _, e := range elems[1:] {
		if e != elems[0] {
			return elems
		}
	}
	return elems[:1]
}

// elemBits is element i of packed little-endian data as a zero-extended bit pattern.
func elemBits(dt DType, b []byte, i int) uint64 {
	switch dt.Bits() {
	case 32:
		return uint64(binary.LittleEndian.Uint32(b[4*i:]))
	case 16:
		return uint64(binary.LittleEndian.Uint16(b[2*i:]))
	case 8:
		return uint64(b[i])
	case 4:
		return uint64(nibble(b, i))
	}
	return uint64(b[i/8] >> (i % 8) & 1)
}

// CheckType reports why t is not a well-formed type: a token with a dtype or shape, an unknown
// kind or dtype, a negative dimension other than Dyn.
func CheckType(t Type) error {
	switch t.Kind {
	case TokenKind:
		if t.DType != 0 || len(t.Shape) != 0 {
			return fmt.Errorf("token type with a dtype or shape")
		}
		return nil
	case TensorKind, HandleKind:
	default:
		return fmt.Errorf("unknown type kind %d", t.Kind)
	}
	if !t.DType.Valid() {
		return fmt.Errorf("type %s has an invalid dtype", t)
	}
	for _, d := range t.Shape {
		if d < 0 && d != Dyn {
			return fmt.Errorf("type %s has a negative dimension", t)
		}
	}
	return nil
}

// CheckDense reports why d cannot be an inline constant: not a static tensor type, too large,
// or holding neither all its elements nor one (a splat).
func CheckDense(d DenseAttr) error {
	if err := CheckType(d.Type); err != nil || d.Type.Kind != TensorKind || !d.Type.Static() {
		return fmt.Errorf("dense type %s is not a static tensor type", d.Type)
	}
	n := d.Type.NumElements()
	if n > 1<<31 {
		return fmt.Errorf("dense %s is too large for an inline constant", d.Type)
	}
	if len(d.Data) != BytesFor(d.Type.DType, int(n)) && !d.Splat() {
		return fmt.Errorf("dense %s holds %d bytes, want %d (or one element for a splat)", d.Type, len(d.Data), BytesFor(d.Type.DType, int(n)))
	}
	return nil
}
