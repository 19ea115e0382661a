// Package exitcode classifies errors into the process exit codes of the qconv CLI contract:
// 0 ok, 1 internal error, 2 bad input, usage or environment (read-only or full disk, permission
// denied, I/O error), 3 gate failed, 4 --check found drift, 130/143 interrupted by SIGINT/SIGTERM
// (docs/cli.md, "Exit codes").
//
// Packages mark an error once, where they know whose fault it is (a malformed checkpoint is the
// input's fault; a failed write is not); the command layer only maps the class to a code.
package exitcode

import (
	"errors"
	"fmt"
	"syscall"
)

// Codes of the CLI contract.
const (
	OK         = 0
	Internal   = 1
	BadInput   = 2
	GateFailed = 3
	Drift      = 4
	// Interrupted and Terminated are the shell's 128+signal codes, returned after clean-up.
	Interrupted = 130
	Terminated  = 143
)

// classified carries an exit code alongside the error it wraps.
type classified struct {
	code int
	err  error
}

func (e *classified) Error() string { return e.err.Error() }
func (e *classified) Unwrap() error { return e.err }

// Wrap marks err with code; nil stays nil.
func Wrap(code int, err error) error {
	if err == nil {
		return nil
	}
	return &classified{code: code, err: err}
}

// Bad marks err as bad input (exit code 2).
func Bad(err error) error { return Wrap(BadInput, err) }

// Badf formats a bad-input error (exit code 2). %w is honoured.
func Badf(format string, args ...any) error { return Bad(fmt.Errorf(format, args...)) }

// environment are the errnos that mean the machine, not qconv, refused: the disk is full or
// read-only, or the user may not write there. Their errors name the path (os.PathError).
var environment = []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EROFS, syscall.EACCES, syscall.EPERM, syscall.ENOTDIR, syscall.EIO}

// IsEnvironment reports whether err is a refusal by the environment (see environment).
func IsEnvironment(err error) bool {
	for _, e := range environment {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Of returns the exit code for err: 0 for nil, the outermost classification found in the chain,
// BadInput for an unclassified environment error (disk full, read-only, permission denied), and
// Internal for any other unclassified error.
func Of(err error) int {
	if err == nil {
		return OK
	}
	var c *classified
	if errors.As(err, &c) {
		return c.code
	}
	if IsEnvironment(err) {
		return BadInput
	}
	return Internal
}
