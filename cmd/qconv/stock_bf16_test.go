package main

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"qconv/internal/exitcode"
)

// macos-stock's compute dtype through the CLI. The default is Apple's bf16 (bf16 states, fp16
// logits); --compute fp16 and fp32 are named for what they apply; inspect derives the same name,
// compute and recurrence dtype from the bytes, and card describes the bundle. bf16 on another
// target, and fp16 weights under bf16 compute, are refused naming the flag.
func TestStockComputeDTypes(t *testing.T) {
	const base = "tinyqwen35_code_stock_int8hu_block32_sym"
	for _, c := range []struct {
		flags              []string
		gate               bool
		name, compute, rec string
		card               string
	}{
		{nil, false, base, "bf16", "bf16", "verified: recurrent state bf16"},
		{[]string{"--compute", "bf16"}, false, base, "bf16", "bf16", "recurrent state bf16"},
		{[]string{"--compute", "fp16"}, true, base + "_fp16", "f16", "f32", "compute f16 (default bf16)"},
		{[]string{"--compute", "fp32"}, false, base + "_fp32", "f32", "f32", "compute f32 (default bf16)"},
	} {
		t.Run(strings.Join(append([]string{"default"}, c.flags...), " "), func(t *testing.T) {
			out := t.TempDir()
			args := append([]string{"export", "--target", "macos-stock", trained, "-o", out, "--json"}, c.flags...)
			if !c.gate {
				args = append(args, "--no-gate") // the default recipe's gate: TestExportStockTarget
			}
			code, stdout, errText := execQconv(t, args...)
			if code != 0 {
				t.Fatalf("export: exit %d\n%s", code, errText)
			}
			var doc exportDoc
			if err := json.Unmarshal([]byte(stdout), &doc); err != nil || len(doc.Bundles) != 1 {
				t.Fatalf("export doc: %v %s", err, stdout)
			}
			b := doc.Bundles[0]
			if b.Name != c.name || b.Recipe["compute"] != c.compute || b.Recipe["recurrence_dtype"] != c.rec || (c.gate && !b.Gate.Passed) {
				t.Fatalf("bundle %s, recipe %v, gate %+v; want %s computing in %s with a %s recurrence", b.Name, b.Recipe, b.Gate, c.name, c.compute, c.rec)
			}
			code, js, errText := execQconv(t, "inspect", b.Path, "--json")
			if code != 0 {
				t.Fatalf("inspect: exit %d\n%s", code, errText)
			}
			var in struct {
				Name    string `json:"name"`
				Derived struct {
					Compute string `json:"compute"`
				} `json:"derived"`
			}
			if err := json.Unmarshal([]byte(js), &in); err != nil {
				t.Fatal(err)
			}
			if in.Name != c.name || in.Derived.Compute != c.compute {
				t.Errorf("inspect derives %s computing in %s, want %s in %s", in.Name, in.Derived.Compute, c.name, c.compute)
			}
			code, md, errText := execQconv(t, "card", out)
			if code != 0 || !strings.Contains(md, c.name) || !strings.Contains(md, c.card) {
				t.Errorf("card: exit %d, lists %s: %v, says %q: %v\n%s", code, c.name, strings.Contains(md, c.name), c.card, strings.Contains(md, c.card), errText)
			}
			if c.compute != "bf16" {
				return
			}
			if !strings.Contains(md, "`recurrentStates` bf16") {
				t.Error("card does not show the bf16 recurrentStates")
			}
			// Upstream mlir-opt parses the bf16 asset; its generic print shows bf16 states on both
			// entrypoints, the bf16 dequantization, and the fp16 logits cast from bf16.
			opt := "/usr/lib/llvm-22/bin/mlir-opt"
			if !fileExists(opt) {
				t.Skip("mlir-opt 22 not installed")
			}
			asset := filepath.Join(b.Path, b.Name+".aimodel", "main.mlirb")
			cmd := exec.Command(opt, "--allow-unregistered-dialect", "--mlir-print-op-generic", "--mlir-elide-elementsattrs-if-larger=8", "--mlir-elide-resource-strings-if-larger=8", asset)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			printed, err := cmd.Output()
			if err != nil || stderr.Len() > 0 {
				t.Fatalf("mlir-opt: %v\n%s", err, stderr.String())
			}
			p := string(printed)
			for s, n := range map[string]int{
				"!coreai.handle<tensor<6x1x8x32x32xbf16>>":                                               2, // recurrentStates in @main's and @prefill's signatures
				"!coreai.handle<tensor<6x1x4x512xbf16>>":                                                 2, // convStates
				"!coreai.handle<tensor<2x1x2x?x64xbf16>>":                                                4, // keyCache, valueCache
				"(tensor<1x?x1024xbf16>) -> tensor<1x?x1024xf16>":                                        1, // the logits cast, @main only
				"tensor<1024x4xbf16>, tensor<1024x4xsi8>, tensor<1024x4xbf16>) -> tensor<1024x128xbf16>": 1, // the int8 head's bf16 dequantization
			} {
				if got := strings.Count(p, s); got < n {
					t.Errorf("mlir-opt's print has %d of %s, want %d or more", got, s, n)
				}
			}
		})
	}
	for _, c := range []struct {
		args []string
		flag string
	}{
		{[]string{"--target", "ios-gpu", "--compute", "bf16"}, "--compute"},
		{[]string{"--target", "macos-stock", "--weights", "fp16"}, "--weights"},
	} {
		code, _, errText := execQconv(t, append(append([]string{"export", trained, "-o", t.TempDir()}, c.args...), "--no-gate")...)
		if code != exitcode.BadInput || !strings.Contains(errText, c.flag) {
			t.Errorf("export %v: exit %d, want 2 naming %s: %s", c.args, code, c.flag, errText)
		}
	}
}

// macos-stock over every checkpoint layout the matrix covers (tied and untied, multimodal and
// text-only, hidden sizes multiple of 32 or not): the bf16 default and the fp16 form publish, and
// inspect derives the published name and compute from the bytes; or export refuses with exit 2.
// The trained untied layout's bf16 default is gated; the rest are published --no-gate and checked
// for agreement.
func TestStockEveryLayout(t *testing.T) {
	for _, l := range matrixLayouts(t) {
		for _, flags := range [][]string{nil, {"--compute", "fp16"}} {
			t.Run(l.name+" "+strings.Join(flags, " "), func(t *testing.T) {
				args := append([]string{"export", "--target", "macos-stock", l.dir, "-o", t.TempDir(), "--json"}, flags...)
				if !(l.gated && l.untied) || flags != nil {
					args = append(args, "--no-gate") // the trained tied default's gate: TestExportStockTarget
				}
				code, stdout, errText := execQconv(t, args...)
				switch {
				case code == exitcode.BadInput && strings.Contains(errText, "the target's default head") && strings.Contains(errText, "--head tied"):
					// The default int8 block-32 head needs a hidden size multiple of 32 (refused up
					// front, naming the default, not a flag nobody typed); the float head it offers works.
					args = append(args, "--head", "tied")
					if code, stdout, errText = execQconv(t, args...); code != 0 {
						t.Fatalf("qconv %s: exit %d\n%s", strings.Join(args, " "), code, errText)
					}
				case code != 0:
					t.Fatalf("qconv %s: exit %d\n%s", strings.Join(args, " "), code, errText)
				}
				var doc exportDoc
				if err := json.Unmarshal([]byte(stdout), &doc); err != nil || len(doc.Bundles) != 1 {
					t.Fatalf("export doc: %v %s", err, stdout)
				}
				b := doc.Bundles[0]
				code, js, errText := execQconv(t, "inspect", b.Path, "--json")
				if code != 0 {
					t.Fatalf("inspect %s: exit %d\n%s", b.Name, code, errText)
				}
				var in struct {
					Name    string `json:"name"`
					Derived struct {
						Weights, Head, Compute string
					} `json:"derived"`
				}
				if err := json.Unmarshal([]byte(js), &in); err != nil {
					t.Fatal(err)
				}
				if in.Name != b.Name || in.Derived.Compute != b.Recipe["compute"] || in.Derived.Weights != b.Recipe["weights"] || in.Derived.Head != b.Recipe["head"] {
					t.Errorf("%s: inspect derives %+v, export recorded %v", b.Name, in.Derived, b.Recipe)
				}
				if want := map[bool]string{true: "f16", false: "bf16"}[flags != nil]; b.Recipe["compute"] != want {
					t.Errorf("%s computes in %v, want %s", b.Name, b.Recipe["compute"], want)
				}
			})
		}
	}
}
