package main

import (
	"fmt"
	"io"
	"os"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/sys/unix"

	"qconv/card"
	"qconv/export"
)

// newProgress draws progress on stderr: a bar per phase on an interactive terminal, otherwise
// (stderr redirected, CI set, TERM=dumb) one line per phase, so CI logs stay readable. With
// --json there are no bars, only the phase lines.
func newProgress(asJSON bool) export.Progress {
	if !asJSON && interactive(stderr) {
		return &bars{}
	}
	return &phaseLines{w: stderr}
}

// interactive reports whether w is a terminal a human watches.
func interactive(w io.Writer) bool {
	if os.Getenv("CI") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// phaseLines prints one line when a phase starts.
type phaseLines struct{ w io.Writer }

func (p *phaseLines) Phase(name string, total int64, bytes bool) {
	if bytes {
		fmt.Fprintf(p.w, "%s: %s\n", name, card.FormatSize(total))
		return
	}
	fmt.Fprintf(p.w, "%s\n", name)
}
func (p *phaseLines) Add(int64) {}
func (p *phaseLines) Done()     {}

// bars draws one progress bar per phase: the share done, with a byte phase's total size in its
// description and no rate (a tensor reused from an earlier bundle is not throughput).
type bars struct{ bar *progressbar.ProgressBar }

func (b *bars) Phase(name string, total int64, bytes bool) {
	if bytes {
		name += " (" + card.FormatSize(total) + ")"
	}
	b.bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription(name),
		progressbar.OptionShowBytes(false), progressbar.OptionThrottle(100_000_000), progressbar.OptionClearOnFinish())
}

func (b *bars) Add(n int64) {
	if b.bar != nil {
		b.bar.Add64(n)
	}
}

func (b *bars) Done() {
	if b.bar != nil {
		b.bar.Finish()
		b.bar = nil
	}
}
