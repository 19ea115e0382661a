package main

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"qconv/internal/exitcode"
)

const trained = "../../testdata/tinyqwen35-code"

// exportDoc is the part of `qconv export --json` the contract fixes.
type exportDoc struct {
	Bundles []struct {
		Target string         `json:"target"`
		Name   string         `json:"name"`
		Path   string         `json:"path"`
		Recipe map[string]any `json:"recipe"`
		Gate   struct {
			Passed        bool   `json:"passed"`
			TeacherForced string `json:"teacher_forced"`
		} `json:"gate"`
	} `json:"bundles"`
	Passed bool `json:"passed"`
}

// The README's first command: the ship configuration exports, prints its JSON document, and the
// bundle inspects and verifies from its bytes.
func TestExportInspectVerifyCommands(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1767225600")
	out := t.TempDir()
	code, stdout, stderrText := execQconv(t, "export", "--head-sym", "--target", "gpu-pipelined", trained, "-o", out, "--json")
	if code != 0 {
		t.Fatalf("export: exit %d\n%s", code, stderrText)
	}
	var doc exportDoc
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("export --json: %v\n%s", err, stdout)
	}
	if len(doc.Bundles) != 1 || !doc.Passed {
		t.Fatalf("export doc: %+v", doc)
	}
	b := doc.Bundles[0]
	if b.Name != "tinyqwen35_code_decode_int8hu_block32_sym" || b.Path != filepath.Join(out, "gpu-pipelined", b.Name) || !b.Gate.Passed {
		t.Errorf("bundle %+v", b)
	}
	if b.Recipe["weights"] != "int8-block32" || b.Recipe["head"] != "int8" || b.Recipe["head_granularity"] != "block32" || b.Recipe["head_scheme"] != "absmax" {
		t.Errorf("recipe %v", b.Recipe)
	}

	code, stdout, stderrText = execQconv(t, "inspect", b.Path, "--json")
	if code != 0 {
		t.Fatalf("inspect: exit %d\n%s", code, stderrText)
	}
	var in struct {
		Name      string `json:"name"`
		HashOK    bool   `json:"hash_ok"`
		Functions []struct {
			Name    string `json:"name"`
			Inputs  []struct{ Name, Type string }
			Outputs []struct{ Name, Type string }
			States  []struct{ Name, Type string }
		} `json:"functions"`
		Tensors []struct {
			Name        string `json:"name"`
			DType       string `json:"dtype"`
			Granularity string `json:"granularity"`
			BlockSize   int    `json:"block_size"`
		} `json:"tensors"`
	}
	if err := json.Unmarshal([]byte(stdout), &in); err != nil {
		t.Fatal(err)
	}
	if in.Name != b.Name || !in.HashOK || len(in.Functions) != 1 || len(in.Functions[0].States) != 4 {
		t.Fatalf("inspect doc: %+v", in)
	}
	var head bool
	for _, ti := range in.Tensors {
		if ti.Name == "lm_head.weight" {
			head = ti.DType == "si8" && ti.Granularity == "block32" && ti.BlockSize == 32
		}
	}
	if !head {
		t.Errorf("inspect does not show an si8 block-32 head: %+v", in.Tensors)
	}
	want := []string{"keyCache tensor<2x1x2x?x64xf16>", "valueCache tensor<2x1x2x?x64xf16>", "convState tensor<6x1x512x3xf16>", "recState tensor<6x1x8x32x32xf32>"}
	for i, s := range in.Functions[0].States {
		if got := s.Name + " " + s.Type; got != want[i] {
			t.Errorf("state %d: %s, want %s", i, got, want[i])
		}
	}

	code, stdout, stderrText = execQconv(t, "verify", b.Path, "--reference", trained, "--json")
	if code != 0 {
		t.Fatalf("verify: exit %d\n%s", code, stderrText)
	}
	var ver struct {
		Passed bool `json:"passed"`
		Report struct {
			Prompts []json.RawMessage `json:"prompts"`
		} `json:"report"`
	}
	if err := json.Unmarshal([]byte(stdout), &ver); err != nil || !ver.Passed || len(ver.Report.Prompts) == 0 {
		t.Fatalf("verify doc: %v %s", err, stdout)
	}
	// verify without --reference is a usage error.
	if code, _, errText := execQconv(t, "verify", b.Path); code != exitcode.BadInput || !strings.Contains(errText, "--reference") {
		t.Errorf("verify without --reference: exit %d: %s", code, errText)
	}
}

func TestExportExitCodes(t *testing.T) {
	cases := []struct {
		name     string
		args     []string
		code     int
		fragment string
	}{
		{"int4 fails the gate", []string{"export", "--target", "gpu-pipelined", "--weights", "int4-block32", trained}, exitcode.GateFailed, "gate failed"},
		{"no target", []string{"export", trained}, exitcode.BadInput, "--target"},
		{"unknown target", []string{"export", "--target", "tpu", trained}, exitcode.BadInput, `unknown target "tpu"`},
		{"unknown weights", []string{"export", "--target", "gpu-pipelined", "--weights", "int3", trained}, exitcode.BadInput, "--weights"},
		{"perchan on GPU", []string{"export", "--target", "gpu-pipelined", "--head-sym", "--head-granularity", "perchan", trained}, exitcode.BadInput, "constraint 3"},
		{"bad gate prompts", []string{"export", "--target", "gpu-pipelined", "--gate-prompts", "/nonexistent.jsonl", trained}, exitcode.BadInput, "--gate-prompts"},
		{"bad checkpoint", []string{"export", "--target", "gpu-pipelined", "/nonexistent"}, exitcode.BadInput, "/nonexistent"},
		{"bad SOURCE_DATE_EPOCH", []string{"export", "--target", "gpu-pipelined", "--no-gate", trained}, exitcode.BadInput, "SOURCE_DATE_EPOCH"},
		{"context too small for the gate", []string{"export", "--target", "ios-gpu", "--max-ctx", "16", trained}, exitcode.BadInput, "--max-ctx 16"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := t.TempDir()
			if c.name == "bad SOURCE_DATE_EPOCH" {
				t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
			}
			code, _, errText := execQconv(t, append(c.args, "-o", out)...)
			if code != c.code || !strings.Contains(errText, c.fragment) {
				t.Fatalf("exit %d, want %d; stderr %q should mention %q", code, c.code, errText, c.fragment)
			}
			// Nothing is left under the output directory.
			var left []string
			filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					left = append(left, p)
				}
				return nil
			})
			if len(left) > 0 {
				t.Errorf("left behind: %v", left)
			}
			if ents, _ := os.ReadDir(out); len(ents) > 0 {
				t.Errorf("left directories behind under -o: %v", ents)
			}
		})
	}
	// A gate prompts file with a bad line names the file and line.
	prompts := filepath.Join(t.TempDir(), "p.jsonl")
	os.WriteFile(prompts, []byte("{\"ids\": [1, 2]}\n{\"ids\": [99999]}\n"), 0o644)
	code, _, errText := execQconv(t, "export", "--target", "gpu-pipelined", "--gate-prompts", prompts, trained, "-o", t.TempDir())
	if code != exitcode.BadInput || !strings.Contains(errText, "p.jsonl:2") {
		t.Errorf("bad prompt line: exit %d: %s", code, errText)
	}
}

// A SIGINT during the export leaves the previous bundle byte-identical and nothing staged.
func TestSIGINTKeepsPreviousBundle(t *testing.T) {
	t.Parallel() // runs the built binary only: no package state is shared
	bin := qconvBin
	out := t.TempDir()
	env := append(os.Environ(), "SOURCE_DATE_EPOCH=1767225600")
	first := exec.Command(bin, "export", "--target", "gpu-pipelined", trained, "-o", out, "--no-gate")
	first.Env = env
	if msg, err := first.CombinedOutput(); err != nil {
		t.Fatalf("first export: %v\n%s", err, msg)
	}
	bundle := filepath.Join(out, "gpu-pipelined", "tinyqwen35_code_decode_int8lin")
	before := treeHash(t, bundle)
	// A long gate keeps the second run busy after it has staged its bundle.
	prompts := slowGatePrompts(t, t.TempDir())
	second := exec.Command(bin, "export", "--target", "gpu-pipelined", trained, "-o", out, "--gate-prompts", prompts, "--gate-tokens", "64")
	second.Env = append(env, "SOURCE_DATE_EPOCH=1767225601")
	var errOut bytes.Buffer
	second.Stderr = &errOut
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the second run has staged its files, then interrupt it.
	waitStaged(t, out)
	second.Process.Signal(syscall.SIGINT)
	err := second.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitcode.Interrupted {
		t.Fatalf("interrupted export: %v, want exit 130:\n%s", err, errOut.String())
	}
	if after := treeHash(t, bundle); after != before {
		t.Fatalf("the previous bundle changed after SIGINT")
	}
	ents, _ := os.ReadDir(filepath.Join(out, "gpu-pipelined"))
	if len(ents) != 1 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("output holds %v after SIGINT, want only the previous bundle", names)
	}
	if !strings.Contains(errOut.String(), "interrupted") {
		t.Errorf("stderr does not say it was interrupted: %s", errOut.String())
	}
}

// waitStaged waits until an export into out has staged a bundle.
// slowGatePrompts writes dir/long.jsonl: 40 prompts of 61 ids, a gate that keeps an export busy
// long after it has staged its bundle, so a test can signal it mid-gate.
func slowGatePrompts(t *testing.T, dir string) string {
	t.Helper()
	var lines bytes.Buffer
	for i := 0; i < 40; i++ {
		lines.WriteString(`{"ids": [` + strings.Repeat("321, 285, 75, ", 20) + `10]}` + "\n")
	}
	path := filepath.Join(dir, "long.jsonl")
	if err := os.WriteFile(path, lines.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func waitStaged(t *testing.T, out string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if m, _ := filepath.Glob(filepath.Join(out, "gpu-pipelined", ".qconv-tmp-*", "*.aimodel", "main.hash")); len(m) > 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no bundle was staged under %s", out)
}

// treeHash hashes every file's path and bytes under dir.
func treeHash(t *testing.T, dir string) [32]byte {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		h.Write([]byte(p))
		h.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

func TestTargetsCommand(t *testing.T) {
	code, stdout, _ := execQconv(t, "targets", "--json")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var rows []struct {
		Name    string         `json:"name"`
		Default map[string]any `json:"default_recipe"`
	}
	if err := json.Unmarshal([]byte(stdout), &rows); err != nil || len(rows) != 5 {
		t.Fatalf("%v: %s", err, stdout)
	}
	want := map[string]string{"gpu-pipelined": "int8-block32", "ios-gpu": "int8-lut", "ios-ane": "int8-lut", "macos": "int8-lut", "macos-stock": "int8-block32"}
	head := map[string]string{"macos-stock": "int8"}
	for _, r := range rows {
		if r.Default["weights"] != want[r.Name] || r.Default["head"] != cmp.Or(head[r.Name], "tied") {
			t.Errorf("%s: default %v", r.Name, r.Default)
		}
	}
}
