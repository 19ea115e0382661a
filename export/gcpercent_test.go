package export

import (
	"runtime/debug"
	"testing"
)

// Gates of a big checkpoint run under gateGCPercent; a small one keeps the runtime's target (its
// heap is small and a lower target only collects more often); GOGC set by the user always wins.
func TestTightenGCBySize(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	t.Setenv("GOGC", "")
	for _, c := range []struct {
		params int64
		want   int
	}{{1_000_000, 100}, {tightGCParams - 1, 100}, {tightGCParams, gateGCPercent}, {800_000_000, gateGCPercent}} {
		restore := tightenGC(c.params)
		if got := debug.SetGCPercent(c.want); got != c.want {
			t.Errorf("%d parameters: GC percent %d during the gates, want %d", c.params, got, c.want)
		}
		restore()
		if got := debug.SetGCPercent(100); got != 100 {
			t.Errorf("%d parameters: GC percent %d after the gates, want 100 restored", c.params, got)
		}
	}
	t.Setenv("GOGC", "100")
	restore := tightenGC(800_000_000)
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC set: GC percent %d, want the user's 100", got)
	}
	restore()
}
