//go:build !amd64 || purego

package kernels

import "unsafe"

// useAsm is false without the amd64 assembly; it stays a variable so the
// tests that toggle it compile everywhere.
var useAsm = false

// Stand-ins for the amd64 assembly kernels; useAsm keeps them unreachable.

func noAsm() { panic("kernels: assembly kernel called without assembly support") }

func dotAVX(a, b *float32, n int) float32 { noAsm(); return 0 }

func axpyAVX(y *float32, a float32, x *float32, n int)     { noAsm() }
func bf16ToF32AVX(dst *float32, src unsafe.Pointer, n int) { noAsm() }
func f16ToF32AVX(dst *float32, src unsafe.Pointer, n int)  { noAsm() }
func f32ToF16AVX(dst unsafe.Pointer, src *float32, n int)  { noAsm() }
func roundF16AVX(x *float32, n int)                        { noAsm() }

func dot4AVX(w, x *float32, xstride, cols int, out *[4]float32)     { noAsm() }
func gemvF32AVX(w unsafe.Pointer, x, dst *float32, rows, cols int)  { noAsm() }
func gemvBF16AVX(w unsafe.Pointer, x, dst *float32, rows, cols int) { noAsm() }
func gemvF16AVX(w unsafe.Pointer, x, dst *float32, rows, cols int)  { noAsm() }

func gemvQ8AVX(q, scales unsafe.Pointer, x, dst *float32, rows, cols, blockCols, scaleStride int) {
	noAsm()
}

func gemvQ4AVX(q, scales unsafe.Pointer, x, dst *float32, rows, cols, blockCols, scaleStride int) {
	noAsm()
}

func gemvLUT8AVX(idx unsafe.Pointer, lut *[256]float32, x, dst *float32, rows, cols int) { noAsm() }
func gemvLUT4AVX(idx unsafe.Pointer, lut *[16]float32, x, dst *float32, rows, cols int)  { noAsm() }

func decodeQ8AVX(dst *float32, q, scales unsafe.Pointer, cols, blockCols int)     { noAsm() }
func decodeQ4AVX(dst *float32, q, scales unsafe.Pointer, cols, blockCols int)     { noAsm() }
func decodeLUT8AVX(dst *float32, idx unsafe.Pointer, lut *[256]float32, cols int) { noAsm() }
func decodeLUT4AVX(dst *float32, idx unsafe.Pointer, lut *[16]float32, cols int)  { noAsm() }

func dot2x4AVX(w, x *float32, wstride, xstride, cols int, out *[8]float32) { noAsm() }

func readSumAVX(p unsafe.Pointer, n int) uint64 { noAsm(); return 0 }

var useAVX512LUT8 = false

func gemvLUT8AVX512(idx unsafe.Pointer, lut *[256]float32, lut16 unsafe.Pointer, x, xp, dst *float32, rows, cols int) {
	noAsm()
}

func transpose8AVX(dst, src *float32, srcStride, dstStride, rowGroups, colGroups int) { noAsm() }
func f16acc64AVX(acc, t, x *float32, k, stride int)                                   { noAsm() }

var useAVX512F16Acc = false

func f16acc128AVX512(acc, t, x *float32, k int) { noAsm() }

func decodeLUT8AVX512(dst *float32, idx, lut16 unsafe.Pointer, cols int) { noAsm() }

var useDotBlock = false

func dot4x2AVX512(w *float32, wstride int, x0, x1 *float32, cols int, out *[8]float32) { noAsm() }

func addVVAVX(dst, a, b *float32, n int)         { noAsm() }
func subVVAVX(dst, a, b *float32, n int)         { noAsm() }
func mulVVAVX(dst, a, b *float32, n int)         { noAsm() }
func divVVAVX(dst, a, b *float32, n int)         { noAsm() }
func addVSAVX(dst, a *float32, n int, y float32) { noAsm() }
func subVSAVX(dst, a *float32, n int, y float32) { noAsm() }
func mulVSAVX(dst, a *float32, n int, y float32) { noAsm() }
func divVSAVX(dst, a *float32, n int, y float32) { noAsm() }
func addSVAVX(dst, b *float32, n int, x float32) { noAsm() }
func subSVAVX(dst, b *float32, n int, x float32) { noAsm() }
func mulSVAVX(dst, b *float32, n int, x float32) { noAsm() }
func divSVAVX(dst, b *float32, n int, x float32) { noAsm() }
func accF64AVX(acc *float64, x *float32, n int)  { noAsm() }

func gemvBF16AVX512(w unsafe.Pointer, x, dst *float32, rows, cols int) { noAsm() }
