//go:build amd64 && !purego

#include "textflag.h"

// BCAST broadcasts the 32-bit constant C to every lane of ymm Y (via AX and xmm X).
#define BCAST(C, X, Y) \
	MOVL         C, AX; \
	VMOVD        AX, X; \
	VPBROADCASTD X, Y

// func roundBF16AVX(x *float32, n int)
// Rounds n (a multiple of 8) float32 values in place to bfloat16 precision:
// round to nearest, ties to even, on the bit pattern (u + 0x7fff + bit16) with
// the low half cleared; a NaN gets its quiet bit set and its low half cleared
// instead, so no payload can carry into the exponent or sign.
TEXT ·roundBF16AVX(SB), NOSPLIT, $0-16
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	BCAST($0x00007fff, X4, Y4)
	BCAST($0x00000001, X5, Y5)
	BCAST($0xffff0000, X6, Y6)
	BCAST($0x7fffffff, X7, Y7)
	BCAST($0x7f800000, X8, Y8)
	BCAST($0x00400000, X9, Y9)

loop8:
	CMPQ      CX, $8
	JL        done
	VMOVDQU   (SI), Y0
	VPSRLD    $16, Y0, Y1
	VPAND     Y5, Y1, Y1
	VPADDD    Y4, Y1, Y1
	VPADDD    Y0, Y1, Y1
	VPAND     Y7, Y0, Y2
	VPCMPGTD  Y8, Y2, Y2
	VPOR      Y9, Y0, Y3
	VPBLENDVB Y2, Y3, Y1, Y1
	VPAND     Y6, Y1, Y1
	VMOVDQU   Y1, (SI)
	ADDQ      $32, SI
	SUBQ      $8, CX
	JMP       loop8

done:
	VZEROUPPER
	RET
