package export

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"qconv/graph"
	"qconv/internal/testfix"
)

var header = regexp.MustCompile(`^[0-9a-f]+-[0-9a-f]+ `)

// mappedRssKiB is the resident size /proc/self/smaps reports for the mapping that starts at b.
func mappedRssKiB(t *testing.T, b []byte) int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	defer f.Close()
	start := fmt.Sprintf("%x-", uintptr(unsafe.Pointer(&b[0])))
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if header.MatchString(line) {
			in = strings.HasPrefix(line, start)
			continue
		}
		if in && strings.HasPrefix(line, "Rss:") {
			n, err := strconv.Atoi(strings.Fields(line)[1])
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("mapping at %s not found in /proc/self/smaps", start)
	return 0
}

// TestDropResident: dropping a read-only file mapping's pages takes them out of the process's
// resident set (what export --target all relies on to stay under its memory goal) and leaves
// every byte readable and unchanged.
func TestDropResident(t *testing.T) {
	const size = 8 << 20
	want := make([]byte, size)
	rand.Read(want)
	path := filepath.Join(t.TempDir(), "main.mlirb")
	if err := os.WriteFile(path, want, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	if !bytes.Equal(m, want) { // touches every page
		t.Fatal("mapping differs from the file")
	}
	if rss := mappedRssKiB(t, m); rss < size/1024*9/10 {
		t.Fatalf("after reading every page, %d KiB resident, want about %d", rss, size/1024)
	}
	dropResident(m)
	if rss := mappedRssKiB(t, m); rss > 64 {
		t.Fatalf("after dropResident, %d KiB still resident, want ~0", rss)
	}
	if !bytes.Equal(m, want) {
		t.Fatal("bytes changed after dropResident")
	}
	dropResident(nil) // an unmapped (released) job: no-op
	if err := unix.Madvise(m, unix.MADV_POPULATE_READ); err != nil {
		t.Logf("MADV_POPULATE_READ unsupported here (%v): populate is a no-op", err)
		return
	}
	dropResident(m)
	populate(m)
	if rss := mappedRssKiB(t, m); rss < size/1024*9/10 {
		t.Fatalf("after populate, %d KiB resident, want about %d", rss, size/1024)
	}
}

// mapTemp maps a new file of n random bytes read-only and touches every page.
func mapTemp(t *testing.T, n int) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "main.mlirb")
	b := make([]byte, n)
	rand.Read(b)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := unix.Mmap(int(f.Fd()), 0, n, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(m) })
	if !bytes.Equal(m, b) {
		t.Fatal("mapping differs from the file")
	}
	return m
}

// touch reads one byte of every page of b.
func touch(b []byte) (s byte) {
	for i := 0; i < len(b); i += 4096 {
		s += b[i]
	}
	return s
}

// Before a gate only the gated bundle stays resident; a prefill companion's check also keeps
// its decode partner (it runs both graphs).
func TestResidentForGate(t *testing.T) {
	const size = 4 << 20
	dec := &job{contract: graph.HostDecode, mapping: mapTemp(t, size)}
	pre := &job{contract: graph.HostPrefill, partner: dec, mapping: mapTemp(t, size)}
	other := &job{contract: graph.Pipelined, mapping: mapTemp(t, size)}
	jobs := []*job{other, dec, pre}
	resident := func() (o, d, p bool) {
		in := func(j *job) bool { return mappedRssKiB(t, j.mapping) > size/1024/2 }
		return in(other), in(dec), in(pre)
	}
	residentForGate(Options{}, jobs, pre)
	touch(dec.mapping) // the companion check reads both
	touch(pre.mapping)
	if o, d, p := resident(); o || !d || !p {
		t.Errorf("gating the companion: resident other=%v decode=%v prefill=%v, want false true true", o, d, p)
	}
	residentForGate(Options{}, jobs, other)
	touch(other.mapping)
	if o, d, p := resident(); !o || d || p {
		t.Errorf("gating another bundle: resident other=%v decode=%v prefill=%v, want true false false", o, d, p)
	}
}

// fileRssKiB sums the resident size of this process's mappings of path.
func fileRssKiB(t *testing.T, path string) int {
	t.Helper()
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		t.Fatal(err)
	}
	if real, err = filepath.Abs(real); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	in, total := false, 0
	for _, line := range strings.Split(string(b), "\n") {
		if header.MatchString(line) {
			in = strings.HasSuffix(line, " "+real)
			continue
		}
		if in && strings.HasPrefix(line, "Rss:") {
			n, _ := strconv.Atoi(strings.Fields(line)[1])
			total += n
		}
	}
	return total
}

// TestCheckpointDropResident: the same for the checkpoint's shard mappings, through hf.
func TestCheckpointDropResident(t *testing.T) {
	ck := testfix.Open(t, fixture)
	before := map[string][]byte{}
	for _, s := range ck.Specs {
		if tn, err := ck.Tensor(s.Name); err == nil {
			before[s.Name] = bytes.Clone(tn.Bytes()) // touches every tensor's pages
		}
	}
	if len(before) == 0 {
		t.Fatal("fixture has no tensors")
	}
	shard := filepath.Join(ck.Dir, ck.Files[0].Name)
	if rss := fileRssKiB(t, shard); rss < 64 {
		t.Fatalf("%s: %d KiB resident after reading every tensor, want more", shard, rss)
	}
	ck.DropResident()
	if rss := fileRssKiB(t, shard); rss > 16 {
		t.Fatalf("%s: %d KiB still resident after DropResident", shard, rss)
	}
	for name, want := range before {
		tn, _ := ck.Tensor(name)
		if !bytes.Equal(tn.Bytes(), want) {
			t.Fatalf("%s changed after DropResident", name)
		}
	}
}

// TestCopyFileNew: the twin copy is byte-exact, refuses to overwrite, and honours the umask.
func TestCopyFileNew(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	want := make([]byte, 3<<20+17)
	rand.Read(want)
	if err := os.WriteFile(src, want, 0o600); err != nil {
		t.Fatal(err)
	}
	old := unix.Umask(0o022)
	defer unix.Umask(old)
	if err := copyFileNew(dst, src); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(dst)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("copy differs (%v)", err)
	}
	if st, _ := os.Stat(dst); st.Mode().Perm() != 0o644 {
		t.Errorf("copy mode %v, want -rw-r--r-- under umask 022", st.Mode().Perm())
	}
	if err := copyFileNew(dst, src); !os.IsExist(err) {
		t.Errorf("copying onto an existing file: %v, want an exists error", err)
	}
	if err := copyFileNew(filepath.Join(dir, "c"), filepath.Join(dir, "missing")); !os.IsNotExist(err) {
		t.Errorf("copying a missing file: %v, want not-exist", err)
	}
}
