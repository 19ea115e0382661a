//go:build amd64 && !purego

#include "textflag.h"

// AVX2 + FMA + F16C kernels. Every loop reads exactly the bytes of its
// operands (scalar tails, no over-reads), so slices from an mmap may end at a
// page boundary. Accumulators are float32; sums use fused multiply-add.

// HSUM adds the 8 lanes of ymm Y into the low lane of X (the low half of Y),
// using xmm T as a temporary.
#define HSUM(Y, X, T) \
	VEXTRACTF128 $1, Y, T; \
	VADDPS       T, X, X; \
	VPERMILPS    $0x4e, X, T; \
	VADDPS       T, X, X; \
	VPERMILPS    $0xb1, X, T; \
	VADDPS       T, X, X

#define ZERO4 \
	VXORPS Y0, Y0, Y0; \
	VXORPS Y1, Y1, Y1; \
	VXORPS Y2, Y2, Y2; \
	VXORPS Y3, Y3, Y3

// SUM4 leaves Y0+Y1+Y2+Y3 in the low lane of X0.
#define SUM4 \
	VADDPS Y1, Y0, Y0; \
	VADDPS Y3, Y2, Y2; \
	VADDPS Y2, Y0, Y0; \
	HSUM(Y0, X0, X1)

// LOADSCALE broadcasts the fp16 scale at (p) to all lanes of Y15.
#define LOADSCALE(p) \
	MOVWLZX      (p), AX; \
	VMOVD        AX, X15; \
	VCVTPH2PS    X15, X15; \
	VBROADCASTSS X15, Y15

// func dotAVX(a, b *float32, n int) float32
TEXT ·dotAVX(SB), NOSPLIT, $0-28
	MOVQ a+0(FP), SI
	MOVQ b+8(FP), DI
	MOVQ n+16(FP), CX
	ZERO4

loop32:
	CMPQ        CX, $32
	JL          loop8
	VMOVUPS     (SI), Y4
	VMOVUPS     32(SI), Y5
	VMOVUPS     64(SI), Y6
	VMOVUPS     96(SI), Y7
	VFMADD231PS (DI), Y4, Y0
	VFMADD231PS 32(DI), Y5, Y1
	VFMADD231PS 64(DI), Y6, Y2
	VFMADD231PS 96(DI), Y7, Y3
	ADDQ        $128, SI
	ADDQ        $128, DI
	SUBQ        $32, CX
	JMP         loop32

loop8:
	CMPQ        CX, $8
	JL          reduce
	VMOVUPS     (SI), Y4
	VFMADD231PS (DI), Y4, Y0
	ADDQ        $32, SI
	ADDQ        $32, DI
	SUBQ        $8, CX
	JMP         loop8

reduce:
	SUM4

loop1:
	TESTQ       CX, CX
	JZ          done
	VMOVSS      (SI), X4
	VFMADD231SS (DI), X4, X0
	ADDQ        $4, SI
	ADDQ        $4, DI
	DECQ        CX
	JMP         loop1

done:
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// func axpyAVX(y *float32, a float32, x *float32, n int)
TEXT ·axpyAVX(SB), NOSPLIT, $0-32
	MOVQ         y+0(FP), DI
	VBROADCASTSS a+8(FP), Y15
	MOVQ         x+16(FP), SI
	MOVQ         n+24(FP), CX

loop32:
	CMPQ        CX, $32
	JL          loop8
	VMOVUPS     (DI), Y0
	VMOVUPS     32(DI), Y1
	VMOVUPS     64(DI), Y2
	VMOVUPS     96(DI), Y3
	VFMADD231PS (SI), Y15, Y0
	VFMADD231PS 32(SI), Y15, Y1
	VFMADD231PS 64(SI), Y15, Y2
	VFMADD231PS 96(SI), Y15, Y3
	VMOVUPS     Y0, (DI)
	VMOVUPS     Y1, 32(DI)
	VMOVUPS     Y2, 64(DI)
	VMOVUPS     Y3, 96(DI)
	ADDQ        $128, SI
	ADDQ        $128, DI
	SUBQ        $32, CX
	JMP         loop32

loop8:
	CMPQ        CX, $8
	JL          loop1
	VMOVUPS     (DI), Y0
	VFMADD231PS (SI), Y15, Y0
	VMOVUPS     Y0, (DI)
	ADDQ        $32, SI
	ADDQ        $32, DI
	SUBQ        $8, CX
	JMP         loop8

loop1:
	TESTQ       CX, CX
	JZ          done
	VMOVSS      (DI), X0
	VFMADD231SS (SI), X15, X0
	VMOVSS      X0, (DI)
	ADDQ        $4, SI
	ADDQ        $4, DI
	DECQ        CX
	JMP         loop1

done:
	VZEROUPPER
	RET

// func bf16ToF32AVX(dst *float32, src unsafe.Pointer, n int)
TEXT ·bf16ToF32AVX(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX

loop32:
	CMPQ      CX, $32
	JL        loop8
	VPMOVZXWD (SI), Y0
	VPMOVZXWD 16(SI), Y1
	VPMOVZXWD 32(SI), Y2
	VPMOVZXWD 48(SI), Y3
	VPSLLD    $16, Y0, Y0
	VPSLLD    $16, Y1, Y1
	VPSLLD    $16, Y2, Y2
	VPSLLD    $16, Y3, Y3
	VMOVUPS   Y0, (DI)
	VMOVUPS   Y1, 32(DI)
	VMOVUPS   Y2, 64(DI)
	VMOVUPS   Y3, 96(DI)
	ADDQ      $64, SI
	ADDQ      $128, DI
	SUBQ      $32, CX
	JMP       loop32

loop8:
	CMPQ      CX, $8
	JL        loop1
	VPMOVZXWD (SI), Y0
	VPSLLD    $16, Y0, Y0
	VMOVUPS   Y0, (DI)
	ADDQ      $16, SI
	ADDQ      $32, DI
	SUBQ      $8, CX
	JMP       loop8

loop1:
	TESTQ   CX, CX
	JZ      done
	MOVWLZX (SI), AX
	SHLL    $16, AX
	MOVL    AX, (DI)
	ADDQ    $2, SI
	ADDQ    $4, DI
	DECQ    CX
	JMP     loop1

done:
	VZEROUPPER
	RET

// func f16ToF32AVX(dst *float32, src unsafe.Pointer, n int)
TEXT ·f16ToF32AVX(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX

loop32:
	CMPQ      CX, $32
	JL        loop8
	VCVTPH2PS (SI), Y0
	VCVTPH2PS 16(SI), Y1
	VCVTPH2PS 32(SI), Y2
	VCVTPH2PS 48(SI), Y3
	VMOVUPS   Y0, (DI)
	VMOVUPS   Y1, 32(DI)
	VMOVUPS   Y2, 64(DI)
	VMOVUPS   Y3, 96(DI)
	ADDQ      $64, SI
	ADDQ      $128, DI
	SUBQ      $32, CX
	JMP       loop32

loop8:
	CMPQ      CX, $8
	JL        loop1
	VCVTPH2PS (SI), Y0
	VMOVUPS   Y0, (DI)
	ADDQ      $16, SI
	ADDQ      $32, DI
	SUBQ      $8, CX
	JMP       loop8

loop1:
	TESTQ     CX, CX
	JZ        done
	MOVWLZX   (SI), AX
	VMOVD     AX, X0
	VCVTPH2PS X0, X0
	VMOVSS    X0, (DI)
	ADDQ      $2, SI
	ADDQ      $4, DI
	DECQ      CX
	JMP       loop1

done:
	VZEROUPPER
	RET

// func f32ToF16AVX(dst unsafe.Pointer, src *float32, n int)
TEXT ·f32ToF16AVX(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX

loop16:
	CMPQ      CX, $16
	JL        loop8
	VMOVUPS   (SI), Y0
	VMOVUPS   32(SI), Y1
	VCVTPS2PH $0, Y0, X2
	VCVTPS2PH $0, Y1, X3
	VMOVDQU   X2, (DI)
	VMOVDQU   X3, 16(DI)
	ADDQ      $64, SI
	ADDQ      $32, DI
	SUBQ      $16, CX
	JMP       loop16

loop8:
	CMPQ      CX, $8
	JL        loop1
	VMOVUPS   (SI), Y0
	VCVTPS2PH $0, Y0, X2
	VMOVDQU   X2, (DI)
	ADDQ      $32, SI
	ADDQ      $16, DI
	SUBQ      $8, CX
	JMP       loop8

loop1:
	TESTQ     CX, CX
	JZ        done
	VMOVSS    (SI), X0
	VCVTPS2PH $0, X0, X1
	VMOVD     X1, AX
	MOVW      AX, (DI)
	ADDQ      $4, SI
	ADDQ      $2, DI
	DECQ      CX
	JMP       loop1

done:
	VZEROUPPER
	RET

// func roundF16AVX(x *float32, n int)
TEXT ·roundF16AVX(SB), NOSPLIT, $0-16
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX

loop16:
	CMPQ      CX, $16
	JL        loop8
	VMOVUPS   (SI), Y0
	VMOVUPS   32(SI), Y1
	VCVTPS2PH $0, Y0, X2
	VCVTPS2PH $0, Y1, X3
	VCVTPH2PS X2, Y0
	VCVTPH2PS X3, Y1
	VMOVUPS   Y0, (SI)
	VMOVUPS   Y1, 32(SI)
	ADDQ      $64, SI
	SUBQ      $16, CX
	JMP       loop16

loop8:
	CMPQ      CX, $8
	JL        loop1
	VMOVUPS   (SI), Y0
	VCVTPS2PH $0, Y0, X2
	VCVTPH2PS X2, Y0
	VMOVUPS   Y0, (SI)
	ADDQ      $32, SI
	SUBQ      $8, CX
	JMP       loop8

loop1:
	TESTQ     CX, CX
	JZ        done
	VMOVSS    (SI), X0
	VCVTPS2PH $0, X0, X1
	VCVTPH2PS X1, X0
	VMOVSS    X0, (SI)
	ADDQ      $4, SI
	DECQ      CX
	JMP       loop1

done:
	VZEROUPPER
	RET

// func dot4AVX(w, x *float32, xstride, cols int, out *[4]float32)
// Vector v is at x + v*xstride bytes. Y0-Y3 and Y4-Y7 accumulate the even
// and odd 8-column groups of the four vectors.
TEXT ·dot4AVX(SB), NOSPLIT, $0-40
	MOVQ w+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ xstride+16(FP), R11
	MOVQ cols+24(FP), CX
	MOVQ out+32(FP), DX
	LEAQ (R11)(R11*2), R12
	ZERO4
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7

loop16:
	CMPQ        CX, $16
	JL          loop8
	VMOVUPS     (SI), Y8
	VMOVUPS     32(SI), Y9
	VFMADD231PS (DI), Y8, Y0
	VFMADD231PS (DI)(R11*1), Y8, Y1
	VFMADD231PS (DI)(R11*2), Y8, Y2
	VFMADD231PS (DI)(R12*1), Y8, Y3
	VFMADD231PS 32(DI), Y9, Y4
	VFMADD231PS 32(DI)(R11*1), Y9, Y5
	VFMADD231PS 32(DI)(R11*2), Y9, Y6
	VFMADD231PS 32(DI)(R12*1), Y9, Y7
	ADDQ        $64, SI
	ADDQ        $64, DI
	SUBQ        $16, CX
	JMP         loop16

loop8:
	CMPQ        CX, $8
	JL          reduce
	VMOVUPS     (SI), Y8
	VFMADD231PS (DI), Y8, Y0
	VFMADD231PS (DI)(R11*1), Y8, Y1
	VFMADD231PS (DI)(R11*2), Y8, Y2
	VFMADD231PS (DI)(R12*1), Y8, Y3
	ADDQ        $32, SI
	ADDQ        $32, DI
	SUBQ        $8, CX

reduce:
	VADDPS Y4, Y0, Y0
	VADDPS Y5, Y1, Y1
	VADDPS Y6, Y2, Y2
	VADDPS Y7, Y3, Y3
	HSUM(Y0, X0, X8)
	HSUM(Y1, X1, X8)
	HSUM(Y2, X2, X8)
	HSUM(Y3, X3, X8)

loop1:
	TESTQ       CX, CX
	JZ          done
	VMOVSS      (SI), X8
	VFMADD231SS (DI), X8, X0
	VFMADD231SS (DI)(R11*1), X8, X1
	VFMADD231SS (DI)(R11*2), X8, X2
	VFMADD231SS (DI)(R12*1), X8, X3
	ADDQ        $4, SI
	ADDQ        $4, DI
	DECQ        CX
	JMP         loop1

done:
	VMOVSS X0, (DX)
	VMOVSS X1, 4(DX)
	VMOVSS X2, 8(DX)
	VMOVSS X3, 12(DX)
	VZEROUPPER
	RET

// The gemv kernels walk rows stored back to back: SI runs over the weights
// without rewinding, DI restarts at x (R8) for each row, DX steps over dst.

// func gemvF32AVX(w unsafe.Pointer, x, dst *float32, rows, cols int)
TEXT ·gemvF32AVX(SB), NOSPLIT, $0-40
	MOVQ  w+0(FP), SI
	MOVQ  x+8(FP), R8
	MOVQ  dst+16(FP), DX
	MOVQ  rows+24(FP), BX
	MOVQ  cols+32(FP), R9
	TESTQ BX, BX
	JZ    done

row:
	MOVQ R8, DI
	MOVQ R9, CX
	ZERO4

loop32:
	CMPQ        CX, $32
	JL          loop8
	VMOVUPS     (SI), Y4
	VMOVUPS     32(SI), Y5
	VMOVUPS     64(SI), Y6
	VMOVUPS     96(SI), Y7
	VFMADD231PS (DI), Y4, Y0
	VFMADD231PS 32(DI), Y5, Y1
	VFMADD231PS 64(DI), Y6, Y2
	VFMADD231PS 96(DI), Y7, Y3
	ADDQ        $128, SI
	ADDQ        $128, DI
	SUBQ        $32, CX
	JMP         loop32

loop8:
	CMPQ        CX, $8
	JL          reduce
	VMOVUPS     (SI), Y4
	VFMADD231PS (DI), Y4, Y0
	ADDQ        $32, SI
	ADDQ        $32, DI
	SUBQ        $8, CX
	JMP         loop8

reduce:
	SUM4

loop1:
	TESTQ       CX, CX
	JZ          store
	VMOVSS      (SI), X4
	VFMADD231SS (DI), X4, X0
	ADDQ        $4, SI
	ADDQ        $4, DI
	DECQ        CX
	JMP         loop1

store:
	VMOVSS X0, (DX)
	ADDQ   $4, DX
	DECQ   BX
	JNZ    row

done:
	VZEROUPPER
	RET

// func gemvBF16AVX(w unsafe.Pointer, x, dst *float32, rows, cols int)
TEXT ·gemvBF16AVX(SB), NOSPLIT, $0-40
	MOVQ  w+0(FP), SI
	MOVQ  x+8(FP), R8
	MOVQ  dst+16(FP), DX
	MOVQ  rows+24(FP), BX
	MOVQ  cols+32(FP), R9
	TESTQ BX, BX
	JZ    done

row:
	MOVQ R8, DI
	MOVQ R9, CX
	ZERO4

loop32:
	CMPQ        CX, $32
	JL          loop8
	VPMOVZXWD   (SI), Y4
	VPMOVZXWD   16(SI), Y5
	VPMOVZXWD   32(SI), Y6
	VPMOVZXWD   48(SI), Y7
	VPSLLD      $16, Y4, Y4
	VPSLLD      $16, Y5, Y5
	VPSLLD      $16, Y6, Y6
	VPSLLD      $16, Y7, Y7
	VFMADD231PS (DI), Y4, Y0
	VFMADD231PS 32(DI), Y5, Y1
	VFMADD231PS 64(DI), Y6, Y2
	VFMADD231PS 96(DI), Y7, Y3
	ADDQ        $64, SI
	ADDQ        $128, DI
	SUBQ        $32, CX
	JMP         loop32

loop8:
	CMPQ        CX, $8
	JL          reduce
	VPMOVZXWD   (SI), Y4
	VPSLLD      $16, Y4, Y4
	VFMADD231PS (DI), Y4, Y0
	ADDQ        $16, SI
	ADDQ        $32, DI
	SUBQ        $8, CX
	JMP         loop8

reduce:
	SUM4

loop1:
	TESTQ       CX, CX
	JZ          store
	MOVWLZX     (SI), AX
	SHLL        $16, AX
	VMOVD       AX, X4
	VFMADD231SS (DI), X4, X0
	ADDQ        $2, SI
	ADDQ        $4, DI
	DECQ        CX
	JMP         loop1

store:
	VMOVSS X0, (DX)
	ADDQ   $4, DX
	DECQ   BX
	JNZ    row

done:
	VZEROUPPER
	RET

// func gemvF16AVX(w unsafe.Pointer, x, dst *float32, rows, cols int)
TEXT ·gemvF16AVX(SB), NOSPLIT, $0-40
	MOVQ  w+0(FP), SI
	MOVQ  x+8(FP), R8
	MOVQ  dst+16(FP), DX
	MOVQ  rows+24(FP), BX
	MOVQ  cols+32(FP), R9
	TESTQ BX, BX
	JZ    done

row:
	MOVQ R8, DI
	MOVQ R9, CX
	ZERO4

loop32:
	CMPQ        CX, $32
	JL          loop8
	VCVTPH2PS   (SI), Y4
	VCVTPH2PS   16(SI), Y5
	VCVTPH2PS   32(SI), Y6
	VCVTPH2PS   48(SI), Y7
	VFMADD231PS (DI), Y4, Y0
	VFMADD231PS 32(DI), Y5, Y1
	VFMADD231PS 64(DI), Y6, Y2
	VFMADD231PS 96(DI), Y7, Y3
	ADDQ        $64, SI
	ADDQ        $128, DI
	SUBQ        $32, CX
	JMP         loop32

loop8:
	CMPQ        CX, $8
	JL          reduce
	VCVTPH2PS   (SI), Y4
	VFMADD231PS (DI), Y4, Y0
	ADDQ        $16, SI
	ADDQ        $32, DI
	SUBQ        $8, CX
	JMP         loop8

reduce:
	SUM4

loop1:
	TESTQ       CX, CX
	JZ          store
	MOVWLZX     (SI), AX
	VMOVD       AX, X4
	VCVTPH2PS   X4, X4
	VFMADD231SS (DI), X4, X0
	ADDQ        $2, SI
	ADDQ        $4, DI
	DECQ        CX
	JMP         loop1

store:
	VMOVSS X0, (DX)
	ADDQ   $4, DX
	DECQ   BX
	JNZ    row

done:
	VZEROUPPER
	RET

// func gemvQ8AVX(q, scales unsafe.Pointer, x, dst *float32, rows, cols, blockCols, scaleStride int)
// Each weight is dequantized exactly (int8 × fp16 scale fits a float32
// mantissa) before the FMA. Per row: R13 walks the row's scales, CX counts
// the row's remaining columns and AX the block's. Tail elements of a block
// accumulate into X8.
TEXT ·gemvQ8AVX(SB), NOSPLIT, $0-64
	MOVQ  q+0(FP), SI
	MOVQ  scales+8(FP), R10
	MOVQ  x+16(FP), R8
	MOVQ  dst+24(FP), DX
	MOVQ  rows+32(FP), BX
	MOVQ  cols+40(FP), R9
	MOVQ  blockCols+48(FP), R11
	MOVQ  scaleStride+56(FP), R12
	TESTQ BX, BX
	JZ    done
	CMPQ  R11, $32
	JEQ   b32row

row:
	MOVQ   R8, DI
	MOVQ   R10, R13
	MOVQ   R9, CX
	ZERO4
	VXORPS Y8, Y8, Y8

block:
	LOADSCALE(R13)
	ADDQ $2, R13
	MOVQ R11, AX
	SUBQ R11, CX

loop32:
	CMPQ        AX, $32
	JL          loop8
	VPMOVSXBD   (SI), Y4
	VPMOVSXBD   8(SI), Y5
	VPMOVSXBD   16(SI), Y6
	VPMOVSXBD   24(SI), Y7
	VCVTDQ2PS   Y4, Y4
	VCVTDQ2PS   Y5, Y5
	VCVTDQ2PS   Y6, Y6
	VCVTDQ2PS   Y7, Y7
	VMULPS      Y15, Y4, Y4
	VMULPS      Y15, Y5, Y5
	VMULPS      Y15, Y6, Y6
	VMULPS      Y15, Y7, Y7
	VFMADD231PS (DI), Y4, Y0
	VFMADD231PS 32(DI), Y5, Y1
	VFMADD231PS 64(DI), Y6, Y2
	VFMADD231PS 96(DI), Y7, Y3
	ADDQ        $32, SI
	ADDQ        $128, DI
	SUBQ        $32, AX
	JMP         loop32

loop8:
	CMPQ        AX, $8
	JL          loop1
	VPMOVSXBD   (SI), Y4
	VCVTDQ2PS   Y4, Y4
	VMULPS      Y15, Y4, Y4
	VFMADD231PS (DI), Y4, Y0
	ADDQ        $8, SI
	ADDQ        $32, DI
	SUBQ        $8, AX
	JMP         loop8

loop1:
	TESTQ        AX, AX
	JZ           nextblock
	VPBROADCASTB (SI), X4
	VPMOVSXBD    X4, X4
	VCVTDQ2PS    X4, X4
	VMULSS       X15, X4, X4
	VFMADD231SS  (DI), X4, X8
	ADDQ         $1, SI
	ADDQ         $4, DI
	DECQ         AX
	JMP          loop1

nextblock:
	TESTQ CX, CX
	JNZ   block
	SUM4
	VADDSS X8, X0, X0
	VMOVSS X0, (DX)
	ADDQ   $4, DX
	ADDQ   R12, R10
	DECQ   BX
	JNZ    row
	JMP    done

	// Blocks of 32 (the common layout): one straight pass per block.
b32row:
	MOVQ R8, DI
	MOVQ R10, R13
	MOVQ R9, CX
	ZERO4

b32block:
	LOADSCALE(R13)
	VPMOVSXBD   (SI), Y4
	VPMOVSXBD   8(SI), Y5
	VPMOVSXBD   16(SI), Y6
	VPMOVSXBD   24(SI), Y7
	VCVTDQ2PS   Y4, Y4
	VCVTDQ2PS   Y5, Y5
	VCVTDQ2PS   Y6, Y6
	VCVTDQ2PS   Y7, Y7
	VMULPS      Y15, Y4, Y4
	VMULPS      Y15, Y5, Y5
	VMULPS      Y15, Y6, Y6
	VMULPS      Y15, Y7, Y7
	VFMADD231PS (DI), Y4, Y0
	VFMADD231PS 32(DI), Y5, Y1
	VFMADD231PS 64(DI), Y6, Y2
	VFMADD231PS 96(DI), Y7, Y3
	ADDQ        $2, R13
	ADDQ        $32, SI
	ADDQ        $128, DI
	SUBQ        $32, CX
	JNZ         b32block

	SUM4
	VMOVSS X0, (DX)
	ADDQ   $4, DX
	ADDQ   R12, R10
	DECQ   BX
	JNZ    b32row

done:
	VZEROUPPER
	RET

// UNPACK32 splits the 16 bytes at (p) into 32 nibbles in index order (low
// nibble first): bytes 0-15 of X4 and 16-31 of X6. X13 holds 0x0f bytes;
// X5 is clobbered.
#define UNPACK32(p) \
	VMOVDQU    (p), X4; \
	VPSRLW     $4, X4, X5; \
	VPAND      X13, X4, X4; \
	VPAND      X13, X5, X5; \
	VPUNPCKHBW X5, X4, X6; \
	VPUNPCKLBW X5, X4, X4

// SIGNED4 turns nibbles 0..15 in the bytes of X into -8..7: (v^8)-8. X14
// holds 0x08 bytes.
#define SIGNED4(X) \
	VPXOR  X14, X, X; \
	VPSUBB X14, X, X

// WIDEN4S sign-extends the 32 bytes of X4, X6 to int32 in Y7-Y10 and
// converts them to float32.
#define WIDEN4S \
	VPMOVSXBD X4, Y7; \
	VPSHUFD   $0xee, X4, X4; \
	VPMOVSXBD X4, Y8; \
	VPMOVSXBD X6, Y9; \
	VPSHUFD   $0xee, X6, X6; \
	VPMOVSXBD X6, Y10; \
	VCVTDQ2PS Y7, Y7; \
	VCVTDQ2PS Y8, Y8; \
	VCVTDQ2PS Y9, Y9; \
	VCVTDQ2PS Y10, Y10

// NIBBLEMASKS loads the 0x0f and 0x08 byte masks into Y13 and Y14.
#define NIBBLEMASKS \
	MOVL         $0x0f0f0f0f, AX; \
	VMOVD        AX, X13; \
	VPBROADCASTD X13, Y13; \
	MOVL         $0x08080808, AX; \
	VMOVD        AX, X14; \
	VPBROADCASTD X14, Y14

// func gemvQ4AVX(q, scales unsafe.Pointer, x, dst *float32, rows, cols, blockCols, scaleStride int)
// cols and blockCols are multiples of 32.
TEXT ·gemvQ4AVX(SB), NOSPLIT, $0-64
	MOVQ  q+0(FP), SI
	MOVQ  scales+8(FP), R10
	MOVQ  x+16(FP), R8
	MOVQ  dst+24(FP), DX
	MOVQ  rows+32(FP), BX
	MOVQ  cols+40(FP), R9
	MOVQ  blockCols+48(FP), R11
	MOVQ  scaleStride+56(FP), R12
	TESTQ BX, BX
	JZ    done
	NIBBLEMASKS

row:
	MOVQ R8, DI
	MOVQ R10, R13
	MOVQ R9, CX
	ZERO4

block:
	LOADSCALE(R13)
	ADDQ $2, R13
	MOVQ R11, AX
	SUBQ R11, CX

loop32:
	UNPACK32(SI)
	SIGNED4(X4)
	SIGNED4(X6)
	WIDEN4S
	VMULPS      Y15, Y7, Y7
	VMULPS      Y15, Y8, Y8
	VMULPS      Y15, Y9, Y9
	VMULPS      Y15, Y10, Y10
	VFMADD231PS (DI), Y7, Y0
	VFMADD231PS 32(DI), Y8, Y1
	VFMADD231PS 64(DI), Y9, Y2
	VFMADD231PS 96(DI), Y10, Y3
	ADDQ        $16, SI
	ADDQ        $128, DI
	SUBQ        $32, AX
	JNZ         loop32

	TESTQ  CX, CX
	JNZ    block
	SUM4
	VMOVSS X0, (DX)
	ADDQ   $4, DX
	ADDQ   R12, R10
	DECQ   BX
	JNZ    row

done:
	VZEROUPPER
	RET

// LOOKUP8(off, Y, X) loads the 8 table entries indexed by the bytes at
// off(SI) into ymm Y (X is its low half); X5 is clobbered. Scalar index loads
// with VINSERTPS beat VGATHERDPS on the AMD cores we run on.
#define LOOKUP8(off, Y, X) \
	MOVBLZX     off+0(SI), AX; \
	MOVBLZX     off+1(SI), R11; \
	MOVBLZX     off+2(SI), R12; \
	MOVBLZX     off+3(SI), R13; \
	VMOVSS      (R10)(AX*4), X; \
	VINSERTPS   $0x10, (R10)(R11*4), X, X; \
	VINSERTPS   $0x20, (R10)(R12*4), X, X; \
	VINSERTPS   $0x30, (R10)(R13*4), X, X; \
	MOVBLZX     off+4(SI), AX; \
	MOVBLZX     off+5(SI), R11; \
	MOVBLZX     off+6(SI), R12; \
	MOVBLZX     off+7(SI), R13; \
	VMOVSS      (R10)(AX*4), X5; \
	VINSERTPS   $0x10, (R10)(R11*4), X5, X5; \
	VINSERTPS   $0x20, (R10)(R12*4), X5, X5; \
	VINSERTPS   $0x30, (R10)(R13*4), X5, X5; \
	VINSERTF128 $1, X5, Y, Y

// func gemvLUT8AVX(idx unsafe.Pointer, lut *[256]float32, x, dst *float32, rows, cols int)
TEXT ·gemvLUT8AVX(SB), NOSPLIT, $0-48
	MOVQ  idx+0(FP), SI
	MOVQ  lut+8(FP), R10
	MOVQ  x+16(FP), R8
	MOVQ  dst+24(FP), DX
	MOVQ  rows+32(FP), BX
	MOVQ  cols+40(FP), R9
	TESTQ BX, BX
	JZ    done

row:
	MOVQ R8, DI
	MOVQ R9, CX
	ZERO4

loop32:
	CMPQ        CX, $32
	JL          loop8
	LOOKUP8(0, Y4, X4)
	VFMADD231PS (DI), Y4, Y0
	LOOKUP8(8, Y6, X6)
	VFMADD231PS 32(DI), Y6, Y1
	LOOKUP8(16, Y4, X4)
	VFMADD231PS 64(DI), Y4, Y2
	LOOKUP8(24, Y6, X6)
	VFMADD231PS 96(DI), Y6, Y3
	ADDQ        $32, SI
	ADDQ        $128, DI
	SUBQ        $32, CX
	JMP         loop32

loop8:
	CMPQ        CX, $8
	JL          reduce
	LOOKUP8(0, Y4, X4)
	VFMADD231PS (DI), Y4, Y0
	ADDQ        $8, SI
	ADDQ        $32, DI
	SUBQ        $8, CX
	JMP         loop8

reduce:
	SUM4

loop1:
	TESTQ       CX, CX
	JZ          store
	MOVBLZX     (SI), AX
	VMOVSS      (R10)(AX*4), X4
	VFMADD231SS (DI), X4, X0
	ADDQ        $1, SI
	ADDQ        $4, DI
	DECQ        CX
	JMP         loop1

store:
	VMOVSS X0, (DX)
	ADDQ   $4, DX
	DECQ   BX
	JNZ    row

done:
	VZEROUPPER
	RET

// LOOKUP16 replaces the indices 0..15 in ymm I by the table in Y11 (entries
// 0-7) and Y12 (8-15): VPERMPS uses the low 3 bits, bit 3 (moved to the sign
// bit) picks the half. The result is in Y4; Y5 is clobbered.
#define LOOKUP16(I) \
	VPERMPS   Y11, I, Y4; \
	VPERMPS   Y12, I, Y5; \
	VPSLLD    $28, I, I; \
	VBLENDVPS I, Y5, Y4, Y4

// WIDEN4U zero-extends the 32 bytes of X4, X6 to int32 in Y7-Y10.
#define WIDEN4U \
	VPMOVZXBD X4, Y7; \
	VPSHUFD   $0xee, X4, X4; \
	VPMOVZXBD X4, Y8; \
	VPMOVZXBD X6, Y9; \
	VPSHUFD   $0xee, X6, X6; \
	VPMOVZXBD X6, Y10

// func gemvLUT4AVX(idx unsafe.Pointer, lut *[16]float32, x, dst *float32, rows, cols int)
// cols is a multiple of 32.
TEXT ·gemvLUT4AVX(SB), NOSPLIT, $0-48
	MOVQ  idx+0(FP), SI
	MOVQ  lut+8(FP), R10
	MOVQ  x+16(FP), R8
	MOVQ  dst+24(FP), DX
	MOVQ  rows+32(FP), BX
	MOVQ  cols+40(FP), R9
	TESTQ BX, BX
	JZ    done
	NIBBLEMASKS
	VMOVUPS (R10), Y11
	VMOVUPS 32(R10), Y12

row:
	MOVQ R8, DI
	MOVQ R9, CX
	ZERO4

loop32:
	UNPACK32(SI)
	WIDEN4U
	LOOKUP16(Y7)
	VFMADD231PS (DI), Y4, Y0
	LOOKUP16(Y8)
	VFMADD231PS 32(DI), Y4, Y1
	LOOKUP16(Y9)
	VFMADD231PS 64(DI), Y4, Y2
	LOOKUP16(Y10)
	VFMADD231PS 96(DI), Y4, Y3
	ADDQ        $16, SI
	ADDQ        $128, DI
	SUBQ        $32, CX
	JNZ         loop32

	SUM4
	VMOVSS X0, (DX)
	ADDQ   $4, DX
	DECQ   BX
	JNZ    row

done:
	VZEROUPPER
	RET

// func decodeQ8AVX(dst *float32, q, scales unsafe.Pointer, cols, blockCols int)
TEXT ·decodeQ8AVX(SB), NOSPLIT, $0-40
	MOVQ  dst+0(FP), DI
	MOVQ  q+8(FP), SI
	MOVQ  scales+16(FP), R13
	MOVQ  cols+24(FP), CX
	MOVQ  blockCols+32(FP), R11
	TESTQ CX, CX
	JZ    done

block:
	LOADSCALE(R13)
	ADDQ $2, R13
	MOVQ R11, AX
	SUBQ R11, CX

loop8:
	CMPQ      AX, $8
	JL        loop1
	VPMOVSXBD (SI), Y4
	VCVTDQ2PS Y4, Y4
	VMULPS    Y15, Y4, Y4
	VMOVUPS   Y4, (DI)
	ADDQ      $8, SI
	ADDQ      $32, DI
	SUBQ      $8, AX
	JMP       loop8

loop1:
	TESTQ        AX, AX
	JZ           nextblock
	VPBROADCASTB (SI), X4
	VPMOVSXBD    X4, X4
	VCVTDQ2PS    X4, X4
	VMULSS       X15, X4, X4
	VMOVSS       X4, (DI)
	ADDQ         $1, SI
	ADDQ         $4, DI
	DECQ         AX
	JMP          loop1

nextblock:
	TESTQ CX, CX
	JNZ   block

done:
	VZEROUPPER
	RET

// func decodeQ4AVX(dst *float32, q, scales unsafe.Pointer, cols, blockCols int)
// cols and blockCols are multiples of 32.
TEXT ·decodeQ4AVX(SB), NOSPLIT, $0-40
	MOVQ  dst+0(FP), DI
	MOVQ  q+8(FP), SI
	MOVQ  scales+16(FP), R13
	MOVQ  cols+24(FP), CX
	MOVQ  blockCols+32(FP), R11
	TESTQ CX, CX
	JZ    done
	NIBBLEMASKS

block:
	LOADSCALE(R13)
	ADDQ $2, R13
	MOVQ R11, AX
	SUBQ R11, CX

loop32:
	UNPACK32(SI)
	SIGNED4(X4)
	SIGNED4(X6)
	WIDEN4S
	VMULPS  Y15, Y7, Y7
	VMULPS  Y15, Y8, Y8
	VMULPS  Y15, Y9, Y9
	VMULPS  Y15, Y10, Y10
	VMOVUPS Y7, (DI)
	VMOVUPS Y8, 32(DI)
	VMOVUPS Y9, 64(DI)
	VMOVUPS Y10, 96(DI)
	ADDQ    $16, SI
	ADDQ    $128, DI
	SUBQ    $32, AX
	JNZ     loop32

	TESTQ CX, CX
	JNZ   block

done:
	VZEROUPPER
	RET

// func decodeLUT8AVX(dst *float32, idx unsafe.Pointer, lut *[256]float32, cols int)
TEXT ·decodeLUT8AVX(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ idx+8(FP), SI
	MOVQ lut+16(FP), R10
	MOVQ cols+24(FP), CX

loop8:
	CMPQ       CX, $8
	JL         loop1
	LOOKUP8(0, Y4, X4)
	VMOVUPS    Y4, (DI)
	ADDQ       $8, SI
	ADDQ       $32, DI
	SUBQ       $8, CX
	JMP        loop8

loop1:
	TESTQ   CX, CX
	JZ      done
	MOVBLZX (SI), AX
	MOVL    (R10)(AX*4), BX
	MOVL    BX, (DI)
	ADDQ    $1, SI
	ADDQ    $4, DI
	DECQ    CX
	JMP     loop1

done:
	VZEROUPPER
	RET

// func decodeLUT4AVX(dst *float32, idx unsafe.Pointer, lut *[16]float32, cols int)
// cols is a multiple of 32.
TEXT ·decodeLUT4AVX(SB), NOSPLIT, $0-32
	MOVQ  dst+0(FP), DI
	MOVQ  idx+8(FP), SI
	MOVQ  lut+16(FP), R10
	MOVQ  cols+24(FP), CX
	TESTQ CX, CX
	JZ    done
	NIBBLEMASKS
	VMOVUPS (R10), Y11
	VMOVUPS 32(R10), Y12

loop32:
	UNPACK32(SI)
	WIDEN4U
	LOOKUP16(Y7)
	VMOVUPS Y4, (DI)
	LOOKUP16(Y8)
	VMOVUPS Y4, 32(DI)
	LOOKUP16(Y9)
	VMOVUPS Y4, 64(DI)
	LOOKUP16(Y10)
	VMOVUPS Y4, 96(DI)
	ADDQ    $16, SI
	ADDQ    $128, DI
	SUBQ    $32, CX
	JNZ     loop32

done:
	VZEROUPPER
	RET

// func dot2x4AVX(w, x *float32, wstride, xstride, cols int, out *[8]float32)
// out[4*r+v] = Σ_c w[r][c]·x[v][c] for rows r < 2 at w + r*wstride bytes and
// vectors v < 4 at x + v*xstride bytes. Each loaded x vector serves both
// rows, halving the x traffic of two dot4 calls. Y0-Y3 accumulate row 0,
// Y4-Y7 row 1.
TEXT ·dot2x4AVX(SB), NOSPLIT, $0-48
	MOVQ w+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ wstride+16(FP), R10
	MOVQ xstride+24(FP), R11
	MOVQ cols+32(FP), CX
	MOVQ out+40(FP), DX
	LEAQ (R11)(R11*2), R12
	ZERO4
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7

loop8:
	CMPQ        CX, $8
	JL          reduce
	VMOVUPS     (SI), Y8
	VMOVUPS     (SI)(R10*1), Y9
	VMOVUPS     (DI), Y10
	VMOVUPS     (DI)(R11*1), Y11
	VMOVUPS     (DI)(R11*2), Y12
	VMOVUPS     (DI)(R12*1), Y13
	VFMADD231PS Y10, Y8, Y0
	VFMADD231PS Y11, Y8, Y1
	VFMADD231PS Y12, Y8, Y2
	VFMADD231PS Y13, Y8, Y3
	VFMADD231PS Y10, Y9, Y4
	VFMADD231PS Y11, Y9, Y5
	VFMADD231PS Y12, Y9, Y6
	VFMADD231PS Y13, Y9, Y7
	ADDQ        $32, SI
	ADDQ        $32, DI
	SUBQ        $8, CX
	JMP         loop8

reduce:
	HSUM(Y0, X0, X8)
	HSUM(Y1, X1, X8)
	HSUM(Y2, X2, X8)
	HSUM(Y3, X3, X8)
	HSUM(Y4, X4, X8)
	HSUM(Y5, X5, X8)
	HSUM(Y6, X6, X8)
	HSUM(Y7, X7, X8)

loop1:
	TESTQ       CX, CX
	JZ          done
	VMOVSS      (SI), X8
	VMOVSS      (SI)(R10*1), X9
	VMOVSS      (DI), X10
	VMOVSS      (DI)(R11*1), X11
	VMOVSS      (DI)(R11*2), X12
	VMOVSS      (DI)(R12*1), X13
	VFMADD231SS X10, X8, X0
	VFMADD231SS X11, X8, X1
	VFMADD231SS X12, X8, X2
	VFMADD231SS X13, X8, X3
	VFMADD231SS X10, X9, X4
	VFMADD231SS X11, X9, X5
	VFMADD231SS X12, X9, X6
	VFMADD231SS X13, X9, X7
	ADDQ        $4, SI
	ADDQ        $4, DI
	DECQ        CX
	JMP         loop1

done:
	VMOVSS X0, (DX)
	VMOVSS X1, 4(DX)
	VMOVSS X2, 8(DX)
	VMOVSS X3, 12(DX)
	VMOVSS X4, 16(DX)
	VMOVSS X5, 20(DX)
	VMOVSS X6, 24(DX)
	VMOVSS X7, 28(DX)
	VZEROUPPER
	RET

// func readSumAVX(p unsafe.Pointer, n int) uint64
// The benchmarks' streaming-read baseline: adds the uint64s of n bytes (a
// multiple of 128) with four independent 256-bit accumulators.
TEXT ·readSumAVX(SB), NOSPLIT, $0-24
	MOVQ   p+0(FP), SI
	MOVQ   n+8(FP), CX
	VPXOR  Y0, Y0, Y0
	VPXOR  Y1, Y1, Y1
	VPXOR  Y2, Y2, Y2
	VPXOR  Y3, Y3, Y3
	TESTQ  CX, CX
	JZ     reduce

loop:
	VPADDQ (SI), Y0, Y0
	VPADDQ 32(SI), Y1, Y1
	VPADDQ 64(SI), Y2, Y2
	VPADDQ 96(SI), Y3, Y3
	ADDQ   $128, SI
	SUBQ   $128, CX
	JNZ    loop

reduce:
	VPADDQ       Y1, Y0, Y0
	VPADDQ       Y3, Y2, Y2
	VPADDQ       Y2, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPADDQ       X1, X0, X0
	VPSHUFD      $0x4e, X0, X1
	VPADDQ       X1, X0, X0
	VMOVQ        X0, AX
	VZEROUPPER
	MOVQ         AX, ret+16(FP)
	RET

// func gemvLUT8AVX512(idx unsafe.Pointer, lut *[256]float32, lut16 unsafe.Pointer, x, xp, dst *float32, rows, cols int)
//
// The LUT8 product with AVX-512 VBMI byte permutes instead of one scalar load per weight.
// The group's fp16 table (lut16, 512 bytes) is split at entry into its 256 low bytes (Z20-Z23)
// and its 256 high bytes (Z24-Z27). Each 64 indices are looked up in both halves with four
// VPERMI2B (128 entries each, bit 7 picks the half) and joined into fp16 words by VPUNPCKLBW /
// VPUNPCKHBW, which leave the words in 128-bit-lane order: columns 0-7 and 16-23 of a 32-column
// step in one ymm, 8-15 and 24-31 in the other. VCVTPH2PS widens them exactly (the values
// gemvLUT8AVX reads from lut), and xp holds x's first cols&^63 entries in that order (the 8-float
// groups 1 and 2, 5 and 6 of every 64 swapped; lut8Permute).
//
// The sums are bit-identical to gemvLUT8AVX: Z0 holds its Y0 and Y2 side by side, Z1 its Y1
// and Y3, so every lane sees the same fused multiply-adds in the same order. After the
// 64-column steps Z0, Z1 are split back into Y0-Y3 and gemvLUT8AVX's own 32-, 8- and 1-column
// steps (LOOKUP8 from lut, which the caller fills only when cols is not a multiple of 64)
// finish the row. (Two rows interleaved measured 3x slower from memory: the hardware
// prefetcher does not follow two rows alternating within a page.)

// SPLIT64(off, ZL, ZH): the low and high bytes of the 64 fp16 table entries at off(AX).
#define SPLIT64(off, ZL, ZH) \
	VMOVDQU16    off(AX), Z28; \
	VMOVDQU16    off+64(AX), Z29; \
	VPMOVWB      Z28, Y30; \
	VPMOVWB      Z29, Y31; \
	VINSERTI64X4 $1, Y31, Z30, ZL; \
	VPSRLW       $8, Z28, Z28; \
	VPSRLW       $8, Z29, Z29; \
	VPMOVWB      Z28, Y30; \
	VPMOVWB      Z29, Y31; \
	VINSERTI64X4 $1, Y31, Z30, ZH

// LOOKUP64(R): the low (Z17) and high (Z19) bytes of the table entries of the 64 indices at (R).
#define LOOKUP64(R) \
	VMOVDQU8  (R), Z16; \
	VPMOVB2M  Z16, K1; \
	VMOVDQA64 Z16, Z17; \
	VPERMI2B  Z21, Z20, Z17; \
	VMOVDQA64 Z16, Z18; \
	VPERMI2B  Z23, Z22, Z18; \
	VPBLENDMB Z18, Z17, K1, Z17; \
	VMOVDQA64 Z16, Z19; \
	VPERMI2B  Z25, Z24, Z19; \
	VMOVDQA64 Z16, Z18; \
	VPERMI2B  Z27, Z26, Z18; \
	VPBLENDMB Z18, Z19, K1, Z19

// ACC64(ZA, ZB): the 64 weights of Z17/Z19 times xp at R13 into the sums ZA (Y0|Y2), ZB (Y1|Y3).
#define ACC64(ZA, ZB) \
	VPUNPCKLBW    Z19, Z17, Z28; \
	VPUNPCKHBW    Z19, Z17, Z29; \
	VCVTPH2PS     Y28, Z30; \
	VFMADD231PS   (R13), Z30, ZA; \
	VCVTPH2PS     Y29, Z31; \
	VFMADD231PS   64(R13), Z31, ZB; \
	VEXTRACTI64X4 $1, Z28, Y28; \
	VEXTRACTI64X4 $1, Z29, Y29; \
	VCVTPH2PS     Y28, Z30; \
	VFMADD231PS   128(R13), Z30, ZA; \
	VCVTPH2PS     Y29, Z31; \
	VFMADD231PS   192(R13), Z31, ZB

TEXT ·gemvLUT8AVX512(SB), NOSPLIT, $0-64
	MOVQ  idx+0(FP), SI
	MOVQ  lut+8(FP), R10
	MOVQ  lut16+16(FP), AX
	MOVQ  x+24(FP), R8
	MOVQ  dst+40(FP), DX
	MOVQ  rows+48(FP), BX
	MOVQ  cols+56(FP), R9
	TESTQ BX, BX
	JZ    done
	SPLIT64(0, Z20, Z24)
	SPLIT64(128, Z21, Z25)
	SPLIT64(256, Z22, Z26)
	SPLIT64(384, Z23, Z27)

next:
	MOVQ   R8, DI
	MOVQ   xp+32(FP), R13
	MOVQ   R9, CX
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1

loop64:
	CMPQ CX, $64
	JL   tail
	LOOKUP64(SI)
	ACC64(Z0, Z1)
	ADDQ $64, SI
	ADDQ $256, DI
	ADDQ $256, R13
	SUBQ $64, CX
	JMP  loop64

tail:
	VEXTRACTF64X4 $1, Z0, Y2
	VEXTRACTF64X4 $1, Z1, Y3

loop32:
	CMPQ        CX, $32
	JL          loop8
	LOOKUP8(0, Y4, X4)
	VFMADD231PS (DI), Y4, Y0
	LOOKUP8(8, Y6, X6)
	VFMADD231PS 32(DI), Y6, Y1
	LOOKUP8(16, Y4, X4)
	VFMADD231PS 64(DI), Y4, Y2
	LOOKUP8(24, Y6, X6)
	VFMADD231PS 96(DI), Y6, Y3
	ADDQ        $32, SI
	ADDQ        $128, DI
	SUBQ        $32, CX
	JMP         loop32

loop8:
	CMPQ        CX, $8
	JL          reduce
	LOOKUP8(0, Y4, X4)
	VFMADD231PS (DI), Y4, Y0
	ADDQ        $8, SI
	ADDQ        $32, DI
	SUBQ        $8, CX
	JMP         loop8

reduce:
	SUM4

loop1:
	TESTQ       CX, CX
	JZ          store
	MOVBLZX     (SI), AX
	VMOVSS      (R10)(AX*4), X4
	VFMADD231SS (DI), X4, X0
	ADDQ        $1, SI
	ADDQ        $4, DI
	DECQ        CX
	JMP         loop1

store:
	VMOVSS X0, (DX)
	ADDQ   $4, DX
	DECQ   BX
	JNZ    next

done:
	VZEROUPPER
	RET

// func decodeLUT8AVX512(dst *float32, idx, lut16 unsafe.Pointer, cols int)
// Decodes cols (a multiple of 64) LUT8 indices through the fp16 table lut16 with byte permutes,
// as gemvLUT8AVX512 looks them up; the words are formed in column order (zero-extended low
// bytes OR high bytes shifted up) and widened exactly.
TEXT ·decodeLUT8AVX512(SB), NOSPLIT, $0-32
	MOVQ  dst+0(FP), DI
	MOVQ  idx+8(FP), SI
	MOVQ  lut16+16(FP), AX
	MOVQ  cols+24(FP), CX
	TESTQ CX, CX
	JZ    ddone
	SPLIT64(0, Z20, Z24)
	SPLIT64(128, Z21, Z25)
	SPLIT64(256, Z22, Z26)
	SPLIT64(384, Z23, Z27)

dloop:
	LOOKUP64(SI)
	VPMOVZXBW     Y17, Z28
	VPMOVZXBW     Y19, Z29
	VPSLLW        $8, Z29, Z29
	VPORQ         Z29, Z28, Z28
	VCVTPH2PS     Y28, Z30
	VMOVUPS       Z30, (DI)
	VEXTRACTI64X4 $1, Z28, Y28
	VCVTPH2PS     Y28, Z31
	VMOVUPS       Z31, 64(DI)
	VEXTRACTI64X4 $1, Z17, Y17
	VEXTRACTI64X4 $1, Z19, Y19
	VPMOVZXBW     Y17, Z28
	VPMOVZXBW     Y19, Z29
	VPSLLW        $8, Z29, Z29
	VPORQ         Z29, Z28, Z28
	VCVTPH2PS     Y28, Z30
	VMOVUPS       Z30, 128(DI)
	VEXTRACTI64X4 $1, Z28, Y28
	VCVTPH2PS     Y28, Z31
	VMOVUPS       Z31, 192(DI)
	ADDQ          $64, SI
	ADDQ          $256, DI
	SUBQ          $64, CX
	JNZ           dloop

ddone:
	VZEROUPPER
	RET
