package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"qconv/internal/exitcode"
)

// signalContext is cancelled by SIGINT or SIGTERM; sig reports which arrived (nil for none).
func signalContext() (ctx context.Context, sig func() os.Signal, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	var got atomic.Value
	done := make(chan struct{})
	go func() {
		select {
		case s := <-ch:
			got.Store(s)
			cancel()
		case <-done:
		}
	}()
	sig = func() os.Signal {
		s, _ := got.Load().(os.Signal)
		return s
	}
	stop = func() {
		signal.Stop(ch)
		close(done)
		cancel()
	}
	return ctx, sig, stop
}

// interrupted is the error of a run stopped by s after its clean-up: exit 130 for SIGINT, 143
// for SIGTERM.
func interrupted(s os.Signal) error {
	code, name := exitcode.Interrupted, "interrupted (SIGINT)"
	if s == syscall.SIGTERM {
		code, name = exitcode.Terminated, "terminated (SIGTERM)"
	}
	return exitcode.Wrap(code, fmt.Errorf("%s: nothing was published, existing bundles are untouched", name))
}

// finishRun turns a long run's outcome into the command's result: a run stopped by a signal is
// exit 130/143 (its clean-up is done); otherwise the summary goes to stderr and, with --json,
// the document to stdout.
func finishRun[R any](res *R, err error, sig func() os.Signal, asJSON bool, print func(*R)) error {
	if errors.Is(err, context.Canceled) {
		return interrupted(sig())
	}
	if res != nil {
		print(res)
		if asJSON {
			if jerr := writeJSON(res); jerr != nil && err == nil {
				err = jerr
			}
		}
	}
	return err
}
