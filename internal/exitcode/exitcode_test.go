package exitcode

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
)

func TestOf(t *testing.T) {
	base := errors.New("boom")
	cases := []struct {
		err  error
		want int
	}{
		{nil, OK},
		{base, Internal},
		{Bad(base), BadInput},
		{fmt.Errorf("opening: %w", Bad(base)), BadInput},
		{Wrap(GateFailed, base), GateFailed},
		{Wrap(Drift, fmt.Errorf("x: %w", Bad(base))), Drift},
		{Badf("flag --x: %w", base), BadInput},
		{fmt.Errorf("writing: %w", &os.PathError{Op: "write", Path: "/out/x", Err: syscall.ENOSPC}), BadInput},
		{&os.PathError{Op: "mkdir", Path: "/ro/x", Err: syscall.EROFS}, BadInput},
		{&os.PathError{Op: "open", Path: "/x", Err: syscall.EACCES}, BadInput},
		{&os.PathError{Op: "open", Path: "/x", Err: syscall.EIO}, BadInput},
		{&os.PathError{Op: "mmap", Path: "/x", Err: syscall.EINVAL}, Internal},
		{Wrap(Interrupted, base), Interrupted},
	}
	for i, c := range cases {
		if got := Of(c.err); got != c.want {
			t.Errorf("case %d: Of(%v) = %d, want %d", i, c.err, got, c.want)
		}
	}
	if !errors.Is(Badf("wrapped: %w", base), base) {
		t.Error("Badf lost the wrapped error")
	}
	if Bad(nil) != nil {
		t.Error("Bad(nil) should stay nil")
	}
}
