//go:build !amd64 || purego

package kernels

func roundBF16AVX(x *float32, n int) { noAsm() }
