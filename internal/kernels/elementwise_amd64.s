//go:build amd64 && !purego

#include "textflag.h"

// Elementwise float32 arithmetic, eight lanes at a time. Each result is the one IEEE
// operation on its two operands (no fused multiply-add, no reassociation), so every
// element equals what the scalar Go expression computes.

// BINVV(name, VOP, SOP): dst[i] = a[i] op b[i].
#define BINVV(name, VOP, SOP) \
TEXT name(SB), NOSPLIT, $0-32; \
	MOVQ dst+0(FP), DX; \
	MOVQ a+8(FP), SI; \
	MOVQ b+16(FP), DI; \
	MOVQ n+24(FP), CX; \
loop32: \
	CMPQ    CX, $32; \
	JL      loop8; \
	VMOVUPS (SI), Y0; \
	VMOVUPS 32(SI), Y1; \
	VMOVUPS 64(SI), Y2; \
	VMOVUPS 96(SI), Y3; \
	VOP     (DI), Y0, Y0; \
	VOP     32(DI), Y1, Y1; \
	VOP     64(DI), Y2, Y2; \
	VOP     96(DI), Y3, Y3; \
	VMOVUPS Y0, (DX); \
	VMOVUPS Y1, 32(DX); \
	VMOVUPS Y2, 64(DX); \
	VMOVUPS Y3, 96(DX); \
	ADDQ    $128, SI; \
	ADDQ    $128, DI; \
	ADDQ    $128, DX; \
	SUBQ    $32, CX; \
	JMP     loop32; \
loop8: \
	CMPQ    CX, $8; \
	JL      loop1; \
	VMOVUPS (SI), Y0; \
	VOP     (DI), Y0, Y0; \
	VMOVUPS Y0, (DX); \
	ADDQ    $32, SI; \
	ADDQ    $32, DI; \
	ADDQ    $32, DX; \
	SUBQ    $8, CX; \
	JMP     loop8; \
loop1: \
	TESTQ   CX, CX; \
	JZ      done; \
	VMOVSS  (SI), X0; \
	SOP     (DI), X0, X0; \
	VMOVSS  X0, (DX); \
	ADDQ    $4, SI; \
	ADDQ    $4, DI; \
	ADDQ    $4, DX; \
	DECQ    CX; \
	JMP     loop1; \
done: \
	VZEROUPPER; \
	RET

// BINVS(name, VOP, SOP): dst[i] = a[i] op y.
#define BINVS(name, VOP, SOP) \
TEXT name(SB), NOSPLIT, $0-36; \
	MOVQ         dst+0(FP), DX; \
	MOVQ         a+8(FP), SI; \
	MOVQ         n+16(FP), CX; \
	VBROADCASTSS y+24(FP), Y15; \
loop32: \
	CMPQ    CX, $32; \
	JL      loop8; \
	VMOVUPS (SI), Y0; \
	VMOVUPS 32(SI), Y1; \
	VMOVUPS 64(SI), Y2; \
	VMOVUPS 96(SI), Y3; \
	VOP     Y15, Y0, Y0; \
	VOP     Y15, Y1, Y1; \
	VOP     Y15, Y2, Y2; \
	VOP     Y15, Y3, Y3; \
	VMOVUPS Y0, (DX); \
	VMOVUPS Y1, 32(DX); \
	VMOVUPS Y2, 64(DX); \
	VMOVUPS Y3, 96(DX); \
	ADDQ    $128, SI; \
	ADDQ    $128, DX; \
	SUBQ    $32, CX; \
	JMP     loop32; \
loop8: \
	CMPQ    CX, $8; \
	JL      loop1; \
	VMOVUPS (SI), Y0; \
	VOP     Y15, Y0, Y0; \
	VMOVUPS Y0, (DX); \
	ADDQ    $32, SI; \
	ADDQ    $32, DX; \
	SUBQ    $8, CX; \
	JMP     loop8; \
loop1: \
	TESTQ   CX, CX; \
	JZ      done; \
	VMOVSS  (SI), X0; \
	SOP     X15, X0, X0; \
	VMOVSS  X0, (DX); \
	ADDQ    $4, SI; \
	ADDQ    $4, DX; \
	DECQ    CX; \
	JMP     loop1; \
done: \
	VZEROUPPER; \
	RET

// BINSV(name, VOP, SOP): dst[i] = x op b[i].
#define BINSV(name, VOP, SOP) \
TEXT name(SB), NOSPLIT, $0-36; \
	MOVQ         dst+0(FP), DX; \
	MOVQ         b+8(FP), SI; \
	MOVQ         n+16(FP), CX; \
	VBROADCASTSS x+24(FP), Y15; \
loop32: \
	CMPQ    CX, $32; \
	JL      loop8; \
	VOP     (SI), Y15, Y0; \
	VOP     32(SI), Y15, Y1; \
	VOP     64(SI), Y15, Y2; \
	VOP     96(SI), Y15, Y3; \
	VMOVUPS Y0, (DX); \
	VMOVUPS Y1, 32(DX); \
	VMOVUPS Y2, 64(DX); \
	VMOVUPS Y3, 96(DX); \
	ADDQ    $128, SI; \
	ADDQ    $128, DX; \
	SUBQ    $32, CX; \
	JMP     loop32; \
loop8: \
	CMPQ    CX, $8; \
	JL      loop1; \
	VOP     (SI), Y15, Y0; \
	VMOVUPS Y0, (DX); \
	ADDQ    $32, SI; \
	ADDQ    $32, DX; \
	SUBQ    $8, CX; \
	JMP     loop8; \
loop1: \
	TESTQ   CX, CX; \
	JZ      done; \
	SOP     (SI), X15, X0; \
	VMOVSS  X0, (DX); \
	ADDQ    $4, SI; \
	ADDQ    $4, DX; \
	DECQ    CX; \
	JMP     loop1; \
done: \
	VZEROUPPER; \
	RET

// func addVVAVX(dst, a, b *float32, n int)
BINVV(·addVVAVX, VADDPS, VADDSS)
// func subVVAVX(dst, a, b *float32, n int)
BINVV(·subVVAVX, VSUBPS, VSUBSS)
// func mulVVAVX(dst, a, b *float32, n int)
BINVV(·mulVVAVX, VMULPS, VMULSS)
// func divVVAVX(dst, a, b *float32, n int)
BINVV(·divVVAVX, VDIVPS, VDIVSS)

// func addVSAVX(dst, a *float32, n int, y float32)
BINVS(·addVSAVX, VADDPS, VADDSS)
// func subVSAVX(dst, a *float32, n int, y float32)
BINVS(·subVSAVX, VSUBPS, VSUBSS)
// func mulVSAVX(dst, a *float32, n int, y float32)
BINVS(·mulVSAVX, VMULPS, VMULSS)
// func divVSAVX(dst, a *float32, n int, y float32)
BINVS(·divVSAVX, VDIVPS, VDIVSS)

// func addSVAVX(dst, b *float32, n int, x float32)
BINSV(·addSVAVX, VADDPS, VADDSS)
// func subSVAVX(dst, b *float32, n int, x float32)
BINSV(·subSVAVX, VSUBPS, VSUBSS)
// func mulSVAVX(dst, b *float32, n int, x float32)
BINSV(·mulSVAVX, VMULPS, VMULSS)
// func divSVAVX(dst, b *float32, n int, x float32)
BINSV(·divSVAVX, VDIVPS, VDIVSS)

// func accF64AVX(acc *float64, x *float32, n int)
// acc[i] += float64(x[i]): the widening is exact, the add is one IEEE double addition.
TEXT ·accF64AVX(SB), NOSPLIT, $0-24
	MOVQ acc+0(FP), DX
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX

loop8:
	CMPQ      CX, $8
	JL        loop1
	VCVTPS2PD (SI), Y0
	VCVTPS2PD 16(SI), Y1
	VADDPD    (DX), Y0, Y0
	VADDPD    32(DX), Y1, Y1
	VMOVUPD   Y0, (DX)
	VMOVUPD   Y1, 32(DX)
	ADDQ      $32, SI
	ADDQ      $64, DX
	SUBQ      $8, CX
	JMP       loop8

loop1:
	TESTQ     CX, CX
	JZ        done
	VMOVSS    (SI), X0
	VCVTSS2SD X0, X0, X0
	VADDSD    (DX), X0, X0
	VMOVSD    X0, (DX)
	ADDQ      $4, SI
	ADDQ      $8, DX
	DECQ      CX
	JMP       loop1

done:
	VZEROUPPER
	RET
