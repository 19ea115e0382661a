package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"qconv/internal/exitcode"
)

// A prompt set that gives the reference too few confident positions is bad input, not a pass;
// --gate-min-confident 0 measures it anyway, with its figures in the JSON document.
func TestGateTooWeakPrompts(t *testing.T) {
	random := "../../testdata/random/tiny_tied_4L"
	out := t.TempDir()
	// A margin floor of 0.999 leaves (almost) no confident position on random weights.
	code, _, errText := execQconv(t, "export", "--target", "gpu-pipelined", "--gate-min-margin", "0.999", random, "-o", out)
	if code != exitcode.BadInput || !strings.Contains(errText, "gate prompts too weak for this checkpoint") || !strings.Contains(errText, "need at least 32") {
		t.Fatalf("exit %d: %s", code, errText)
	}
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Errorf("a refused gate left %v", ents)
	}
	// Every target at once: the first gate refuses the prompts, once, and the staged bundles
	// are all removed.
	code, _, errText = execQconv(t, "export", "--target", "all", "--gate-min-margin", "0.999", random, "-o", out)
	if code != exitcode.BadInput || strings.Count(errText, "gate prompts too weak for this checkpoint") != 1 {
		t.Fatalf("--target all: exit %d: %s", code, errText)
	}
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Errorf("a refused --target all left %v", ents)
	}
	code, stdout, errText := execQconv(t, "export", "--target", "gpu-pipelined", "--gate-min-margin", "0.999", "--gate-min-confident", "0", random, "-o", out, "--json")
	if code != exitcode.OK && code != exitcode.GateFailed {
		t.Fatalf("--gate-min-confident 0: exit %d: %s", code, errText)
	}
	var doc struct {
		Bundles []struct {
			Gate struct {
				Stats *struct {
					Positions int     `json:"positions"`
					KLDMean   float64 `json:"kld_mean"`
					SameTop1  float64 `json:"same_top1_pct"`
				} `json:"stats"`
			} `json:"gate"`
		} `json:"bundles"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil || len(doc.Bundles) != 1 || doc.Bundles[0].Gate.Stats == nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	// 1, 7, 33, 70 and 512 ids, each with 16 decoded tokens.
	if s := doc.Bundles[0].Gate.Stats; s.Positions != 1+7+33+70+512+5*16 || !(s.KLDMean > 0) || !(s.SameTop1 > 50) {
		t.Errorf("figures %+v", *s)
	}
	if code, _, errText := execQconv(t, "export", "--target", "gpu-pipelined", "--gate-min-confident", "-1", random, "-o", out); code != exitcode.BadInput || !strings.Contains(errText, "--gate-min-confident") {
		t.Errorf("negative minimum: exit %d: %s", code, errText)
	}
}

// inspect shows the recorded figures, verify re-measures them and applies thresholds given on
// its command line.
func TestGateFiguresInspectVerify(t *testing.T) {
	out := t.TempDir()
	if code, _, errText := execQconv(t, "export", "--target", "gpu-pipelined", trained, "-o", out); code != 0 {
		t.Fatalf("export: exit %d: %s", code, errText)
	}
	b := filepath.Join(out, "gpu-pipelined", "tinyqwen35_code_decode_int8lin")
	code, _, text := execQconv(t, "inspect", b) // the human account goes to stderr
	if code != 0 || !strings.Contains(text, "KLD mean 0.000") || !strings.Contains(text, "same top-1 99.") {
		t.Fatalf("inspect: exit %d: %s", code, text)
	}
	code, _, errText := execQconv(t, "verify", b, "--reference", trained)
	if code != 0 || !strings.Contains(errText, "KLD mean 0.000") {
		t.Fatalf("verify: exit %d: %s", code, errText)
	}
	code, _, errText = execQconv(t, "verify", b, "--reference", trained, "--gate-max-kld", "1e-6", "--gate-min-same-top", "99.9")
	if code != exitcode.GateFailed || !strings.Contains(errText, "--gate-max-kld 1e-06") || !strings.Contains(errText, "fail the gate") {
		t.Fatalf("verify with thresholds: exit %d: %s", code, errText)
	}
}
