//go:build !amd64

package quant

const useAsm = false

func rowAbsmax32F32(row []float32, qmax float32, q []int8, scales []uint16) bool { return false }

func rowAbsmax32BF16(row []byte, qmax float32, q []int8, scales []uint16) bool { return false }
