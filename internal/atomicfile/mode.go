// Package atomicfile writes files so that readers see the old content or the new, never a part,
// with the modes the process umask gives (as mkdir(1) and a shell redirection do).
package atomicfile

import (
	"bufio"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Everything qconv writes follows the process umask, as mkdir(1) and a shell redirection do:
// under the usual umask 022 bundle directories are 0755 and files 0644, readable by other users
// and by a web server (docs/cli.md, "File modes").
const (
	// DirPerm is the permission new directories are created with, before the umask.
	DirPerm os.FileMode = 0o777
	// FilePerm is the permission new files are created with, before the umask.
	FilePerm os.FileMode = 0o666
)

// processUmask is the process umask, read from /proc/self/status without changing it; where
// that is unavailable it is set and put back (022 meanwhile, never more permissive).
func processUmask() os.FileMode {
	if f, err := os.Open("/proc/self/status"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "Umask:"); ok {
				if m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
					return os.FileMode(m)
				}
			}
		}
	}
	old := unix.Umask(0o022)
	unix.Umask(old)
	return os.FileMode(old)
}

// DirMode is the mode mkdir would give a new directory; os.MkdirTemp's 0700 is changed to it.
func DirMode() os.FileMode { return DirPerm &^ processUmask() }

// FileMode is the mode a new file gets.
func FileMode() os.FileMode { return FilePerm &^ processUmask() }
