//go:build amd64

#include "textflag.h"

DATA absmask<>+0(SB)/4, $0x7fffffff
GLOBL absmask<>(SB), RODATA|NOPTR, $4

DATA posinf<>+0(SB)/4, $0x7f800000
GLOBL posinf<>(SB), RODATA|NOPTR, $4

// VPACKSSDW/VPACKSSWB interleave 128-bit lanes; this dword permutation puts the
// 32 bytes back in element order.
DATA packperm<>+0(SB)/4, $0
DATA packperm<>+4(SB)/4, $4
DATA packperm<>+8(SB)/4, $1
DATA packperm<>+12(SB)/4, $5
DATA packperm<>+16(SB)/4, $2
DATA packperm<>+20(SB)/4, $6
DATA packperm<>+24(SB)/4, $3
DATA packperm<>+28(SB)/4, $7
GLOBL packperm<>(SB), RODATA|NOPTR, $32

// BLOCK32 quantizes the 32 float32 values in Y0..Y3 (absmax rule): scale bits to
// (DX), q to (DI); BX keeps the largest scale pattern. Y15 = abs mask, Y14 = qmax,
// Y13 = -qmax, Y11 = packperm, X10 = +Inf.
#define BLOCK32 \
	VPAND Y0, Y15, Y4 \
	VPAND Y1, Y15, Y5 \
	VPAND Y2, Y15, Y6 \
	VPAND Y3, Y15, Y7 \
	VPMAXUD Y5, Y4, Y4 \
	VPMAXUD Y7, Y6, Y6 \
	VPMAXUD Y6, Y4, Y4 \
	VEXTRACTI128 $1, Y4, X5 \
	VPMAXUD X5, X4, X4 \
	VPSHUFD $0x4E, X4, X5 \
	VPMAXUD X5, X4, X4 \
	VPSHUFD $0xB1, X4, X5 \
	VPMAXUD X5, X4, X4 \ // every lane: max|w| bits
	VDIVSS X14, X4, X4 \ // max|w| / qmax in float32
	VCVTPS2PH $0, X4, X5 \ // round to fp16, nearest even
	VPEXTRW $0, X5, AX \
	MOVW AX, (DX) \
	CMPL AX, BX \
	CMOVLHI AX, BX \
	VCVTPH2PS X5, X6 \
	TESTL AX, AX \
	JNZ 2(PC) \
	VMOVAPS X10, X6 \ // zero scale: divide by +Inf, every q is 0
	VBROADCASTSS X6, Y6 \
	VDIVPS Y6, Y0, Y0 \
	VDIVPS Y6, Y1, Y1 \
	VDIVPS Y6, Y2, Y2 \
	VDIVPS Y6, Y3, Y3 \
	VROUNDPS $0, Y0, Y0 \ // nearest even
	VROUNDPS $0, Y1, Y1 \
	VROUNDPS $0, Y2, Y2 \
	VROUNDPS $0, Y3, Y3 \
	VMINPS Y14, Y0, Y0 \
	VMINPS Y14, Y1, Y1 \
	VMINPS Y14, Y2, Y2 \
	VMINPS Y14, Y3, Y3 \
	VMAXPS Y13, Y0, Y0 \
	VMAXPS Y13, Y1, Y1 \
	VMAXPS Y13, Y2, Y2 \
	VMAXPS Y13, Y3, Y3 \
	VCVTPS2DQ Y0, Y0 \
	VCVTPS2DQ Y1, Y1 \
	VCVTPS2DQ Y2, Y2 \
	VCVTPS2DQ Y3, Y3 \
	VPACKSSDW Y1, Y0, Y0 \
	VPACKSSDW Y3, Y2, Y2 \
	VPACKSSWB Y2, Y0, Y0 \
	VPERMD Y0, Y11, Y0 \
	VMOVDQU Y0, (DI)

#define SETUP \
	VPBROADCASTD absmask<>(SB), Y15 \
	VBROADCASTSS qmax+16(FP), Y14 \
	VXORPS Y13, Y13, Y13 \
	VSUBPS Y14, Y13, Y13 \
	VMOVDQU packperm<>(SB), Y11 \
	VMOVSS posinf<>(SB), X10 \
	XORL BX, BX

// func absmax32F32AVX2(src *float32, nblocks int, qmax float32, q *int8, scales *uint16) (maxScale uint16)
TEXT ·absmax32F32AVX2(SB), NOSPLIT, $0-42
	MOVQ src+0(FP), SI
	MOVQ nblocks+8(FP), CX
	MOVQ q+24(FP), DI
	MOVQ scales+32(FP), DX
	SETUP

f32loop:
	TESTQ CX, CX
	JZ   f32done
	VMOVUPS 0(SI), Y0
	VMOVUPS 32(SI), Y1
	VMOVUPS 64(SI), Y2
	VMOVUPS 96(SI), Y3
	BLOCK32
	ADDQ $128, SI
	ADDQ $32, DI
	ADDQ $2, DX
	DECQ CX
	JMP  f32loop

f32done:
	VZEROUPPER
	MOVW BX, maxScale+40(FP)
	RET

// func absmax32BF16AVX2(src *byte, nblocks int, qmax float32, q *int8, scales *uint16) (maxScale uint16)
TEXT ·absmax32BF16AVX2(SB), NOSPLIT, $0-42
	MOVQ src+0(FP), SI
	MOVQ nblocks+8(FP), CX
	MOVQ q+24(FP), DI
	MOVQ scales+32(FP), DX
	SETUP

bf16loop:
	TESTQ CX, CX
	JZ   bf16done
	VPMOVZXWD 0(SI), Y0
	VPMOVZXWD 16(SI), Y1
	VPMOVZXWD 32(SI), Y2
	VPMOVZXWD 48(SI), Y3
	VPSLLD $16, Y0, Y0
	VPSLLD $16, Y1, Y1
	VPSLLD $16, Y2, Y2
	VPSLLD $16, Y3, Y3
	BLOCK32
	ADDQ $64, SI
	ADDQ $32, DI
	ADDQ $2, DX
	DECQ CX
	JMP  bf16loop

bf16done:
	VZEROUPPER
	MOVW BX, maxScale+40(FP)
	RET

DATA absmask64<>+0(SB)/8, $0x7fffffffffffffff
GLOBL absmask64<>(SB), RODATA|NOPTR, $8

// METRICS8 accumulates 8 weights (float32 in Y0) against q (8 int8 at (DI))
// times the block scale in Y6: lanes 0-3 (elements 0-3) in Y7 ww, Y8 ee,
// Y9 dd, Y10 wd; lanes 4-7 in Y11..Y14; Y15 max |e|; Y5 = abs mask.
#define METRICS8 \
	VPMOVSXBD (DI), Y1 \
	VCVTDQ2PS Y1, Y1 \
	VMULPS Y6, Y1, Y1 \ // dequantized, exact in float32
	VCVTPS2PD X0, Y2 \
	VCVTPS2PD X1, Y3 \
	VEXTRACTF128 $1, Y0, X0 \
	VEXTRACTF128 $1, Y1, X1 \
	VCVTPS2PD X0, Y0 \
	VCVTPS2PD X1, Y1 \
	VMULPD Y2, Y2, Y4 \
	VADDPD Y4, Y7, Y7 \
	VMULPD Y3, Y3, Y4 \
	VADDPD Y4, Y9, Y9 \
	VMULPD Y3, Y2, Y4 \
	VADDPD Y4, Y10, Y10 \
	VSUBPD Y3, Y2, Y2 \
	VMULPD Y2, Y2, Y4 \
	VADDPD Y4, Y8, Y8 \
	VANDPD Y5, Y2, Y2 \
	VMAXPD Y2, Y15, Y15 \
	VMULPD Y0, Y0, Y4 \
	VADDPD Y4, Y11, Y11 \
	VMULPD Y1, Y1, Y4 \
	VADDPD Y4, Y13, Y13 \
	VMULPD Y1, Y0, Y4 \
	VADDPD Y4, Y14, Y14 \
	VSUBPD Y1, Y0, Y0 \
	VMULPD Y0, Y0, Y4 \
	VADDPD Y4, Y12, Y12 \
	VANDPD Y5, Y0, Y0 \
	VMAXPD Y0, Y15, Y15 \
	ADDQ $8, DI

// HSUM folds lanes lo (l0..l3) and hi (l4..l7) into (s0+s2)+(s1+s3),
// s_j = l_j + l_{j+4}, and stores it at off(AX).
#define HSUM(lo, hi, xlo, off) \
	VADDPD hi, lo, lo \
	VEXTRACTF128 $1, lo, X0 \
	VADDPD X0, xlo, xlo \
	VPERMILPD $1, xlo, X0 \
	VADDSD X0, xlo, xlo \
	VMOVSD xlo, off(AX)

#define METRICS_SETUP \
	VBROADCASTSD absmask64<>(SB), Y5 \
	VXORPD Y7, Y7, Y7 \
	VXORPD Y8, Y8, Y8 \
	VXORPD Y9, Y9, Y9 \
	VXORPD Y10, Y10, Y10 \
	VXORPD Y11, Y11, Y11 \
	VXORPD Y12, Y12, Y12 \
	VXORPD Y13, Y13, Y13 \
	VXORPD Y14, Y14, Y14 \
	VXORPD Y15, Y15, Y15

#define METRICS_STORE \
	HSUM(Y7, Y11, X7, 0) \
	HSUM(Y8, Y12, X8, 8) \
	HSUM(Y9, Y13, X9, 16) \
	HSUM(Y10, Y14, X10, 24) \
	VEXTRACTF128 $1, Y15, X0 \
	VMAXPD X0, X15, X15 \
	VPERMILPD $1, X15, X0 \
	VMAXSD X0, X15, X15 \
	VMOVSD X15, 32(AX)

// func metrics32F32AVX2(w *float32, q *int8, scales *uint16, nblocks int, out *[5]float64)
TEXT ·metrics32F32AVX2(SB), NOSPLIT, $0-40
	MOVQ w+0(FP), SI
	MOVQ q+8(FP), DI
	MOVQ scales+16(FP), DX
	MOVQ nblocks+24(FP), CX
	MOVQ out+32(FP), AX
	METRICS_SETUP

mf32block:
	TESTQ CX, CX
	JZ   mf32done
	VPBROADCASTW (DX), X6
	VCVTPH2PS X6, Y6
	MOVQ $4, BX

mf32inner:
	VMOVUPS (SI), Y0
	METRICS8
	ADDQ $32, SI
	DECQ BX
	JNZ  mf32inner
	ADDQ $2, DX
	DECQ CX
	JMP  mf32block

mf32done:
	METRICS_STORE
	VZEROUPPER
	RET

// func metrics32BF16AVX2(w *byte, q *int8, scales *uint16, nblocks int, out *[5]float64)
TEXT ·metrics32BF16AVX2(SB), NOSPLIT, $0-40
	MOVQ w+0(FP), SI
	MOVQ q+8(FP), DI
	MOVQ scales+16(FP), DX
	MOVQ nblocks+24(FP), CX
	MOVQ out+32(FP), AX
	METRICS_SETUP

mbfblock:
	TESTQ CX, CX
	JZ   mbfdone
	VPBROADCASTW (DX), X6
	VCVTPH2PS X6, Y6
	MOVQ $4, BX

mbfinner:
	VPMOVZXWD (SI), Y0
	VPSLLD $16, Y0, Y0
	METRICS8
	ADDQ $16, SI
	DECQ BX
	JNZ  mbfinner
	ADDQ $2, DX
	DECQ CX
	JMP  mbfblock

mbfdone:
	METRICS_STORE
	VZEROUPPER
	RET
