//go:build !linux

package mlir

// fillBuffer returns an n-byte buffer for lazy resource fills and the function that releases it.
func fillBuffer(n int64) ([]byte, func()) { return make([]byte, n), func() {} }
