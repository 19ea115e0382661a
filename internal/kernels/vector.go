package kernels

import (
	"fmt"
	"unsafe"
)

// Dot returns Σ a[i]·b[i], accumulated in float32. It panics if the lengths
// differ.
func Dot(a, b []float32) float32 {
	if len(a) != len(b) {
		panic(fmt.Sprintf("kernels: Dot: len(a) = %d, len(b) = %d", len(a), len(b)))
	}
	if len(a) == 0 {
		return 0
	}
	if useAsm {
		return dotAVX(&a[0], &b[0], len(a))
	}
	return dotGo(a, b)
}

// Axpy computes y[i] += a·x[i]. It panics if the lengths differ.
func Axpy(y []float32, a float32, x []float32) {
	if len(y) != len(x) {
		panic(fmt.Sprintf("kernels: Axpy: len(y) = %d, len(x) = %d", len(y), len(x)))
	}
	if len(y) == 0 {
		return
	}
	if useAsm {
		axpyAVX(&y[0], a, &x[0], len(y))
		return
	}
	axpyGo(y, a, x)
}

// BF16ToF32 widens little-endian bfloat16 values in src to dst. It panics
// unless len(src) == 2*len(dst).
func BF16ToF32(dst []float32, src []byte) {
	if len(src) != 2*len(dst) {
		panic(fmt.Sprintf("kernels: BF16ToF32: len(src) = %d bytes, need 2×len(dst) = %d", len(src), 2*len(dst)))
	}
	if len(dst) == 0 {
		return
	}
	if useAsm {
		bf16ToF32AVX(&dst[0], unsafe.Pointer(&src[0]), len(dst))
		return
	}
	bf16ToF32Go(dst, src)
}

// F16ToF32 widens little-endian IEEE half values in src to dst, exactly
// (subnormals, infinities, NaN payloads with the quiet bit set). It panics
// unless len(src) == 2*len(dst).
func F16ToF32(dst []float32, src []byte) {
	if len(src) != 2*len(dst) {
		panic(fmt.Sprintf("kernels: F16ToF32: len(src) = %d bytes, need 2×len(dst) = %d", len(src), 2*len(dst)))
	}
	if len(dst) == 0 {
		return
	}
	if useAsm {
		f16ToF32AVX(&dst[0], unsafe.Pointer(&src[0]), len(dst))
		return
	}
	f16ToF32Go(dst, src)
}

// F32ToF16 narrows src to little-endian IEEE half values in dst, rounding to
// nearest even; values beyond the half range become ±Inf and NaNs stay NaN
// (quiet, payload truncated), as github.com/x448/float16.Fromfloat32 does. It
// panics unless len(dst) == 2*len(src).
func F32ToF16(dst []byte, src []float32) {
	if len(dst) != 2*len(src) {
		panic(fmt.Sprintf("kernels: F32ToF16: len(dst) = %d bytes, need 2×len(src) = %d", len(dst), 2*len(src)))
	}
	if len(src) == 0 {
		return
	}
	if useAsm {
		f32ToF16AVX(unsafe.Pointer(&dst[0]), &src[0], len(src))
		return
	}
	f32ToF16Go(dst, src)
}

// RoundF16 replaces each x[i] by float32(fp16(x[i])): the value an fp16
// tensor would hold, rounded to nearest even.
func RoundF16(x []float32) {
	if len(x) == 0 {
		return
	}
	if useAsm {
		roundF16AVX(&x[0], len(x))
		return
	}
	roundF16Go(x)
}
