// Package exitcode classifies errors into the process exit codes of the qconv CLI contract:
// 0 ok, 1 internal error, 2 bad input or usage, 3 gate failed, 4 --check found drift.
//
// Packages mark an error once, where they know whose fault it is (a malformed checkpoint is the
// input's fault; a failed write is not); the command layer only maps the class to a code.
package exitcode

import (
	"errors"
	"fmt"
)

// Codes of the CLI contract.
const (
	OK         = 0
	Internal   = 1
	BadInput   = 2
	GateFailed = 3
	Drift      = 4
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

// Of returns the exit code for err: 0 for nil, the outermost classification found in the chain,
// and Internal for an unclassified error.
func Of(err error) int {
	if err == nil {
		return OK
	}
	var c *classified
	if errors.As(err, &c) {
		return c.code
	}
	return Internal
}
