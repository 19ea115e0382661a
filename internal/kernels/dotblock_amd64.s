//go:build amd64 && !purego

#include "textflag.h"

// dot4x2AVX512: four rows against two vectors, each of the eight sums accumulated
// exactly as dotAVX accumulates one: dotAVX keeps four 8-lane sums Y0..Y3 over 32-column
// chunks (columns 32k+8j+l go to Yj lane l); here a zmm pair holds them, Za = Y0|Y1 and
// Zb = Y2|Y3, so every lane sees the same fused multiply-adds in the same order. The
// final (Y0+Y1)+(Y2+Y3) and the horizontal sum are dotAVX's (SUM4, HSUM), so each
// result equals dotAVX's bit for bit. cols is a positive multiple of 32 (dotAVX's
// 8-column and scalar tails never run then).

// HSUM8 adds the 8 lanes of ymm Y into the low lane of X (dotAVX's HSUM).
#define HSUM8(Y, X, T) \
	VEXTRACTF32X4 $1, Y, T; \
	VADDPS       T, X, X; \
	VPERMILPS    $0x4e, X, T; \
	VADDPS       T, X, X; \
	VPERMILPS    $0xb1, X, T; \
	VADDPS       T, X, X

// FOLD reduces the accumulator pair A = Y0|Y1, B = Y2|Y3 to (Y0+Y1)+(Y2+Y3), summed
// horizontally, and stores it at off(DX). Z28..Z30 are temporaries.
#define FOLD(A, B, off) \
	VSHUFF64X2    $0x44, B, A, Z28; \
	VSHUFF64X2    $0xee, B, A, Z29; \
	VADDPS        Z29, Z28, Z28; \
	VEXTRACTF64X4 $1, Z28, Y29; \
	VADDPS        Y29, Y28, Y28; \
	HSUM8(Y28, X28, X30); \
	VMOVSS        X28, off(DX)

// func dot4x2AVX512(w *float32, wstride int, x0, x1 *float32, cols int, out *[8]float32)
// out[4*f+r] = Σ_c w[r][c]·x_f[c] for rows r < 4 at w + r*wstride bytes and vectors x0, x1.
// Z0..Z15 accumulate (row r, vector f) in Z(4r+2f), Z(4r+2f+1); Z16..Z19 hold the vectors'
// chunk, Z20..Z27 the rows'.
TEXT ·dot4x2AVX512(SB), NOSPLIT, $0-48
	MOVQ w+0(FP), SI
	MOVQ wstride+8(FP), R10
	MOVQ x0+16(FP), DI
	MOVQ x1+24(FP), R8
	MOVQ cols+32(FP), CX
	MOVQ out+40(FP), DX
	LEAQ (R10)(R10*2), R11
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15

loop32:
	VMOVUPS     (DI), Z16
	VMOVUPS     64(DI), Z17
	VMOVUPS     (R8), Z18
	VMOVUPS     64(R8), Z19
	VMOVUPS     (SI), Z20
	VMOVUPS     64(SI), Z21
	VMOVUPS     (SI)(R10*1), Z22
	VMOVUPS     64(SI)(R10*1), Z23
	VMOVUPS     (SI)(R10*2), Z24
	VMOVUPS     64(SI)(R10*2), Z25
	VMOVUPS     (SI)(R11*1), Z26
	VMOVUPS     64(SI)(R11*1), Z27
	VFMADD231PS Z16, Z20, Z0
	VFMADD231PS Z17, Z21, Z1
	VFMADD231PS Z18, Z20, Z2
	VFMADD231PS Z19, Z21, Z3
	VFMADD231PS Z16, Z22, Z4
	VFMADD231PS Z17, Z23, Z5
	VFMADD231PS Z18, Z22, Z6
	VFMADD231PS Z19, Z23, Z7
	VFMADD231PS Z16, Z24, Z8
	VFMADD231PS Z17, Z25, Z9
	VFMADD231PS Z18, Z24, Z10
	VFMADD231PS Z19, Z25, Z11
	VFMADD231PS Z16, Z26, Z12
	VFMADD231PS Z17, Z27, Z13
	VFMADD231PS Z18, Z26, Z14
	VFMADD231PS Z19, Z27, Z15
	ADDQ        $128, SI
	ADDQ        $128, DI
	ADDQ        $128, R8
	SUBQ        $32, CX
	JNZ         loop32

	FOLD(Z0, Z1, 0)
	FOLD(Z4, Z5, 4)
	FOLD(Z8, Z9, 8)
	FOLD(Z12, Z13, 12)
	FOLD(Z2, Z3, 16)
	FOLD(Z6, Z7, 20)
	FOLD(Z10, Z11, 24)
	FOLD(Z14, Z15, 28)
	VZEROUPPER
	RET

// func gemvBF16AVX512(w unsafe.Pointer, x, dst *float32, rows, cols int)
// gemvBF16AVX bit for bit for cols a positive multiple of 32: Z0 and Z1 hold gemvBF16AVX's
// Y0|Y1 and Y2|Y3, and 16 bf16 widen per instruction. One row at a time: reading two rows in
// one pass halved the speed from memory (the prefetcher follows one stream per pass better).
TEXT ·gemvBF16AVX512(SB), NOSPLIT, $0-40
	MOVQ w+0(FP), SI
	MOVQ x+8(FP), R8
	MOVQ dst+16(FP), DX
	MOVQ rows+24(FP), BX
	MOVQ cols+32(FP), R9

row:
	MOVQ   R8, DI
	MOVQ   R9, CX
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1

loop32:
	VPMOVZXWD   (SI), Z4
	VPMOVZXWD   32(SI), Z5
	VPSLLD      $16, Z4, Z4
	VPSLLD      $16, Z5, Z5
	VFMADD231PS (DI), Z4, Z0
	VFMADD231PS 64(DI), Z5, Z1
	ADDQ        $64, SI
	ADDQ        $128, DI
	SUBQ        $32, CX
	JNZ         loop32

	FOLD(Z0, Z1, 0)
	ADDQ $4, DX
	DECQ BX
	JNZ  row
	VZEROUPPER
	RET
