package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"qconv/internal/exitcode"
)

// `qconv card --speed`: the figures land in the bundle's Run it section with device, OS and
// date; a bad file is exit 2 naming the file and the field, with nothing on stdout and no -o file.
func TestCardSpeedCommand(t *testing.T) {
	out := t.TempDir()
	fixture := filepath.Join("..", "..", "testdata", "tinyqwen35-code")
	if code, _, errText := execQconv(t, "export", "--head-sym", "--target", "gpu-pipelined", "--no-gate", fixture, "-o", out); code != 0 {
		t.Fatalf("export: exit %d\n%s", code, errText)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "speed.json")
	os.WriteFile(good, []byte(`{"measurements": [{"bundle": "gpu-pipelined/tinyqwen35_code_decode_int8hu_block32_sym/", "device": "iPhone 17 Pro", "os": "iOS 27.0", "date": "2026-09-02", "decode_tok_s": 74}]}`), 0o644)
	code, md, errText := execQconv(t, "card", out, "--speed", good)
	if code != 0 {
		t.Fatalf("card --speed: exit %d\n%s", code, errText)
	}
	for _, want := range []string{
		"\n## Run it\n",
		"### `gpu-pipelined/tinyqwen35_code_decode_int8hu_block32_sym/`",
		`COREAI_CHUNK_THRESHOLD=1 swift run -c release llm-benchmark --model "$BUNDLES/gpu-pipelined/tinyqwen35_code_decode_int8hu_block32_sym"`,
		"| iPhone 17 Pro | iOS 27.0 | 2026-09-02 | 74 | — | — |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("card lacks %q", want)
		}
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"measurements": [{"bundle": "gpu-pipelined/tinyqwen35_code_decode_int8hu_block32_sym/", "device": "iPhone", "os": "iOS 27.0", "date": "2026-13-40", "decode_tok_s": 74}]}`), 0o644)
	readme := filepath.Join(dir, "README.md")
	code, stdoutText, errText := execQconv(t, "card", out, "--speed", bad, "-o", readme)
	if code != exitcode.BadInput || stdoutText != "" || !strings.Contains(errText, bad) || !strings.Contains(errText, "measurements[0].date") {
		t.Errorf("bad --speed: exit %d, stdout %q, stderr %s", code, stdoutText, errText)
	}
	if _, err := os.Stat(readme); !os.IsNotExist(err) {
		t.Errorf("a failed card wrote %s (%v)", readme, err)
	}
}
