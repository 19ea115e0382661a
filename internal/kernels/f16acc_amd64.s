//go:build amd64 && !purego

#include "textflag.h"

// The fp16-accumulate kernels (f16acc.go).

// func transpose8AVX(dst, src *float32, srcStride, dstStride, rowGroups, colGroups int)
// For every 8×8 block (row group g < rowGroups, column group h < colGroups) of the source,
// whose rows are srcStride bytes apart, writes its transpose to the destination, whose rows
// are dstStride bytes apart: dst[(8h+j)*dstStride + 4*(8g+i)] = src[(8g+i)*srcStride + 4*(8h+j)].
TEXT ·transpose8AVX(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ srcStride+16(FP), R8
	MOVQ dstStride+24(FP), R9
	MOVQ rowGroups+32(FP), R10
	MOVQ colGroups+40(FP), R11
	LEAQ (R8)(R8*2), R12 // 3 rows
	LEAQ (R9)(R9*2), R13

col:
	MOVQ SI, AX // this column group's source rows
	MOVQ DI, BX // and destination
	MOVQ R10, CX

block:
	MOVQ    AX, DX
	VMOVUPS (DX), Y0
	VMOVUPS (DX)(R8*1), Y1
	VMOVUPS (DX)(R8*2), Y2
	VMOVUPS (DX)(R12*1), Y3
	LEAQ    (DX)(R8*4), DX
	VMOVUPS (DX), Y4
	VMOVUPS (DX)(R8*1), Y5
	VMOVUPS (DX)(R8*2), Y6
	VMOVUPS (DX)(R12*1), Y7

	VUNPCKLPS Y1, Y0, Y8
	VUNPCKHPS Y1, Y0, Y9
	VUNPCKLPS Y3, Y2, Y10
	VUNPCKHPS Y3, Y2, Y11
	VUNPCKLPS Y5, Y4, Y12
	VUNPCKHPS Y5, Y4, Y13
	VUNPCKLPS Y7, Y6, Y14
	VUNPCKHPS Y7, Y6, Y15

	VSHUFPS $0x44, Y10, Y8, Y0
	VSHUFPS $0xee, Y10, Y8, Y1
	VSHUFPS $0x44, Y11, Y9, Y2
	VSHUFPS $0xee, Y11, Y9, Y3
	VSHUFPS $0x44, Y14, Y12, Y4
	VSHUFPS $0xee, Y14, Y12, Y5
	VSHUFPS $0x44, Y15, Y13, Y6
	VSHUFPS $0xee, Y15, Y13, Y7

	VPERM2F128 $0x20, Y4, Y0, Y8
	VPERM2F128 $0x31, Y4, Y0, Y12
	VPERM2F128 $0x20, Y5, Y1, Y9
	VPERM2F128 $0x31, Y5, Y1, Y13
	VPERM2F128 $0x20, Y6, Y2, Y10
	VPERM2F128 $0x31, Y6, Y2, Y14
	VPERM2F128 $0x20, Y7, Y3, Y11
	VPERM2F128 $0x31, Y7, Y3, Y15

	MOVQ    BX, DX
	VMOVUPS Y8, (DX)
	VMOVUPS Y9, (DX)(R9*1)
	VMOVUPS Y10, (DX)(R9*2)
	VMOVUPS Y11, (DX)(R13*1)
	LEAQ    (DX)(R9*4), DX
	VMOVUPS Y12, (DX)
	VMOVUPS Y13, (DX)(R9*1)
	VMOVUPS Y14, (DX)(R9*2)
	VMOVUPS Y15, (DX)(R13*1)

	LEAQ (AX)(R8*8), AX // next 8 source rows
	ADDQ $32, BX        // next 8 destination columns
	DECQ CX
	JNZ  block

	ADDQ $32, SI        // next 8 source columns
	LEAQ (DI)(R9*8), DI // next 8 destination rows
	DECQ R11
	JNZ  col

	VZEROUPPER
	RET

// ACC16(off, Y, T): Y = fp16(Y + Y8·off(SI)), the multiply-add fused, rounded to nearest even.
#define ACC16(off, Y, T) \
	VFMADD231PS off(SI), Y8, Y; \
	VCVTPS2PH   $0, Y, T; \
	VCVTPH2PS   T, Y

// func f16acc64AVX(acc, t, x *float32, k, stride int)
// k steps (k >= 1) of 64 fp16 sums: acc[i] = fp16(acc[i] + x[s]·t[s*stride/4+i]) for s < k,
// stride in bytes; the 64 sums stay in Y0-Y7 for the whole loop.
TEXT ·f16acc64AVX(SB), NOSPLIT, $0-40
	MOVQ    acc+0(FP), DI
	MOVQ    t+8(FP), SI
	MOVQ    x+16(FP), DX
	MOVQ    k+24(FP), CX
	MOVQ    stride+32(FP), R8
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1
	VMOVUPS 64(DI), Y2
	VMOVUPS 96(DI), Y3
	VMOVUPS 128(DI), Y4
	VMOVUPS 160(DI), Y5
	VMOVUPS 192(DI), Y6
	VMOVUPS 224(DI), Y7

step:
	VBROADCASTSS (DX), Y8
	ACC16(0, Y0, X9)
	ACC16(32, Y1, X10)
	ACC16(64, Y2, X11)
	ACC16(96, Y3, X12)
	ACC16(128, Y4, X13)
	ACC16(160, Y5, X14)
	ACC16(192, Y6, X15)
	ACC16(224, Y7, X9)
	ADDQ R8, SI
	ADDQ $4, DX
	DECQ CX
	JNZ  step

	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	VMOVUPS Y4, 128(DI)
	VMOVUPS Y5, 160(DI)
	VMOVUPS Y6, 192(DI)
	VMOVUPS Y7, 224(DI)
	VZEROUPPER
	RET

// ACC32(off, Z, T): Z = fp16(Z + Z8·off(SI)), as ACC16 on 16 lanes.
#define ACC32(off, Z, T) \
	VFMADD231PS off(SI), Z8, Z; \
	VCVTPS2PH   $0, Z, T; \
	VCVTPH2PS   T, Z

// func f16acc128AVX512(acc, t, x *float32, k int)
// k steps (k >= 1) of 128 fp16 sums, t being [k][128]: f16acc64AVX on 512-bit registers, the
// sums in Z0-Z7.
TEXT ·f16acc128AVX512(SB), NOSPLIT, $0-32
	MOVQ    acc+0(FP), DI
	MOVQ    t+8(FP), SI
	MOVQ    x+16(FP), DX
	MOVQ    k+24(FP), CX
	VMOVUPS (DI), Z0
	VMOVUPS 64(DI), Z1
	VMOVUPS 128(DI), Z2
	VMOVUPS 192(DI), Z3
	VMOVUPS 256(DI), Z4
	VMOVUPS 320(DI), Z5
	VMOVUPS 384(DI), Z6
	VMOVUPS 448(DI), Z7

zstep:
	VBROADCASTSS (DX), Z8
	ACC32(0, Z0, Y16)
	ACC32(64, Z1, Y17)
	ACC32(128, Z2, Y18)
	ACC32(192, Z3, Y19)
	ACC32(256, Z4, Y20)
	ACC32(320, Z5, Y21)
	ACC32(384, Z6, Y22)
	ACC32(448, Z7, Y23)
	ADDQ $512, SI
	ADDQ $4, DX
	DECQ CX
	JNZ  zstep

	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	VMOVUPS Z2, 128(DI)
	VMOVUPS Z3, 192(DI)
	VMOVUPS Z4, 256(DI)
	VMOVUPS Z5, 320(DI)
	VMOVUPS Z6, 384(DI)
	VMOVUPS Z7, 448(DI)
	VZEROUPPER
	RET
