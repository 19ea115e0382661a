package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"qconv/internal/exitcode"
)

// --gate-stress through the binary: a bad value is exit 2 with nothing written; "gate" records a
// deciding fp16-accumulate verdict in the JSON document and on stderr.
func TestGateStressFlag(t *testing.T) {
	out := t.TempDir()
	code, _, errText := execQconv(t, "export", "--target", "ios-ane", "--gate-stress", "sometimes", trained, "-o", out)
	if code != exitcode.BadInput || !strings.Contains(errText, "--gate-stress") {
		t.Fatalf("exit %d: %s", code, errText)
	}
	if ents, _ := os.ReadDir(out); len(ents) > 0 {
		t.Errorf("left behind: %v", ents)
	}
	code, stdout, errText := execQconv(t, "export", "--target", "ios-ane", "--gate-stress", "gate", "--gate-tokens", "4", "--json", trained, "-o", t.TempDir())
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errText)
	}
	var doc struct {
		Bundles []struct {
			Stress *struct {
				Numerics         string  `json:"numerics"`
				Gates            bool    `json:"gates"`
				Passed           bool    `json:"passed"`
				MinPrefillCosine float64 `json:"min_prefill_cosine"`
			} `json:"gate_stress"`
		} `json:"bundles"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatal(err)
	}
	s := doc.Bundles[0].Stress
	if s == nil || s.Numerics != "fp16-accumulate" || !s.Gates || !s.Passed || !(s.MinPrefillCosine > 0.999) {
		t.Fatalf("gate_stress %+v", s)
	}
	if !strings.Contains(errText, "fp16-accumulate stress passed (gates)") {
		t.Errorf("stderr lacks the stress verdict:\n%s", errText)
	}
}

// Known slow shapes: the export warns on stderr, and targets lists them (text and JSON).
func TestSlowShapesThroughTheBinary(t *testing.T) {
	code, _, errText := execQconv(t, "export", "--target", "gpu-pipelined", "--head", "int8-block16", "--no-gate", trained, "-o", t.TempDir())
	if code != 0 || !strings.Contains(errText, "warning: slow on this delegate: int8 head per-block-16/8") {
		t.Fatalf("exit %d, stderr:\n%s", code, errText)
	}
	code, _, errText = execQconv(t, "targets")
	if code != 0 || !strings.Contains(errText, "3.2x slower than per-block-32") || !strings.Contains(errText, "ios-gpu default: slow on this delegate: LUT weights") {
		t.Fatalf("targets: exit %d:\n%s", code, errText)
	}
	code, stdout, _ := execQconv(t, "targets", "--json")
	var rows []struct {
		Name      string   `json:"name"`
		SlowNotes []string `json:"slow_notes"`
	}
	if err := json.Unmarshal([]byte(stdout), &rows); err != nil || code != 0 {
		t.Fatalf("%v: %s", err, stdout)
	}
	for _, r := range rows {
		if (r.Name == "ios-gpu") != (len(r.SlowNotes) == 1) {
			t.Errorf("%s: slow notes %q", r.Name, r.SlowNotes)
		}
	}
}
