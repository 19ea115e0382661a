// Package testfix holds what several packages' tests share: it opens the repository's test
// checkpoints for the tests of packages one level below the module root (export, card), so the
// fixture is named and opened in one place, and compares rows bit for bit.
package testfix

import (
	"math"
	"path/filepath"
	"testing"

	"qconv/hf"
)

// Trained is the trained tiny Qwen3.5 checkpoint the end-to-end tests export (testdata/FIXTURES.md).
const Trained = "tinyqwen35-code"

// Open opens testdata/<name> as the tests spell it (../testdata/<name>) and closes it when the
// test ends.
func Open(tb testing.TB, name string) *hf.Checkpoint {
	tb.Helper()
	ck, err := hf.Open(filepath.Join("..", "testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ck.Close() })
	return ck
}

// FirstBitDiff is the first index where a and b differ bit for bit (0 when their lengths differ),
// or -1 when they are the same bits: the tests that claim two paths give identical rows use it.
func FirstBitDiff(a, b []float32) int {
	if len(a) != len(b) {
		return 0
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return i
		}
	}
	return -1
}
