//go:build amd64

package quant

import "golang.org/x/sys/cpu"

// useAsm selects the AVX2+F16C block-32 absmax kernels; tests switch it off to
// exercise the pure-Go path.
var useAsm = cpu.X86.HasAVX2 && cpu.X86.HasF16C

// The kernels quantize nblocks consecutive blocks of 32 (absmax rule) and return
// the largest fp16 scale pattern written: a value >= 0x7c00 means a NaN/Inf
// weight or an overflowing scale, and the caller redoes the row in Go to name it.

//go:noescape
func absmax32F32AVX2(src *float32, nblocks int, qmax float32, q *int8, scales *uint16) (maxScale uint16)

//go:noescape
func absmax32BF16AVX2(src *byte, nblocks int, qmax float32, q *int8, scales *uint16) (maxScale uint16)

// The metric kernels compute a block-32 row's sums (ww, ee, dd, wd, max|e|)
// in the lane order of lanes8.

//go:noescape
func metrics32F32AVX2(w *float32, q *int8, scales *uint16, nblocks int, out *[5]float64)

//go:noescape
func metrics32BF16AVX2(w *byte, q *int8, scales *uint16, nblocks int, out *[5]float64)

func rowAbsmax32F32(row []float32, qmax float32, q []int8, scales []uint16) bool {
	nb := len(row) / 32
	if nb == 0 {
		return true
	}
	_, _ = q[nb*32-1], scales[nb-1]
	return absmax32F32AVX2(&row[0], nb, qmax, &q[0], &scales[0]) < f16InfBits
}

func rowAbsmax32BF16(row []byte, qmax float32, q []int8, scales []uint16) bool {
	nb := len(row) / 64
	if nb == 0 {
		return true
	}
	_, _ = q[nb*32-1], scales[nb-1]
	return absmax32BF16AVX2(&row[0], nb, qmax, &q[0], &scales[0]) < f16InfBits
}
