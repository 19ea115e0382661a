package kernels

import "fmt"

// Elementwise float32 arithmetic for the graph interpreter's binary ops. Each element is one
// IEEE operation on its operands, exactly what the Go expression computes, whichever path
// runs: op is '+', '-', '*' or '/'.

// BinVV sets dst[i] = a[i] op b[i]. It panics on an unknown op or short operands.
func BinVV(op byte, dst, a, b []float32) {
	n := len(dst)
	if len(a) < n || len(b) < n {
		panic(fmt.Sprintf("kernels: BinVV: operands of %d and %d for %d results", len(a), len(b), n))
	}
	if n == 0 {
		return
	}
	if !useAsm {
		binVVGo(op, dst, a[:n], b[:n])
		return
	}
	switch op {
	case '+':
		addVVAVX(&dst[0], &a[0], &b[0], n)
	case '-':
		subVVAVX(&dst[0], &a[0], &b[0], n)
	case '*':
		mulVVAVX(&dst[0], &a[0], &b[0], n)
	case '/':
		divVVAVX(&dst[0], &a[0], &b[0], n)
	default:
		panic(fmt.Sprintf("kernels: BinVV: op %q", op))
	}
}

// BinVS sets dst[i] = a[i] op y. It panics on an unknown op or a short operand.
func BinVS(op byte, dst, a []float32, y float32) {
	n := len(dst)
	if len(a) < n {
		panic(fmt.Sprintf("kernels: BinVS: operand of %d for %d results", len(a), n))
	}
	if n == 0 {
		return
	}
	if !useAsm {
		binVSGo(op, dst, a[:n], y)
		return
	}
	switch op {
	case '+':
		addVSAVX(&dst[0], &a[0], n, y)
	case '-':
		subVSAVX(&dst[0], &a[0], n, y)
	case '*':
		mulVSAVX(&dst[0], &a[0], n, y)
	case '/':
		divVSAVX(&dst[0], &a[0], n, y)
	default:
		panic(fmt.Sprintf("kernels: BinVS: op %q", op))
	}
}

// BinSV sets dst[i] = x op b[i]. It panics on an unknown op or a short operand.
func BinSV(op byte, dst []float32, x float32, b []float32) {
	n := len(dst)
	if len(b) < n {
		panic(fmt.Sprintf("kernels: BinSV: operand of %d for %d results", len(b), n))
	}
	if n == 0 {
		return
	}
	if !useAsm {
		binSVGo(op, dst, x, b[:n])
		return
	}
	switch op {
	case '+':
		addSVAVX(&dst[0], &b[0], n, x)
	case '-':
		subSVAVX(&dst[0], &b[0], n, x)
	case '*':
		mulSVAVX(&dst[0], &b[0], n, x)
	case '/':
		divSVAVX(&dst[0], &b[0], n, x)
	default:
		panic(fmt.Sprintf("kernels: BinSV: op %q", op))
	}
}

// AccF64 adds float64(x[i]) to acc[i]. It panics if x is shorter than acc.
func AccF64(acc []float64, x []float32) {
	n := len(acc)
	if len(x) < n {
		panic(fmt.Sprintf("kernels: AccF64: %d values for %d sums", len(x), n))
	}
	if n == 0 {
		return
	}
	if !useAsm {
		for i := range acc {
			acc[i] += float64(x[i])
		}
		return
	}
	accF64AVX(&acc[0], &x[0], n)
}

func binOne(op byte, x, y float32) float32 {
	switch op {
	case '+':
		return x + y
	case '-':
		return x - y
	case '*':
		return x * y
	case '/':
		return x / y
	}
	panic(fmt.Sprintf("kernels: elementwise op %q", op))
}

func binVVGo(op byte, dst, a, b []float32) {
	for i := range dst {
		dst[i] = binOne(op, a[i], b[i])
	}
}

func binVSGo(op byte, dst, a []float32, y float32) {
	for i := range dst {
		dst[i] = binOne(op, a[i], y)
	}
}

func binSVGo(op byte, dst []float32, x float32, b []float32) {
	for i := range dst {
		dst[i] = binOne(op, x, b[i])
	}
}
