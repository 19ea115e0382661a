package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"qconv/internal/exitcode"
)

// `qconv export --target macos-stock` on the trained fixture: the default recipe (int8
// per-block-32, untied int8 per-block-32 absmax head) passes the gate and the entrypoint check,
// the metadata carries Apple's function map and state classes, upstream mlir-opt reads the asset,
// and `qconv verify` re-gates a copy whose metadata lost qconv's block (a bundle another tool
// wrote), from its bytes alone.
func TestExportStockTarget(t *testing.T) {
	out := t.TempDir()
	code, stdout, stderrText := execQconv(t, "export", "--target", "macos-stock", trained, "-o", out, "--json")
	if code != 0 {
		t.Fatalf("export: exit %d\n%s", code, stderrText)
	}
	var doc exportDoc
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil || len(doc.Bundles) != 1 || !doc.Passed {
		t.Fatalf("export doc: %v %s", err, stdout)
	}
	b := doc.Bundles[0]
	if b.Name != "tinyqwen35_code_stock_int8hu_block32_sym" || !b.Gate.Passed || b.Recipe["weights"] != "int8-block32" || b.Recipe["head"] != "int8" {
		t.Fatalf("bundle %+v", b)
	}
	raw, err := os.ReadFile(filepath.Join(b.Path, "metadata.json"))
	if err != nil {
		t.Fatal(err)
	}
	var md struct {
		Language struct {
			FunctionMap map[string][]string `json:"function_map"`
			States      map[string]string   `json:"states"`
		} `json:"language"`
		QConv struct {
			Contract   string `json:"contract"`
			GateReport struct {
				Decode struct {
					Prompts []struct {
						Length int `json:"length"`
					} `json:"prompts"`
				} `json:"decode"`
				Companion struct {
					Passed  bool `json:"passed"`
					Prompts []struct {
						Name      string `json:"name"`
						Identical bool   `json:"identical"`
						Passed    bool   `json:"passed"`
					} `json:"prompts"`
				} `json:"companion"`
			} `json:"gate_report"`
		} `json:"qconv"`
	}
	if err := json.Unmarshal(raw, &md); err != nil {
		t.Fatal(err)
	}
	if fm := md.Language.FunctionMap["main"]; len(fm) != 1 || fm[0] != "main" {
		t.Errorf("function_map %v", md.Language.FunctionMap)
	}
	wantStates := map[string]string{"keyCache": "kv_cache", "valueCache": "kv_cache", "convStates": "fixed", "recurrentStates": "fixed"}
	for k, v := range wantStates {
		if md.Language.States[k] != v {
			t.Errorf("states %v", md.Language.States)
		}
	}
	cc := md.QConv.GateReport.Companion
	multi := 0 // every gate prompt of two or more tokens is fed both ways Apple's runner may
	for _, p := range md.QConv.GateReport.Decode.Prompts {
		if p.Length >= 2 {
			multi++
		}
	}
	if md.QConv.Contract != "stock" || !cc.Passed || multi < 5 || len(cc.Prompts) != 2*multi {
		t.Fatalf("contract %q, entrypoint check %+v", md.QConv.Contract, cc)
	}
	for _, p := range cc.Prompts {
		if !p.Passed || !(strings.HasSuffix(p.Name, "(@prefill then @main)") || strings.HasSuffix(p.Name, "(@main, whole prompt)")) {
			t.Errorf("entrypoint check row %+v", p)
		}
	}
	if _, err := os.Stat(filepath.Join(b.Path, "tokenizer", "tokenizer.json")); err != nil {
		t.Errorf("tokenizer not bundled: %v", err)
	}

	asset := filepath.Join(b.Path, b.Name+".aimodel", "main.mlirb")
	if opt := "/usr/lib/llvm-22/bin/mlir-opt"; fileExists(opt) {
		printed, err := exec.Command(opt, "--allow-unregistered-dialect", "--mlir-print-op-generic", "--mlir-elide-elementsattrs-if-larger=8", "--mlir-elide-resource-strings-if-larger=8", asset).Output()
		if err != nil {
			t.Fatalf("mlir-opt: %v", err)
		}
		for _, s := range []string{`sym_name = "main"`, `sym_name = "prefill"`, `composite_decl = #coreai.composite_declaration<"gated_delta_update"`, `coreai.name = "recurrentStates"`} {
			if !strings.Contains(string(printed), s) {
				t.Errorf("mlir-opt's print lacks %s", s)
			}
		}
	}

	// A bundle another tool wrote: no qconv block, no states map, another directory name.
	foreign := filepath.Join(t.TempDir(), "Qwen3.5-0.8B-apple")
	if err := os.CopyFS(foreign, os.DirFS(b.Path)); err != nil {
		t.Fatal(err)
	}
	var generic map[string]any
	json.Unmarshal(raw, &generic)
	delete(generic, "qconv")
	delete(generic["language"].(map[string]any), "states")
	stripped, _ := json.Marshal(generic)
	if err := os.WriteFile(filepath.Join(foreign, "metadata.json"), stripped, 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderrText = execQconv(t, "verify", foreign, "--reference", trained, "--json")
	if code != 0 {
		t.Fatalf("verify of the stripped copy: exit %d\n%s", code, stderrText)
	}
	var vdoc struct {
		Passed    bool `json:"passed"`
		Companion struct {
			Prompts []json.RawMessage `json:"prompts"`
		} `json:"companion"`
	}
	if err := json.Unmarshal([]byte(stdout), &vdoc); err != nil || !vdoc.Passed || len(vdoc.Companion.Prompts) != 2*multi {
		t.Fatalf("verify doc: %v %s", err, stdout)
	}
	// Bytes changed after writing: main.hash no longer matches, exit 2 naming it.
	asset2 := filepath.Join(foreign, b.Name+".aimodel", "main.mlirb")
	data, err := os.ReadFile(asset2)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 1
	tampered := filepath.Join(t.TempDir(), "tampered")
	if err := os.CopyFS(tampered, os.DirFS(foreign)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tampered, b.Name+".aimodel", "main.mlirb"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errText := execQconv(t, "verify", tampered, "--reference", trained); code != exitcode.BadInput || !strings.Contains(errText, "main.hash") {
		t.Errorf("verify of tampered bytes: exit %d: %s", code, errText)
	}
	// Against another checkpoint's reference it is refused, naming the mismatch.
	if code, _, errText := execQconv(t, "verify", foreign, "--reference", "../../testdata/random/tiny_tied_4L"); code == 0 || code == exitcode.Internal {
		t.Errorf("verify against another checkpoint: exit %d: %s", code, errText)
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }
