package export

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
	dirPerm  os.FileMode = 0o777
	filePerm os.FileMode = 0o666
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

// dirMode is the mode mkdir would give a new directory; os.MkdirTemp's 0700 is changed to it.
func dirMode() os.FileMode { return dirPerm &^ processUmask() }

// fileMode is the mode a new file gets.
func fileMode() os.FileMode { return filePerm &^ processUmask() }
