package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// These tests run the qconv binary the way CI and a release engineer do: a separate process,
// umask 022, CI=true, stderr a file (not a terminal), no SOURCE_DATE_EPOCH unless a test says so.

// qconvBin is the binary built once for the CLI tests.
var qconvBin string

func TestMain(m *testing.M) {
	syscall.Umask(0o022)
	dir, err := os.MkdirTemp("", "qconv-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	qconvBin = filepath.Join(dir, "qconv")
	if out, err := exec.Command("go", "build", "-o", qconvBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building qconv: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// ciEnv is the environment of a CI runner: the test's own, minus anything pinning dates or
// drawing terminals, plus CI=true, qconv on PATH, and the extra variables.
func ciEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "SOURCE_DATE_EPOCH", "CI", "TERM", "PATH", "HF_HUB_CACHE", "HF_HOME":
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "CI=true", "TERM=xterm", "PATH="+filepath.Dir(qconvBin)+":"+os.Getenv("PATH"))
	return append(env, extra...)
}

type cliResult struct {
	code           int
	stdout, stderr string
}

// cli runs the binary in dir with env (nil: ciEnv()); stderr goes to a file, as in a CI log.
func cli(t *testing.T, dir string, env []string, args ...string) cliResult {
	t.Helper()
	if env == nil {
		env = ciEnv()
	}
	cmd := exec.Command(qconvBin, args...)
	cmd.Dir, cmd.Env = dir, env
	var out bytes.Buffer
	errFile, err := os.CreateTemp(t.TempDir(), "stderr-")
	if err != nil {
		t.Fatal(err)
	}
	defer errFile.Close()
	cmd.Stdout, cmd.Stderr = &out, errFile
	err = cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("running qconv %v: %v", args, err)
	}
	errText, _ := os.ReadFile(errFile.Name())
	return cliResult{code, out.String(), string(errText)}
}

// copyDir copies a directory tree of regular files.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// hfCache lays the trained fixture out as Org/Model in a Hugging Face hub cache and returns the
// cache and the snapshot directory.
func hfCache(t *testing.T) (cache, snap string) {
	t.Helper()
	cache = t.TempDir()
	repo := filepath.Join(cache, "models--Org--Model")
	rev := "0123456789abcdef0123456789abcdef01234567"
	snap = filepath.Join(repo, "snapshots", rev)
	copyDir(t, trained, snap)
	os.MkdirAll(filepath.Join(repo, "refs"), 0o755)
	if err := os.WriteFile(filepath.Join(repo, "refs", "main"), []byte(rev), 0o644); err != nil {
		t.Fatal(err)
	}
	return cache, snap
}

// flipWeight changes one bf16 weight of tensor in a safetensors file: the largest-magnitude
// element of its first block of 32 has its exponent's lowest bit flipped (its value doubled or
// halved), so the tensor's int8 block-32 bytes change while the model stays close enough to pass
// the gate.
func flipWeight(t *testing.T, file, tensor string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(b[:8])
	var header map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &header); err != nil {
		t.Fatal(err)
	}
	var e struct {
		DType   string  `json:"dtype"`
		Offsets []int64 `json:"data_offsets"`
	}
	if err := json.Unmarshal(header[tensor], &e); err != nil || e.DType != "BF16" {
		t.Fatalf("%s: %v %+v", tensor, err, e)
	}
	base := 8 + int64(n) + e.Offsets[0]
	best, bestAbs := int64(0), -1.0
	for i := int64(0); i < 32; i++ {
		bits := uint32(binary.LittleEndian.Uint16(b[base+2*i:])) << 16
		if a := math.Abs(float64(math.Float32frombits(bits))); a > bestAbs {
			best, bestAbs = i, a
		}
	}
	b[base+2*best] ^= 0x80
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// readmeCIBlock is the sh block of the README's "Publishing from CI" section, verbatim.
func readmeCIBlock(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "## Publishing from CI")
	if i < 0 {
		t.Fatal(`README.md has no "## Publishing from CI" section`)
	}
	s = s[i:]
	start := strings.Index(s, "```sh\n")
	end := strings.Index(s[start+6:], "```")
	if start < 0 || end < 0 {
		t.Fatal("the CI section has no sh block")
	}
	return s[start+6 : start+6+end]
}

func git(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=ci", "-c", "user.email=ci@example.com", "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false"}, args...)...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

// runBlock runs the README block with sh in dir, stderr to a log file; it returns the exit code
// and the log.
func runBlock(t *testing.T, dir, script string, env []string) (int, string) {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	cmd.Dir, cmd.Env = dir, env
	log := filepath.Join(t.TempDir(), "ci.log")
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	err = cmd.Run()
	f.Close()
	text, _ := os.ReadFile(log)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(text)
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, string(text)
}

// modes lists every path under root whose permission bits are not 0755 (directories) or 0644
// (files).
func badModes(t *testing.T, root string) []string {
	t.Helper()
	var bad []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		st, _ := os.Stat(p)
		want := fs.FileMode(0o644)
		if d.IsDir() {
			want = 0o755
		}
		if st.Mode().Perm() != want {
			bad = append(bad, fmt.Sprintf("%s %o", p, st.Mode().Perm()))
		}
		return nil
	})
	return bad
}

// The README's "Publishing from CI" block, replayed literally in a git repository with the
// environment of a CI runner: the first run publishes (4), a later commit, a fresh clone and
// another working directory find nothing to do (0), a changed weight byte is drift naming the
// file and tensor (4, regenerated), after which the next run is clean again, and the card names
// no local path.
func TestReadmeCIRecipe(t *testing.T) {
	t.Parallel() // runs the built binary only: no package state is shared
	block := readmeCIBlock(t)
	cache, snap := hfCache(t)
	tmp := t.TempDir()
	env := ciEnv("HF_HUB_CACHE="+cache, "TMPDIR="+tmp)
	repo := t.TempDir()
	git(t, repo, "init", "-q")
	os.WriteFile(filepath.Join(repo, "ci.sh"), []byte(block), 0o644)
	git(t, repo, "add", "ci.sh")
	git(t, repo, "commit", "-qm", "ci")

	code, log := runBlock(t, repo, block, env)
	if code != 4 {
		t.Fatalf("first run (no bundles yet): exit %d, want 4 (published)\n%s", code, log)
	}
	bundle := filepath.Join(repo, "bundles", "gpu-pipelined", "model_decode_int8hu_block32_sym")
	if _, err := os.Stat(filepath.Join(bundle, "model_decode_int8hu_block32_sym.aimodel", "main.mlirb")); err != nil {
		t.Fatalf("nothing published: %v\n%s", err, log)
	}
	if bad := badModes(t, filepath.Join(repo, "bundles")); len(bad) > 0 {
		t.Errorf("under umask 022, want directories 0755 and files 0644: %v", bad)
	}
	if strings.ContainsAny(log, "\r") || strings.Contains(log, "%|") {
		t.Errorf("progress bars in a CI log:\n%q", log)
	}
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-qm", "bundles")
	os.WriteFile(filepath.Join(repo, "CHANGES"), []byte("a later commit\n"), 0o644)
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-qm", "later")

	// A later commit, on another day (SOURCE_DATE_EPOCH set this time, to a different date).
	code, log = runBlock(t, repo, block, append(env, "SOURCE_DATE_EPOCH=1767225600"))
	if code != 0 || !strings.Contains(log, "bundles on disk are exactly") {
		t.Fatalf("second run: exit %d, want 0\n%s", code, log)
	}
	// A fresh clone elsewhere.
	clone := filepath.Join(t.TempDir(), "clone")
	git(t, filepath.Dir(clone), "clone", "-q", repo, clone)
	if code, log = runBlock(t, clone, block, env); code != 0 {
		t.Fatalf("fresh clone: exit %d, want 0\n%s", code, log)
	}
	// Another working directory, the tree spelled with ./ and a trailing slash.
	sub := filepath.Join(repo, "sub")
	os.Mkdir(sub, 0o755)
	r := cli(t, sub, env, "export", "--head-sym", "--target", "gpu-pipelined", "Org/Model", "-o", "./../bundles/", "--check")
	if r.code != 0 {
		t.Fatalf("--check from another directory: exit %d\n%s", r.code, r.stderr)
	}
	// The snapshot directory itself, as a path: the same checkpoint as Org/Model.
	if r := cli(t, sub, env, "export", "--head-sym", "--target", "gpu-pipelined", snap+"/", "-o", "../bundles", "--check"); r.code != 0 {
		t.Fatalf("--check with the snapshot's path: exit %d\n%s", r.code, r.stderr)
	}
	os.Remove(sub)
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Errorf("--check left %d entries in $TMPDIR", len(ents))
	}
	status := exec.Command("git", "status", "--porcelain")
	status.Dir = repo
	if out, _ := status.Output(); len(out) != 0 {
		t.Fatalf("the checks changed the repository:\n%s", out)
	}

	// One weight byte changes upstream: drift naming the file and the tensor, then regenerated.
	flipWeight(t, filepath.Join(snap, "model.safetensors"), "model.layers.0.mlp.down_proj.weight")
	code, log = runBlock(t, repo, block, env)
	if code != 4 || !strings.Contains(log, "source file model.safetensors: content changed") || !strings.Contains(log, "layers.0.mlp.down_proj") {
		t.Fatalf("after a weight change: exit %d, want 4 naming model.safetensors and layers.0.mlp.down_proj\n%s", code, log)
	}
	if code, log = runBlock(t, repo, block, env); code != 0 {
		t.Fatalf("after regenerating: exit %d, want 0\n%s", code, log)
	}
	// A bundle left from an earlier recipe is stale: reported (4), dropped by the regeneration.
	copyDir(t, bundle, filepath.Join(repo, "bundles", "gpu-pipelined", "model_decode_int8lin"))
	code, log = runBlock(t, repo, block, env)
	if code != 4 || !strings.Contains(log, "model_decode_int8lin: stale bundle") {
		t.Fatalf("with a stale bundle: exit %d, want 4 naming it\n%s", code, log)
	}
	if code, log = runBlock(t, repo, block, env); code != 0 {
		t.Fatalf("after regenerating without the stale bundle: exit %d, want 0\n%s", code, log)
	}
	card, err := os.ReadFile(filepath.Join(repo, "bundles", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, local := range []string{repo, cache, tmp, "/tmp/", "/home/", "/root/"} {
		if strings.Contains(string(card), local) {
			t.Errorf("the card prints the local path %s", local)
		}
	}
	if !strings.Contains(string(card), "Org/Model") {
		t.Errorf("the card does not name the checkpoint Org/Model")
	}
	if bad := badModes(t, filepath.Join(repo, "bundles")); len(bad) > 0 {
		t.Errorf("after regenerating, want 0755/0644: %v", bad)
	}
}

// --check is content-based: the same checkpoint spelled relative, absolute, with ./ or a
// trailing slash, through a symlink or as an identical copy elsewhere, on another day, finds no
// drift; a byte changed inside a published main.mlirb is drift naming its tensor.
func TestCheckPathSpellings(t *testing.T) {
	t.Parallel() // runs the built binary only: no package state is shared
	work := t.TempDir()
	copyDir(t, trained, filepath.Join(work, "tinyqwen35-code"))
	r := cli(t, work, nil, "export", "--head-sym", "--target", "gpu-pipelined", "tinyqwen35-code", "-o", "out")
	if r.code != 0 {
		t.Fatalf("export: exit %d\n%s", r.code, r.stderr)
	}
	os.Symlink("tinyqwen35-code", filepath.Join(work, "link"))
	elsewhere := filepath.Join(t.TempDir(), "tinyqwen35-code")
	copyDir(t, trained, elsewhere)
	later := ciEnv("SOURCE_DATE_EPOCH=1767225600")
	for _, c := range []struct{ dir, ck, out string }{
		{work, "tinyqwen35-code", "out"},
		{work, "./tinyqwen35-code/", "./out/"},
		{work, filepath.Join(work, "tinyqwen35-code"), filepath.Join(work, "out")},
		{work, "link", "out"},
		{filepath.Join(work, "out"), elsewhere, "."},
	} {
		if r := cli(t, c.dir, later, "export", "--head-sym", "--target", "gpu-pipelined", c.ck, "-o", c.out, "--check"); r.code != 0 {
			t.Errorf("--check %s -o %s (in %s): exit %d\n%s", c.ck, c.out, c.dir, r.code, r.stderr)
		}
	}
	name := "tinyqwen35_code_decode_int8hu_block32_sym"
	mlirb := filepath.Join(work, "out", "gpu-pipelined", name, name+".aimodel", "main.mlirb")
	b, _ := os.ReadFile(mlirb)
	b[len(b)/2] ^= 1
	os.WriteFile(mlirb, b, 0o644)
	r = cli(t, work, nil, "export", "--head-sym", "--target", "gpu-pipelined", "tinyqwen35-code", "-o", "out", "--check")
	if r.code != 4 || !strings.Contains(r.stderr, "main.mlirb: tensor ") {
		t.Errorf("a flipped bundle byte: exit %d, want 4 naming the tensor\n%s", r.code, r.stderr)
	}
}

// A bundle left from an earlier recipe is stale: --check exits 4 naming it unless
// --ignore-stale, and card warns.
func TestCheckStaleBundles(t *testing.T) {
	t.Parallel() // runs the built binary only: no package state is shared
	out := t.TempDir()
	for _, args := range [][]string{{"--no-gate"}, {"--head-sym"}} {
		if r := cli(t, "", nil, append([]string{"export", "--target", "gpu-pipelined", trained, "-o", out}, args...)...); r.code != 0 {
			t.Fatalf("export %v: exit %d\n%s", args, r.code, r.stderr)
		}
	}
	check := []string{"export", "--head-sym", "--target", "gpu-pipelined", trained, "-o", out, "--check"}
	r := cli(t, "", nil, check...)
	if r.code != 4 || !strings.Contains(r.stderr, "tinyqwen35_code_decode_int8lin: stale bundle") {
		t.Errorf("--check with a stale bundle: exit %d, want 4 naming it\n%s", r.code, r.stderr)
	}
	if r = cli(t, "", nil, append(check, "--ignore-stale")...); r.code != 0 || !strings.Contains(r.stderr, "stale (ignored)") {
		t.Errorf("--ignore-stale: exit %d\n%s", r.code, r.stderr)
	}
	if r = cli(t, "", nil, "card", out); !strings.Contains(r.stderr, "card: warning: 2 gpu-pipelined pipelined bundles") {
		t.Errorf("card does not warn about two bundles of one target and contract: exit %d\n%s", r.code, r.stderr)
	}
}

// mountTmpfs mounts a small tmpfs at a new directory (root only), or skips.
func mountTmpfs(t *testing.T, opts string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", opts, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s)", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	return dir
}

func entries(dir string) []string {
	var names []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if p != dir {
			names = append(names, p)
		}
		return nil
	})
	return names
}

// A full disk is the environment's refusal: exit 2 naming the path, nothing left behind.
func TestExportDiskFull(t *testing.T) {
	t.Parallel() // runs the built binary only: no package state is shared
	full := mountTmpfs(t, "size=1m")
	r := cli(t, "", nil, "export", "--head-sym", "--target", "gpu-pipelined", trained, "-o", filepath.Join(full, "out"))
	if r.code != 2 || !strings.Contains(r.stderr, full) || !strings.Contains(r.stderr, "no space left on device") {
		t.Errorf("disk full: exit %d, want 2 naming %s\n%s", r.code, full, r.stderr)
	}
	if left := entries(full); len(left) > 0 {
		t.Errorf("disk full left %v", left)
	}
}

// readOnlyTree exports the ship bundle into a directory and makes it read-only: a read-only
// tmpfs as root, a 0555 directory otherwise.
func readOnlyTree(t *testing.T) string {
	t.Helper()
	var dir string
	if os.Geteuid() == 0 {
		dir = mountTmpfs(t, "size=16m")
	} else {
		dir = t.TempDir()
	}
	if r := cli(t, "", nil, "export", "--head-sym", "--target", "gpu-pipelined", trained, "-o", dir); r.code != 0 {
		t.Fatalf("export: exit %d\n%s", r.code, r.stderr)
	}
	if os.Geteuid() == 0 {
		if out, err := exec.Command("mount", "-o", "remount,ro", dir).CombinedOutput(); err != nil {
			t.Fatalf("remount ro: %v %s", err, out)
		}
		return dir
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o555)
		}
		return nil
	})
	t.Cleanup(func() {
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				os.Chmod(p, 0o755)
			}
			return nil
		})
	})
	return dir
}

// A read-only output directory is the environment's refusal (exit 2 naming the path, the
// existing bundle untouched), and --check needs no write access to the tree.
func TestExportReadOnlyOutput(t *testing.T) {
	t.Parallel() // runs the built binary only: no package state is shared
	ro := readOnlyTree(t)
	before := treeHash(t, ro)
	if r := cli(t, "", nil, "export", "--head-sym", "--target", "gpu-pipelined", trained, "-o", ro, "--check"); r.code != 0 {
		t.Errorf("--check on a read-only tree: exit %d, want 0\n%s", r.code, r.stderr)
	}
	r := cli(t, "", nil, "export", "--target", "gpu-pipelined", trained, "-o", ro)
	if r.code != 2 || !strings.Contains(r.stderr, ro) || !(strings.Contains(r.stderr, "read-only file system") || strings.Contains(r.stderr, "permission denied")) {
		t.Errorf("read-only output: exit %d, want 2 naming %s\n%s", r.code, ro, r.stderr)
	}
	r = cli(t, "", nil, "export", "--target", "gpu-pipelined", trained, "-o", filepath.Join(ro, "new"))
	if r.code != 2 || !strings.Contains(r.stderr, filepath.Join(ro, "new")) {
		t.Errorf("read-only parent: exit %d, want 2 naming the path\n%s", r.code, r.stderr)
	}
	if after := treeHash(t, ro); after != before {
		t.Errorf("the read-only tree changed")
	}
}

// Exit codes and streams CI can rely on.
func TestExitCodesAndStreams(t *testing.T) {
	t.Parallel() // runs the built binary only: no package state is shared
	cases := []struct {
		args     []string
		code     int
		stdout   string // fragment of stdout ("" : stdout must be empty)
		fragment string // of stderr
	}{
		{[]string{"--help"}, 0, "130  interrupted", ""},
		{[]string{"export", "--help"}, 0, "4    export --check found drift", ""},
		{[]string{"--version"}, 0, "qconv version", ""},
		{nil, 2, "", "no command given"},
		{[]string{"exprot"}, 2, "", `unknown command "exprot"`},
		{[]string{"export", "--bogus", trained}, 2, "", "unknown flag: --bogus"},
		{[]string{"export", "--target", "gpu-pipelined", "/nonexistent", "--json"}, 2, `"code": 2`, "/nonexistent"},
		{[]string{"run", trained, "--target", "all", "--ids", "1"}, 2, "", "one of: gpu-pipelined, ios-gpu, ios-ane, macos, macos-stock)"},
	}
	for _, c := range cases {
		r := cli(t, "", nil, c.args...)
		if r.code != c.code || !strings.Contains(r.stderr, c.fragment) || (c.stdout == "") != (r.stdout == "") || !strings.Contains(r.stdout, c.stdout) {
			t.Errorf("qconv %v: exit %d (want %d)\nstdout %q (want %q)\nstderr %q (want %q)", c.args, r.code, c.code, r.stdout, c.stdout, r.stderr, c.fragment)
		}
		if c.code != 0 {
			for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
				if !strings.HasPrefix(line, "qconv: ") || strings.HasPrefix(line, "qconv: qconv:") {
					t.Errorf("qconv %v: error line without exactly one qconv: prefix: %q", c.args, line)
				}
			}
		}
	}
	// An output path under a regular file is the environment's refusal, naming the path.
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	if r := cli(t, "", nil, "export", "--target", "gpu-pipelined", trained, "-o", filepath.Join(file, "out")); r.code != 2 || !strings.Contains(r.stderr, filepath.Join(file, "out")) {
		t.Errorf("-o under a file: exit %d, want 2 naming the path\n%s", r.code, r.stderr)
	}
	r := cli(t, "", nil, "info", "/nonexistent", "--json")
	var doc struct {
		Error struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || doc.Error.Code != 2 || !strings.Contains(doc.Error.Message, "/nonexistent") {
		t.Errorf("--json error document: %v %q", err, r.stdout)
	}
}

// Without CI set, stderr redirected to a file still gets one line per phase, no bars; with
// TERM=dumb too.
func TestProgressLinesOffTerminal(t *testing.T) {
	t.Parallel() // runs the built binary only: no package state is shared
	for _, term := range []string{"xterm-256color", "dumb"} {
		var env []string
		for _, kv := range ciEnv() {
			if kv != "CI=true" && !strings.HasPrefix(kv, "TERM=") {
				env = append(env, kv)
			}
		}
		env = append(env, "TERM="+term)
		r := cli(t, "", env, "export", "--head-sym", "--target", "gpu-pipelined", trained, "-o", t.TempDir())
		if r.code != 0 {
			t.Fatalf("export: exit %d\n%s", r.code, r.stderr)
		}
		for _, want := range []string{"reading checkpoint: 4.78 MB", "quantize+write tinyqwen35_code_decode_int8hu_block32_sym: 2.82 MB", "gating tinyqwen35_code_decode_int8hu_block32_sym\n"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("TERM=%s: no phase line %q:\n%s", term, want, r.stderr)
			}
		}
		if strings.ContainsAny(r.stderr, "\r\x1b") || strings.Contains(r.stderr, "(%)") || strings.Contains(r.stderr, "B/s") {
			t.Errorf("TERM=%s: bars, rates or control characters in a redirected stderr:\n%q", term, r.stderr)
		}
	}
}

// SIGTERM, like SIGINT, cleans up and exits with the shell's 128+signal code.
func TestSIGTERMExit143(t *testing.T) {
	t.Parallel() // runs the built binary only: no package state is shared
	out := t.TempDir()
	prompts := slowGatePrompts(t, t.TempDir())
	cmd := exec.Command(qconvBin, "export", "--target", "gpu-pipelined", trained, "-o", out, "--gate-prompts", prompts, "--gate-tokens", "64")
	cmd.Env = ciEnv()
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitStaged(t, out)
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 143 || !strings.Contains(errOut.String(), "qconv: terminated (SIGTERM)") {
		t.Fatalf("SIGTERM: %v, want exit 143\n%s", err, errOut.String())
	}
	if left := entries(out); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

// The gate record cannot lie: --no-gate records passed false, skipped true and every reader
// says "not gated"; weaker thresholds are recorded and shown as a WEAKENED gate, and verify and
// card --reference re-run the gate under them and agree.
func TestGateRecord(t *testing.T) {
	t.Parallel() // runs the built binary only: no package state is shared
	out := t.TempDir()
	if r := cli(t, "", nil, "export", "--no-gate", "--target", "gpu-pipelined", trained, "-o", out); r.code != 0 || !strings.Contains(r.stderr, "not gated") {
		t.Fatalf("export --no-gate: exit %d\n%s", r.code, r.stderr)
	}
	bundle := filepath.Join(out, "gpu-pipelined", "tinyqwen35_code_decode_int8lin")
	var md struct {
		QConv struct {
			Gate map[string]any `json:"gate"`
		} `json:"qconv"`
	}
	b, _ := os.ReadFile(filepath.Join(bundle, "metadata.json"))
	json.Unmarshal(b, &md)
	if md.QConv.Gate["passed"] != false || md.QConv.Gate["skipped"] != true {
		t.Errorf("--no-gate records %v, want passed false, skipped true", md.QConv.Gate)
	}
	if r := cli(t, "", nil, "inspect", bundle); !strings.Contains(r.stderr, "gate        not gated") {
		t.Errorf("inspect of a --no-gate bundle:\n%s", r.stderr)
	}
	if r := cli(t, "", nil, "inspect", bundle, "--json"); !strings.Contains(r.stdout, `"gate_verdict": "not gated"`) {
		t.Errorf("inspect --json of a --no-gate bundle does not say not gated")
	}
	if r := cli(t, "", nil, "card", filepath.Dir(filepath.Dir(bundle))); !strings.Contains(r.stdout, "NOT GATED") {
		t.Errorf("the card of a --no-gate bundle does not say NOT GATED")
	}
	if r := cli(t, "", nil, "verify", bundle, "--reference", trained); !strings.Contains(r.stderr, "recorded at export: not gated") {
		t.Errorf("verify of a --no-gate bundle:\n%s", r.stderr)
	}

	weak := t.TempDir()
	if r := cli(t, "", nil, "export", "--head-sym", "--target", "gpu-pipelined", trained, "-o", weak, "--gate-min-margin", "0.3", "--gate-tokens", "8"); r.code != 0 || !strings.Contains(r.stderr, "WEAKENED gate: min margin 0.3 (default 0.1); 8 tokens per prompt (default 16)") {
		t.Fatalf("weakened export: exit %d\n%s", r.code, r.stderr)
	}
	bundle = filepath.Join(weak, "gpu-pipelined", "tinyqwen35_code_decode_int8hu_block32_sym")
	b, _ = os.ReadFile(filepath.Join(bundle, "metadata.json"))
	json.Unmarshal(b, &md)
	if md.QConv.Gate["weakened"] != "min margin 0.3 (default 0.1); 8 tokens per prompt (default 16)" {
		t.Errorf("metadata gate %v does not record the weakened thresholds", md.QConv.Gate)
	}
	if r := cli(t, "", nil, "inspect", bundle); !strings.Contains(r.stderr, "passed (WEAKENED gate: min margin 0.3") {
		t.Errorf("inspect:\n%s", r.stderr)
	}
	v := cli(t, "", nil, "verify", bundle, "--reference", trained)
	if v.code != 0 || !strings.Contains(v.stderr, "WEAKENED gate: min margin 0.3") {
		t.Errorf("verify does not judge by the recorded thresholds: exit %d\n%s", v.code, v.stderr)
	}
	r := cli(t, "", nil, "card", weak, "--reference", trained, "--json")
	var card struct {
		Bundles []struct {
			Gate struct {
				Summary struct {
					Greedy   string `json:"greedy"`
					Weakened string `json:"weakened"`
				} `json:"summary"`
				MatchesEmbedded *bool `json:"matches_embedded"`
			} `json:"gate"`
		} `json:"bundles"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &card); err != nil || len(card.Bundles) != 1 {
		t.Fatalf("card --json: exit %d %v\n%s", r.code, err, r.stderr)
	}
	g := card.Bundles[0].Gate
	if g.MatchesEmbedded == nil || !*g.MatchesEmbedded || g.Summary.Weakened == "" || !strings.Contains(v.stderr, "greedy "+g.Summary.Greedy) {
		t.Errorf("card --reference %+v disagrees with the recorded gate or with verify:\n%s", g, v.stderr)
	}
	if r := cli(t, "", nil, "card", weak); !strings.Contains(r.stdout, "**WEAKENED gate**: min margin 0.3") {
		t.Errorf("the card table does not show the weakened gate")
	}
}

// Bytes that main.hash does not name are not run or verified (exit 2) unless --trust-bytes; a
// reference that is not the bundle's checkpoint is named before any gate result; paths to the
// .aimodel asset get a pointer to the bundle directory.
func TestTrustTheBytes(t *testing.T) {
	t.Parallel() // runs the built binary only: no package state is shared
	out := t.TempDir()
	if r := cli(t, "", nil, "export", "--head-sym", "--target", "gpu-pipelined", trained, "-o", out); r.code != 0 {
		t.Fatalf("export: exit %d\n%s", r.code, r.stderr)
	}
	name := "tinyqwen35_code_decode_int8hu_block32_sym"
	bundle := filepath.Join(out, "gpu-pipelined", name)
	asset := filepath.Join(bundle, name+".aimodel")

	if r := cli(t, "", nil, "inspect", asset+"/"); r.code != 2 || !strings.Contains(r.stderr, "give the bundle directory above it: "+bundle) {
		t.Errorf("inspect of the .aimodel: exit %d\n%s", r.code, r.stderr)
	}
	if r := cli(t, "", nil, "run", asset, "--ids", "1"); r.code != 2 || !strings.Contains(r.stderr, "give the bundle directory above it") {
		t.Errorf("run of the .aimodel: exit %d\n%s", r.code, r.stderr)
	}
	if r := cli(t, "", nil, "inspect", bundle+"/"); r.code != 0 {
		t.Errorf("inspect with a trailing slash: exit %d\n%s", r.code, r.stderr)
	}

	other := filepath.Join(t.TempDir(), "tinyqwen35-code")
	copyDir(t, trained, other)
	flipWeight(t, filepath.Join(other, "model.safetensors"), "model.layers.0.mlp.down_proj.weight")
	r := cli(t, "", nil, "verify", bundle, "--reference", other)
	i, k := strings.Index(r.stderr, "NOT the checkpoint this bundle was made from"), strings.Index(r.stderr, "gate ")
	if i < 0 || k < i || !strings.Contains(r.stderr, "model.safetensors differs") {
		t.Errorf("verify against another checkpoint does not say so first:\n%s", r.stderr)
	}

	mlirb := filepath.Join(asset, "main.mlirb")
	b, _ := os.ReadFile(mlirb)
	b[len(b)/2] ^= 1
	os.WriteFile(mlirb, b, 0o644)
	for _, args := range [][]string{{"run", bundle, "--ids", "1,2", "-n", "2"}, {"verify", bundle, "--reference", trained}} {
		if r := cli(t, "", nil, args...); r.code != 2 || !strings.Contains(r.stderr, "is not the file main.hash names") || !strings.Contains(r.stderr, "--trust-bytes") {
			t.Errorf("%v on tampered bytes: exit %d, want 2\n%s", args, r.code, r.stderr)
		}
	}
	if r := cli(t, "", nil, "run", bundle, "--ids", "1,2", "-n", "2", "--trust-bytes"); r.code != 0 {
		t.Errorf("run --trust-bytes: exit %d\n%s", r.code, r.stderr)
	}
}

// The same bad input gives the same message every run (a truncated file names the first tensor
// by offset); --dry-run labels its size an estimate.
func TestDeterministicErrors(t *testing.T) {
	t.Parallel() // runs the built binary only: no package state is shared
	ck := filepath.Join(t.TempDir(), "tinyqwen35-code")
	copyDir(t, trained, ck)
	st := filepath.Join(ck, "model.safetensors")
	fi, _ := os.Stat(st)
	os.Truncate(st, fi.Size()-100000)
	first := cli(t, "", nil, "info", ck)
	if first.code != 2 || !strings.Contains(first.stderr, `tensor "model.layers.7.self_attn.q_proj.weight"`) {
		t.Fatalf("truncated file: exit %d\n%s", first.code, first.stderr)
	}
	for i := 0; i < 5; i++ {
		if r := cli(t, "", nil, "info", ck); r.stderr != first.stderr {
			t.Fatalf("run %d says %q, run 0 said %q", i+1, r.stderr, first.stderr)
		}
	}
	r := cli(t, "", nil, "export", "--head-sym", "--target", "gpu-pipelined", trained, "-o", t.TempDir(), "--dry-run")
	if r.code != 0 || !strings.Contains(r.stderr, "estimate: 2817024 bytes of weights") {
		t.Errorf("--dry-run size is not labelled an estimate:\n%s", r.stderr)
	}
}

// qconv release stopped by SIGTERM mid-gate exits 143 like export, with nothing published.
func TestReleaseSIGTERMExit143(t *testing.T) {
	t.Parallel() // runs the built binary only: no package state is shared
	dir, out := t.TempDir(), t.TempDir()
	slowGatePrompts(t, dir)
	abs, err := filepath.Abs(trained)
	if err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(dir, "release.toml")
	os.WriteFile(manifest, []byte(`[source]
path = "`+abs+`"
[gate]
tokens = 64
prompts = "long.jsonl"
[[bundle]]
name = "ship"
target = "gpu-pipelined"
`), 0o644)
	cmd := exec.Command(qconvBin, "release", manifest, "-o", out)
	cmd.Env = ciEnv()
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitStaged(t, out)
	cmd.Process.Signal(syscall.SIGTERM)
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 143 || !strings.Contains(errOut.String(), "qconv: terminated (SIGTERM)") {
		t.Fatalf("SIGTERM: %v, want exit 143\n%s", err, errOut.String())
	}
	if left := entries(out); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}
