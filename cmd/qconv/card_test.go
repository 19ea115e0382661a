package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"qconv/card"
	"qconv/internal/exitcode"
)

// `qconv card`: Markdown on stdout, or atomically to -o with the same table as JSON on stdout;
// a renamed bundle and bad arguments are exit 2 with nothing on stdout.
func TestCardCommand(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1767225600")
	out := t.TempDir()
	fixture := filepath.Join("..", "..", "testdata", "tinyqwen35-code")
	if code, _, errText := execQconv(t, "export", "--target", "gpu-pipelined", "--no-gate", fixture, "-o", out); code != 0 {
		t.Fatalf("export: exit %d\n%s", code, errText)
	}
	code, md, errText := execQconv(t, "card", out)
	if code != 0 {
		t.Fatalf("card: exit %d\n%s", code, errText)
	}
	const row = "| gpu-pipelined | `gpu-pipelined/tinyqwen35_code_decode_int8lin/` | int8 block-32 | fp16 tied |"
	if !strings.HasPrefix(md, "---\n") || !strings.Contains(md, "\n## Pick your platform\n") || !strings.Contains(md, row) || !strings.Contains(md, "NOT GATED") {
		t.Errorf("card on stdout:\n%.2000s", md)
	}

	file := filepath.Join(t.TempDir(), "README.md")
	code, doc, errText := execQconv(t, "card", out, "-o", file, "--json")
	if code != 0 {
		t.Fatalf("card -o --json: exit %d\n%s", code, errText)
	}
	var c card.Card
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("stdout is not one card document: %v\n%.500s", err, doc)
	}
	if len(c.Bundles) != 1 || c.Bundles[0].Path != "gpu-pipelined/tinyqwen35_code_decode_int8lin/" || c.Bundles[0].Weights != "int8 block-32" || c.Bundles[0].Gate.Status != "not gated" {
		t.Errorf("card document: %+v", c.Bundles)
	}
	written, err := os.ReadFile(file)
	if err != nil || string(written) != md {
		t.Errorf("-o wrote %d bytes (%v), not the stdout card (%d bytes)", len(written), err, len(md))
	}
	if !strings.Contains(errText, "wrote "+file) {
		t.Errorf("stderr: %s", errText)
	}

	bundle := filepath.Join(out, "gpu-pipelined", "tinyqwen35_code_decode_int8lin")
	if err := os.Rename(bundle, bundle+"_perchan_sym"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"renamed bundle", []string{"card", out}, "tinyqwen35_code_decode_int8lin_perchan_sym"},
		{"no argument", []string{"card"}, "accepts 1 arg"},
		{"missing -o directory", []string{"card", out, "-o", filepath.Join(out, "nope", "README.md")}, "flag -o"},
		{"missing tree", []string{"card", filepath.Join(out, "nope")}, "output directory"},
	} {
		code, stdoutText, errText := execQconv(t, c.args...)
		if code != exitcode.BadInput || stdoutText != "" || !strings.Contains(errText, c.want) {
			t.Errorf("%s: exit %d, stdout %q, stderr %s", c.name, code, stdoutText, errText)
		}
	}
}
