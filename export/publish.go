package export

import (
	"bufio"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"qconv/internal/atomicfile"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// creationTime is SOURCE_DATE_EPOCH when set (reproducible builds), else now.
func creationTime() (time.Time, error) {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil || sec < 0 {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a non-negative integer of seconds", s)
		}
		return time.Unix(sec, 0).UTC(), nil
	}
	return time.Now().UTC().Truncate(time.Second), nil
}

// marshalJSON is the one JSON encoding qconv writes: indented, no HTML escaping, newline-terminated.
func marshalJSON(v any) ([]byte, error) {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return []byte(b.String()), nil
}

// hashCounter hashes and counts what passes through to w.
type hashCounter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func newHashCounter(w io.Writer) *hashCounter { return &hashCounter{w: w, h: sha256.New()} }

func (c *hashCounter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	return n, err
}

func bufioWriter(w io.Writer) *bufio.Writer { return bufio.NewWriterSize(w, 4<<20) }

// tokenizerFiles are copied from the checkpoint into <bundle>/tokenizer/ when present.
var tokenizerFiles = []string{"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja", "generation_config.json"}

func copyTokenizer(srcDir, dstDir string) ([]string, error) {
	if err := os.MkdirAll(dstDir, atomicfile.DirPerm); err != nil {
		return nil, err
	}
	var copied []string
	for _, name := range tokenizerFiles {
		b, err := os.ReadFile(filepath.Join(srcDir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dstDir, name), b, atomicfile.FilePerm); err != nil {
			return nil, err
		}
		copied = append(copied, name)
	}
	sort.Strings(copied)
	return copied, nil
}

// publish moves the finished bundle directory tmp to dst. An existing dst is swapped out
// atomically (renameat2 RENAME_EXCHANGE) and then removed, so at every instant dst is either the
// complete old bundle or the complete new one. Where the exchange is unsupported it falls back to
// rename-aside, rename-in, remove-old; if the second rename fails the old bundle is put back.
func publish(tmp, dst string) error {
	if _, err := os.Lstat(dst); errors.Is(err, os.ErrNotExist) {
		if err := os.Rename(tmp, dst); err != nil {
			return err
		}
		return atomicfile.SyncDir(filepath.Dir(dst))
	}
	err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dst, unix.RENAME_EXCHANGE)
	if err == nil {
		// tmp now holds the old bundle.
		if err := atomicfile.SyncDir(filepath.Dir(dst)); err != nil {
			return err
		}
		return os.RemoveAll(tmp)
	}
	aside := tmp + ".old"
	if err := os.Rename(dst, aside); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		if rerr := os.Rename(aside, dst); rerr != nil {
			return fmt.Errorf("%v; restoring the previous bundle from %s also failed: %v", err, aside, rerr)
		}
		return err
	}
	if err := atomicfile.SyncDir(filepath.Dir(dst)); err != nil {
		return err
	}
	return os.RemoveAll(aside)
}
