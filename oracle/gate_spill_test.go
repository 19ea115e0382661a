package oracle

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// A spill that cannot be written or read back never fails or changes a gate: the prompts it
// could not hold are simply not shared, and a later gate computes them again.
func TestGateSpillFailuresFallBack(t *testing.T) {
	m, prompts, _ := gateFixture(t)
	prompts = append(prompts, longPrompt(prompts))
	opt := DefaultGateOptions()
	opt.MinConfident = 0
	fresh, err := Gate(m, damagedCandidate(m), prompts, opt)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(fresh)
	allSpans, _ := spillSize(m, prompts, opt.Tokens)
	longSpans, _ := spillSize(m, prompts[len(prompts)-1:], opt.Tokens)

	// failWrites fails every write from the nth on (a disk that stays full), or the nth only
	// (a short write once).
	failWrites := func(n int, once bool, err error) func(*trajMemo) {
		return func(memo *trajMemo) {
			k := 0
			write := memo.writeAt
			memo.writeAt = func(b []byte, off int64) (int, error) {
				k++
				if k == n || (!once && k > n) {
					if err == io.ErrShortWrite {
						write(b[:len(b)/2], off)
						return len(b) / 2, nil
					}
					return 0, err
				}
				return write(b, off)
			}
		}
	}
	for _, c := range []struct {
		name   string
		tmpdir func(t *testing.T) string // "" keeps TMPDIR
		inject func(*trajMemo)           // after ShareTrajectories
		after  func(*trajMemo)           // between the two gates
		// shared is how many prompts the first gate shares, -1: some but not all; reads the
		// spans the second gate reads back, -1: some but not all.
		shared int
		reads  int64
	}{
		{name: "TMPDIR missing", tmpdir: func(t *testing.T) string { return filepath.Join(t.TempDir(), "missing") }},
		{name: "TMPDIR read-only", tmpdir: func(t *testing.T) string {
			d := t.TempDir()
			os.Chmod(d, 0o555)
			if f, err := os.CreateTemp(d, "probe"); err == nil { // root ignores the mode
				f.Close()
				t.Skip("the mode does not stop this user writing")
			}
			return d
		}},
		{name: "tiny tmpfs", tmpdir: tinyTmpfs, shared: -1, reads: -1},
		{name: "disk full from the 5th write", inject: failWrites(5, false, syscall.ENOSPC), shared: 0},
		{name: "one short write", inject: failWrites(2, true, io.ErrShortWrite), shared: len(prompts) - 1, reads: -1},
		{name: "last prompt's rows changed on disk", after: func(memo *trajMemo) {
			st := memo.lookup(trajKey(prompts[len(prompts)-1].IDs, opt.Tokens))
			memo.f.WriteAt([]byte{1, 2, 3, 4}, st.prompt[3].off+8) // its 4th chunk: 3 already judged
		}, shared: len(prompts), reads: allSpans - longSpans + 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.tmpdir != nil {
				t.Setenv("TMPDIR", c.tmpdir(t))
			}
			err := m.ShareTrajectories()
			defer m.ReleaseTrajectories()
			if c.tmpdir != nil && c.shared == 0 {
				if err == nil || m.shared != nil {
					t.Fatalf("sharing with TMPDIR %s: %v", os.Getenv("TMPDIR"), err)
				}
				t.Logf("not shared: %v", err)
			} else if err != nil {
				t.Fatal(err)
			}
			if c.inject != nil {
				c.inject(m.shared)
			}
			first, err := Gate(m, damagedCandidate(m), prompts, opt)
			if err != nil {
				t.Fatal(err)
			}
			s1 := m.SharingStats()
			if c.after != nil {
				c.after(m.shared)
			}
			second, err := Gate(m, damagedCandidate(m), prompts, opt)
			if err != nil {
				t.Fatal(err)
			}
			s2 := m.SharingStats()
			for name, r := range map[string]*GateReport{"first": first, "second": second} {
				if got, _ := json.Marshal(r); string(got) != string(want) {
					t.Errorf("%s gate's report differs from the unshared one", name)
				}
			}
			t.Logf("after the first gate %+v, after the second %+v", s1, s2)
			switch {
			case c.shared >= 0 && s1.Trajectories != c.shared,
				c.shared < 0 && (s1.Trajectories == 0 || s1.Trajectories == len(prompts)):
				t.Errorf("%d prompts shared, want %d", s1.Trajectories, c.shared)
			case c.reads >= 0 && s2.Reads != c.reads,
				c.reads < 0 && (s2.Reads == 0 || s2.Reads >= allSpans):
				t.Errorf("%d spans read back, want %d", s2.Reads, c.reads)
			}
		})
	}
}

// tinyTmpfs mounts a 192 KiB tmpfs (root only): room for the fixture's first prompts' rows
// (4 KiB each), not for all of them.
func tinyTmpfs(t *testing.T) string {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	return dir
}
