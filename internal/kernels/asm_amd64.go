//go:build amd64 && !purego

package kernels

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// useAsm selects the AVX2/FMA/F16C assembly kernels. Tests clear it to run
// the plain-Go kernels on the same inputs.
var useAsm = cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasF16C

// Assembly kernels (kernels_amd64.s). Pointers are to the first element;
// callers check lengths. Byte pointers need no alignment.

//go:noescape
func dotAVX(a, b *float32, n int) float32

//go:noescape
func axpyAVX(y *float32, a float32, x *float32, n int)

//go:noescape
func bf16ToF32AVX(dst *float32, src unsafe.Pointer, n int)

//go:noescape
func f16ToF32AVX(dst *float32, src unsafe.Pointer, n int)

//go:noescape
func f32ToF16AVX(dst unsafe.Pointer, src *float32, n int)

//go:noescape
func roundF16AVX(x *float32, n int)

// dot4AVX sets out[v] = Σ_c w[c]·x[v*xstride/4 + c] for v < 4; xstride is
// in bytes.
//
//go:noescape
func dot4AVX(w, x *float32, xstride, cols int, out *[4]float32)

// gemv*AVX set dst[r] = W[r,:]·x for the rows rows stored contiguously at w.

//go:noescape
func gemvF32AVX(w unsafe.Pointer, x, dst *float32, rows, cols int)

//go:noescape
func gemvBF16AVX(w unsafe.Pointer, x, dst *float32, rows, cols int)

//go:noescape
func gemvF16AVX(w unsafe.Pointer, x, dst *float32, rows, cols int)

// gemvQ8AVX: row r's fp16 block scales start at scales + r*scaleStride bytes.
//
//go:noescape
func gemvQ8AVX(q, scales unsafe.Pointer, x, dst *float32, rows, cols, blockCols, scaleStride int)

// gemvQ4AVX: like gemvQ8AVX; cols and blockCols are multiples of 32.
//
//go:noescape
func gemvQ4AVX(q, scales unsafe.Pointer, x, dst *float32, rows, cols, blockCols, scaleStride int)

//go:noescape
func gemvLUT8AVX(idx unsafe.Pointer, lut *[256]float32, x, dst *float32, rows, cols int)

// gemvLUT4AVX: cols is a multiple of 32.
//
//go:noescape
func gemvLUT4AVX(idx unsafe.Pointer, lut *[16]float32, x, dst *float32, rows, cols int)

// decode*AVX dequantize one row of cols values into dst.

//go:noescape
func decodeQ8AVX(dst *float32, q, scales unsafe.Pointer, cols, blockCols int)

// decodeQ4AVX: cols and blockCols are multiples of 32.
//
//go:noescape
func decodeQ4AVX(dst *float32, q, scales unsafe.Pointer, cols, blockCols int)

//go:noescape
func decodeLUT8AVX(dst *float32, idx unsafe.Pointer, lut *[256]float32, cols int)

// decodeLUT4AVX: cols is a multiple of 32.
//
//go:noescape
func decodeLUT4AVX(dst *float32, idx unsafe.Pointer, lut *[16]float32, cols int)

// dot2x4AVX sets out[4*r+v] = Σ_c w[r][c]·x[v][c] for the rows r < 2 at w
// + r*wstride bytes and the vectors v < 4 at x + v*xstride bytes.
//
//go:noescape
func dot2x4AVX(w, x *float32, wstride, xstride, cols int, out *[8]float32)

// readSumAVX adds the uint64s of n bytes at p, n a multiple of 128: the
// streaming-read baseline of the benchmarks, the fastest plain read we have.
//
//go:noescape
func readSumAVX(p unsafe.Pointer, n int) uint64

// useAVX512LUT8 selects gemvLUT8AVX512 for one-vector LUT8 products: AVX-512 with the
// VBMI byte permutes (Zen 4 and later, Ice Lake and later).
var useAVX512LUT8 = useAsm && cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VBMI

// gemvLUT8AVX512 is gemvLUT8AVX, bit for bit, looking the fp16 table lut16 up with byte
// permutes; lut is the same table as float32 (read only when cols is not a multiple of 64) and
// xp is x permuted by lut8Permute.
//
//go:noescape
func gemvLUT8AVX512(idx unsafe.Pointer, lut *[256]float32, lut16 unsafe.Pointer, x, xp, dst *float32, rows, cols int)

// transpose8AVX transposes rowGroups×colGroups blocks of 8×8 float32 from src (rows srcStride
// bytes apart) to dst (rows dstStride bytes apart); f16acc_amd64.s.
//
//go:noescape
func transpose8AVX(dst, src *float32, srcStride, dstStride, rowGroups, colGroups int)

// f16acc64AVX runs k >= 1 steps of 64 fp16-accumulated sums whose terms are stride bytes
// apart (f16AccSteps).
//
//go:noescape
func f16acc64AVX(acc, t, x *float32, k, stride int)

// useAVX512F16Acc selects f16acc128AVX512.
var useAVX512F16Acc = useAsm && cpu.X86.HasAVX512F

// f16acc128AVX512 runs k >= 1 steps of 128 fp16-accumulated sums (f16AccSteps).
//
//go:noescape
func f16acc128AVX512(acc, t, x *float32, k int)

// decodeLUT8AVX512 decodes cols (a multiple of 64) LUT8 indices through the fp16 table lut16
// (AVX-512 VBMI, like gemvLUT8AVX512).
//
//go:noescape
func decodeLUT8AVX512(dst *float32, idx, lut16 unsafe.Pointer, cols int)

// useDotBlock selects dot4x2AVX512 for DotRows.
var useDotBlock = useAsm && cpu.X86.HasAVX512F

// dot4x2AVX512 dots four rows (wstride bytes apart) with two vectors, each sum bit for bit
// dotAVX's; cols is a positive multiple of 32 (dotblock_amd64.s).
//
//go:noescape
func dot4x2AVX512(w *float32, wstride int, x0, x1 *float32, cols int, out *[8]float32)

// Elementwise kernels (elementwise_amd64.s): one IEEE operation per element.

//go:noescape
func addVVAVX(dst, a, b *float32, n int)

//go:noescape
func subVVAVX(dst, a, b *float32, n int)

//go:noescape
func mulVVAVX(dst, a, b *float32, n int)

//go:noescape
func divVVAVX(dst, a, b *float32, n int)

//go:noescape
func addVSAVX(dst, a *float32, n int, y float32)

//go:noescape
func subVSAVX(dst, a *float32, n int, y float32)

//go:noescape
func mulVSAVX(dst, a *float32, n int, y float32)

//go:noescape
func divVSAVX(dst, a *float32, n int, y float32)

//go:noescape
func addSVAVX(dst, b *float32, n int, x float32)

//go:noescape
func subSVAVX(dst, b *float32, n int, x float32)

//go:noescape
func mulSVAVX(dst, b *float32, n int, x float32)

//go:noescape
func divSVAVX(dst, b *float32, n int, x float32)

//go:noescape
func accF64AVX(acc *float64, x *float32, n int)

// gemvBF16AVX512 is gemvBF16AVX bit for bit for rows of a positive multiple of 32 columns
// (dotblock_amd64.s).
//
//go:noescape
func gemvBF16AVX512(w unsafe.Pointer, x, dst *float32, rows, cols int)
