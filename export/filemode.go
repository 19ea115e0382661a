package export

import (
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// Everything qconv writes follows the process umask, as mkdir(1) and a shell redirection do:
// under the usual umask 022 bundle directories are 0755 and files 0644, readable by other users
// and by a web server (docs/cli.md, "File modes").
const (
	dirPerm  os.FileMode = 0o777
	filePerm os.FileMode = 0o666
)

var (
	umaskOnce sync.Once
	umask     os.FileMode
)

// processUmask reads the umask once (setting it and putting it back, before any file is made).
func processUmask() os.FileMode {
	umaskOnce.Do(func() {
		old := unix.Umask(0o022)
		unix.Umask(old)
		umask = os.FileMode(old)
	})
	return umask
}

// dirMode is the mode mkdir would give a new directory; os.MkdirTemp's 0700 is changed to it.
func dirMode() os.FileMode { return dirPerm &^ processUmask() }

// fileMode is the mode a new file gets.
func fileMode() os.FileMode { return filePerm &^ processUmask() }
