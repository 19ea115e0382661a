package main

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
)

const exampleManifest = "examples/tinyqwen35-code.release.toml"

// publishedLayout is the published Qwen3.5-0.8B repository's layout on the tiny checkpoint,
// minus the external int8v3 asset.
var publishedLayout = []string{
	"README.md",
	"gpu-pipelined/tinyqwen35_code_decode_int8hu_perchan_sym",
	"gpu-pipelined/tinyqwen35_code_decode_int8lin",
	"ios-ane/tinyqwen35_code_decode_int8.aimodel",
	"ios-gpu/tinyqwen35_code_ios_hc0.aimodel",
	"ios-gpu/tinyqwen35_code_ios_hc_prefill_q16_b2048_int8.aimodel",
	"macos/tinyqwen35_code_decode_int8.aimodel",
}

// cloneRepo clones the committed repository into a fresh temporary directory, as CI and a
// release engineer get it.
func cloneRepo(t *testing.T) string {
	t.Helper()
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not a git checkout (%v): the fresh-clone test needs one", err)
	}
	dir := filepath.Join(t.TempDir(), "clone")
	if out, err := exec.Command("git", "clone", "-q", strings.TrimSpace(string(top)), dir).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, exampleManifest)); err != nil {
		t.Skipf("%s is not committed yet", exampleManifest)
	}
	return dir
}

// qconvIn runs the binary in dir as CI would: CI=true, no SOURCE_DATE_EPOCH, stderr a pipe.
func qconvIn(t *testing.T, bin, dir string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "SOURCE_DATE_EPOCH=") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	cmd.Env = append(cmd.Env, "CI=true")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String(), errOut.String()
	}
	if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return 0, out.String(), errOut.String()
}

// entries lists a tree's top two levels (files at the top, directories below), sorted.
func releaseEntries(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	top, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range top {
		if !e.IsDir() {
			out = append(out, e.Name())
			continue
		}
		sub, err := os.ReadDir(filepath.Join(root, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range sub {
			out = append(out, e.Name()+"/"+s.Name())
		}
	}
	sort.Strings(out)
	return out
}

// treeBytes maps every entry of a tree to its contents and, for files, its mode (directory
// modes are left out: a merge by copying makes its own).
func treeBytes(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		v := "dir"
		if !d.IsDir() {
			v = info.Mode().String()
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += "\n" + string(b)
		}
		m[rel] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func sameTrees(t *testing.T, a, b string) {
	t.Helper()
	ta, tb := treeBytes(t, a), treeBytes(t, b)
	for k, v := range ta {
		if w, ok := tb[k]; !ok {
			t.Errorf("%s: only in %s", k, a)
		} else if v != w {
			t.Errorf("%s: differs between %s and %s", k, a, b)
		}
	}
	for k := range tb {
		if _, ok := ta[k]; !ok {
			t.Errorf("%s: only in %s", k, b)
		}
	}
}

// The acceptance run, through the built binary from fresh clones: the example manifest publishes
// exactly the published layout with the ship bundle under its legacy name; inspect accepts the
// name because the metadata records it, and refuses the same bytes under a name it does not
// record; card shows the naming note; --check passes from another clone; the CI matrix's jobs,
// run one by one into separate directories and merged, equal the single run byte for byte; and
// one changed weight byte is exit 4 naming the bundle.
func TestReleaseExampleFromFreshClone(t *testing.T) {
	t.Parallel() // runs the built binary only: no package state is shared
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	bin := qconvBin
	a, b := cloneRepo(t), cloneRepo(t)
	out := filepath.Join(a, "out")

	code, stdout, errText := qconvIn(t, bin, a, "release", exampleManifest, "-o", "out", "--json")
	if code != 0 {
		t.Fatalf("release: exit %d\n%s", code, errText)
	}
	var doc struct {
		Bundles []struct {
			Name   string `json:"name"`
			Export *struct {
				Reused int64 `json:"reused_resources"`
				Gate   struct{ Passed bool }
			} `json:"export"`
		} `json:"bundles"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatal(err)
	}
	for _, b := range doc.Bundles {
		switch {
		case b.Name == "ios-hc0-int8v3":
			if b.Export != nil {
				t.Errorf("the external artifact was exported")
			}
		case b.Export == nil || !b.Export.Gate.Passed:
			t.Errorf("bundle %s: not gated and passed", b.Name)
		case b.Name == "int8lin" && b.Export.Reused == 0:
			// Its int8 block-32 body is the ship bundle's: one run quantizes it once.
			t.Errorf("int8lin re-quantized every tensor the ship bundle already wrote")
		}
	}
	if got := releaseEntries(t, out); strings.Join(got, "\n") != strings.Join(publishedLayout, "\n") {
		t.Fatalf("published tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(publishedLayout, "\n"))
	}

	// inspect: the legacy directory passes because its metadata records the alias.
	ship := filepath.Join(out, "gpu-pipelined", "tinyqwen35_code_decode_int8hu_perchan_sym")
	code, stdout, errText = qconvIn(t, bin, a, "inspect", ship, "--json")
	if code != 0 {
		t.Fatalf("inspect %s: exit %d\n%s", ship, code, errText)
	}
	var in struct {
		Layout     string `json:"layout"`
		NamingNote string `json:"naming_note"`
		Derived    struct {
			Head            string `json:"head"`
			HeadGranularity string `json:"head_granularity"`
		} `json:"derived"`
	}
	if err := json.Unmarshal([]byte(stdout), &in); err != nil {
		t.Fatal(err)
	}
	if in.Derived.Head != "int8" || in.Derived.HeadGranularity != "block32" || !strings.Contains(in.NamingNote, "says `perchan` where the bytes hold `block32`") {
		t.Errorf("inspect of the ship bundle: %+v", in)
	}
	// Every bare asset inspects from its own metadata.json.
	for _, p := range publishedLayout[3:] {
		code, stdout, errText := qconvIn(t, bin, a, "inspect", filepath.Join("out", p), "--json")
		if code != 0 || !strings.Contains(stdout, `"layout": "bare"`) {
			t.Errorf("inspect %s: exit %d\n%s", p, code, errText)
		}
	}
	// The same bytes under a legacy name their metadata does not record are refused.
	renamed := filepath.Join(t.TempDir(), "gpu-pipelined", "tinyqwen35_code_decode_int8lin_perchan")
	if err := os.CopyFS(renamed, os.DirFS(filepath.Join(out, "gpu-pipelined", "tinyqwen35_code_decode_int8lin"))); err != nil {
		t.Fatal(err)
	}
	if code, _, errText := qconvIn(t, bin, a, "inspect", renamed); code != 2 || !strings.Contains(errText, "tinyqwen35_code_decode_int8lin_perchan") {
		t.Errorf("inspect of an unrecorded name: exit %d, want 2\n%s", code, errText)
	}
	moved := filepath.Join(t.TempDir(), "gpu-pipelined", "tinyqwen35_code_decode_int8hu_perchan")
	if err := os.CopyFS(moved, os.DirFS(ship)); err != nil {
		t.Fatal(err)
	}
	if code, _, errText := qconvIn(t, bin, a, "inspect", moved); code != 2 || !strings.Contains(errText, "records the published name") {
		t.Errorf("inspect of the ship bundle under another legacy name: exit %d, want 2\n%s", code, errText)
	}

	// card: the naming notes, from the bytes' metadata.
	code, stdout, errText = qconvIn(t, bin, a, "card", "out")
	if code != 0 {
		t.Fatalf("card: exit %d\n%s", code, errText)
	}
	for _, want := range []string{"## Naming notes", "`gpu-pipelined/tinyqwen35_code_decode_int8hu_perchan_sym/`: `tinyqwen35_code_decode_int8hu_perchan_sym` is a legacy name: the name says `perchan` where the bytes hold `block32`", "the name leaves out `fp16`"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("card lacks %q", want)
		}
	}
	readme, err := os.ReadFile(filepath.Join(out, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"license: apache-2.0", "# tinyqwen35-code for Apple Core AI", "## About this release", "## Artifacts not produced by qconv", "`ios-gpu/tinyqwen35_code_ios_hc0_int8v3.aimodel`", "## Naming notes"} {
		if !bytes.Contains(readme, []byte(want)) {
			t.Errorf("README.md lacks %q", want)
		}
	}

	// --check from another clone, with the external artifact present and left alone.
	ext := filepath.Join(out, "ios-gpu", "tinyqwen35_code_ios_hc0_int8v3.aimodel")
	if err := os.MkdirAll(ext, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ext, "main.mlirb"), []byte("not qconv's"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errText := qconvIn(t, bin, b, "release", exampleManifest, "-o", out, "--check"); code != 0 {
		t.Fatalf("release --check from a fresh clone: exit %d\n%s", code, errText)
	}
	if err := os.RemoveAll(ext); err != nil {
		t.Fatal(err)
	}

	// The CI matrix: one job per bundle, each into its own directory, merged, then the card.
	code, stdout, errText = qconvIn(t, bin, b, "release", exampleManifest, "--matrix")
	if code != 0 {
		t.Fatalf("--matrix: exit %d\n%s", code, errText)
	}
	var mx struct {
		Include []struct{ Name, Date string } `json:"include"`
	}
	if err := json.Unmarshal([]byte(stdout), &mx); err != nil || strings.Count(stdout, "\n") != 1 {
		t.Fatalf("--matrix is not one line of JSON: %v\n%s", err, stdout)
	}
	if len(mx.Include) != 6 {
		t.Fatalf("matrix has %d jobs, want 6 (external left out): %s", len(mx.Include), stdout)
	}
	merged := filepath.Join(b, "merged")
	for _, j := range mx.Include {
		dir := filepath.Join(b, "job-"+j.Name)
		if code, _, errText := qconvIn(t, bin, b, "release", exampleManifest, "-o", dir, "--only", j.Name, "--date", j.Date); code != 0 {
			t.Fatalf("--only %s: exit %d\n%s", j.Name, code, errText)
		}
		if _, err := os.Stat(filepath.Join(dir, "README.md")); err == nil {
			t.Errorf("--only %s wrote a card; the join step does", j.Name)
		}
		if err := os.CopyFS(merged, os.DirFS(dir)); err != nil {
			t.Fatalf("merging %s: %v", dir, err)
		}
	}
	if code, _, errText := qconvIn(t, bin, b, "release", exampleManifest, "-o", "merged", "--card"); code != 0 {
		t.Fatalf("--card: exit %d\n%s", code, errText)
	}
	sameTrees(t, out, merged)

	// One weight byte changed: exit 4, naming the bundle and the file.
	mlirb := filepath.Join(ship, "tinyqwen35_code_decode_int8hu_perchan_sym.aimodel", "main.mlirb")
	data, err := os.ReadFile(mlirb)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 1
	if err := os.WriteFile(mlirb, data, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errText = qconvIn(t, bin, b, "release", exampleManifest, "-o", out, "--check")
	if code != 4 {
		t.Fatalf("--check after a changed byte: exit %d, want 4\n%s", code, errText)
	}
	for _, want := range []string{"drifted: bundle ship gpu-pipelined/tinyqwen35_code_decode_int8hu_perchan_sym/tinyqwen35_code_decode_int8hu_perchan_sym.aimodel/main.mlirb: tensor ", "differs from the regenerated bytes", "(bundles ship)"} {
		if !strings.Contains(errText, want) {
			t.Errorf("--check output lacks %q:\n%s", want, errText)
		}
	}
	if strings.Contains(errText, "bundle macos") || strings.Contains(errText, "bundle int8lin") {
		t.Errorf("--check names bundles that did not change:\n%s", errText)
	}
}
