//go:build !amd64

package quant

var useAsm = false

func rowAbsmax32F32(row []float32, qmax float32, q []int8, scales []uint16) bool { return false }

func rowAbsmax32BF16(row []byte, qmax float32, q []int8, scales []uint16) bool { return false }

func metrics32F32AVX2(w *float32, q *int8, scales *uint16, nblocks int, out *[5]float64) {
	panic("unreachable")
}

func metrics32BF16AVX2(w *byte, q *int8, scales *uint16, nblocks int, out *[5]float64) {
	panic("unreachable")
}
