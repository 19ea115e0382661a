package main

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"qconv/internal/exitcode"
	"qconv/internal/golden"
	"qconv/internal/synth"
)

// The invariant of issue 13, as a matrix: for every checkpoint layout qconv accepts, every
// target and the recipes a user reaches by default and by the documented flags, what export
// publishes inspect derives the same name and recipe from, verify re-gates (where it was
// gated) and card describes; or export refuses up front with exit 2 naming the flag. Never
// exit 1, and names are well formed.

// matrixRecipes are the documented recipe flags (nil: the target's default).
var matrixRecipes = [][]string{
	nil,
	{"--head-sym"},
	{"--head", "int8"},
	{"--weights", "fp16"},
	{"--weights", "int8-lut"},
	{"--weights", "int8-block32"},
	{"--compute", "fp32"},
}

// bundleName is what a bundle directory name must look like: lowercase words joined by single
// underscores (no empty segment, no double underscore, no trailing underscore).
var bundleName = regexp.MustCompile(`^[a-z0-9]+(_[a-z0-9]+)*$`)

type matrixLayout struct {
	name   string
	dir    string
	gated  bool // trained: the default and --head-sym exports are gated, and verify re-gates them
	untied bool
	all    bool // every recipe (else the default recipe only)
}

// untiedTrained writes a copy of the trained tied fixture whose config unties the head and
// whose lm_head.weight is stored as its own tensor, equal to the embedding: an untied trained
// checkpoint whose fp32 logits are the tied goldens'.
func untiedTrained(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tinyqwen35-code-untied")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"tokenizer.json", "tokenizer_config.json", "generation_config.json"} {
		b, err := os.ReadFile(filepath.Join(trained, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var cfg map[string]any
	b, err := os.ReadFile(filepath.Join(trained, "config.json"))
	if err != nil || json.Unmarshal(b, &cfg) != nil {
		t.Fatalf("config.json: %v", err)
	}
	cfg["tie_word_embeddings"] = false
	b, _ = json.MarshalIndent(cfg, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := os.ReadFile(filepath.Join(trained, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(st)
	var header map[string]json.RawMessage
	if err := json.Unmarshal(st[8:8+n], &header); err != nil {
		t.Fatal(err)
	}
	data := st[8+n:]
	var emb struct {
		DType   string  `json:"dtype"`
		Shape   []int   `json:"shape"`
		Offsets []int64 `json:"data_offsets"`
	}
	if err := json.Unmarshal(header["model.embed_tokens.weight"], &emb); err != nil {
		t.Fatal(err)
	}
	head := emb
	head.Offsets = []int64{int64(len(data)), int64(len(data)) + emb.Offsets[1] - emb.Offsets[0]}
	header["lm_head.weight"], _ = json.Marshal(head)
	h, _ := json.Marshal(header)
	for len(h)%8 != 0 {
		h = append(h, ' ')
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	out = append(append(append(out, h...), data...), data[emb.Offsets[0]:emb.Offsets[1]]...)
	if err := os.WriteFile(filepath.Join(dir, "model.safetensors"), out, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// scaledSynth writes the scaled-down variant of a published size (widths / 32, 4 layers,
// vocabulary 512): hidden 32 for 0.8b, 80 (not a multiple of 32) for 4b.
func scaledSynth(t testing.TB, size, layout string, poison *synth.Poison) string {
	t.Helper()
	d := synth.Sizes[size].Scaled(32, 4, 512)
	dir := filepath.Join(t.TempDir(), "qwen3.5-"+size+"-"+layout)
	if err := synth.Write(dir, synth.Options{Dims: d, Layout: layout, Poison: poison}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func matrixLayouts(t *testing.T) []matrixLayout {
	ls := []matrixLayout{
		{name: "trained tied", dir: trained, gated: true}, // every recipe: export_test.go and the export package
		{name: "trained untied", dir: untiedTrained(t), gated: true, untied: true, all: true},
		{name: "random tied", dir: "../../testdata/random/tiny_tied_4L", all: true},
		{name: "random untied", dir: "../../testdata/random/tiny_untied_8L", untied: true, all: true},
		{name: "random untied multimodal", dir: "../../testdata/random/tiny_untied_8L-multimodal", untied: true, all: true},
	}
	for _, size := range synth.SizeNames {
		for _, layout := range []string{synth.Multimodal, synth.TextOnly} {
			all := size == "0.8b" || size == "4b" // hidden 32 and hidden 80
			ls = append(ls, matrixLayout{name: size + " " + layout, dir: scaledSynth(t, size, layout, nil), untied: !synth.Sizes[size].Tied, all: all})
		}
	}
	return ls
}

func TestEveryLayoutTargetRecipe(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1767225600")
	for _, l := range matrixLayouts(t) {
		t.Run(l.name, func(t *testing.T) {
			for i, recipe := range matrixRecipes {
				if i > 0 && !l.all {
					break
				}
				name := strings.Join(recipe, " ")
				if name == "" {
					name = "default"
				}
				t.Run(name, func(t *testing.T) { exportMatrixCell(t, l, recipe, i == 0) })
			}
		})
	}
}

func exportMatrixCell(t *testing.T, l matrixLayout, recipe []string, verifyAll bool) {
	out := t.TempDir()
	args := append([]string{"export", "--target", "all", l.dir, "-o", out, "--json"}, recipe...)
	// The gate's cost bounds the matrix: the trained layouts gate the default recipe and the
	// ship configuration (--head-sym); the rest are published --no-gate and checked for agreement.
	gated := l.gated && (len(recipe) == 0 || recipe[0] == "--head-sym")
	if !gated {
		args = append(args, "--no-gate")
	}
	code, stdout, errText := execQconv(t, args...)
	switch {
	case code == exitcode.BadInput && len(recipe) > 0 && strings.Contains(errText, recipe[0]):
		return // refused up front, naming the flag
	case code != 0:
		t.Fatalf("qconv %s: exit %d\n%s", strings.Join(args, " "), code, errText)
	}
	var doc exportDoc
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Bundles) != 5 {
		t.Fatalf("%d bundles, want 5 (gpu-pipelined, ios-gpu decode and prefill, ios-ane, macos)", len(doc.Bundles))
	}
	intHead := false
	for _, f := range recipe {
		intHead = intHead || f == "--head-sym" || f == "--head"
	}
	wantHead := "tied"
	if l.untied {
		wantHead = "untied"
	}
	for i, b := range doc.Bundles {
		if !bundleName.MatchString(b.Name) {
			t.Errorf("bundle name %q is malformed", b.Name)
		}
		if h := b.Recipe["head"]; !intHead && h != wantHead {
			t.Errorf("%s: export records head %v, want %s", b.Name, h, wantHead)
		}
		code, js, errText := execQconv(t, "inspect", b.Path, "--json")
		if code != 0 {
			t.Errorf("inspect %s: exit %d\n%s", b.Name, code, errText)
			continue
		}
		var in struct {
			Name    string `json:"name"`
			Derived struct {
				Weights, Head, Compute string
				HeadGranularity        string `json:"head_granularity"`
			} `json:"derived"`
			Metadata struct {
				QConv struct {
					Recipe struct {
						Weights, Head, Compute string
						HeadGranularity        string `json:"head_granularity"`
					} `json:"recipe"`
				} `json:"qconv"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal([]byte(js), &in); err != nil {
			t.Fatal(err)
		}
		r := in.Metadata.QConv.Recipe
		if in.Name != b.Name || in.Derived.Weights != r.Weights || in.Derived.Head != r.Head || in.Derived.Compute != r.Compute || in.Derived.Head != b.Recipe["head"] {
			t.Errorf("%s: inspect derives %+v from the bytes, metadata says %+v, export said %v", b.Name, in.Derived, r, b.Recipe)
		}
		if !gated || !(verifyAll || i == 0) {
			continue
		}
		path := b.Path
		if i%2 == 1 {
			path += string(filepath.Separator) // another spelling of the same directory
		}
		if code, _, errText := execQconv(t, "verify", path, "--reference", l.dir); code != 0 {
			t.Errorf("verify %s: exit %d\n%s", b.Name, code, errText)
		}
	}
	code, md, errText := execQconv(t, "card", out)
	if code != 0 {
		t.Fatalf("card: exit %d\n%s", code, errText)
	}
	for _, b := range doc.Bundles {
		if !strings.Contains(md, b.Name) {
			t.Errorf("card does not list %s", b.Name)
		}
	}
	if l.untied && !intHead {
		word := "untied fp16"
		if len(recipe) == 2 && recipe[1] == "fp32" {
			word = "untied fp32"
		}
		if !strings.Contains(md, "| "+word+" |") {
			t.Errorf("card does not say %q of an untied checkpoint's float head", word)
		}
	}
}

// The untied copy of the trained fixture is the same model: its fp32 reference reproduces the
// transformers goldens of the tied original, and its top-5 logits are bit-identical to the tied
// checkpoint's (the head bytes are the embedding's).
func TestUntiedTrainedMatchesTiedGoldens(t *testing.T) {
	fixtures, err := golden.Fixtures()
	if err != nil {
		t.Fatal(err)
	}
	dir := untiedTrained(t)
	for _, name := range []string{"h0", "h1"} {
		p, _ := fixtures[0].Golden.Prompt(name)
		ids := joinInts(p.IDs)
		untied := runDoc(t, "run", dir, "--ids", ids, "--json")
		checkSteps(t, untied, p)
		tied := runDoc(t, "run", trained, "--ids", ids, "--json")
		for s := range tied.Steps {
			for k := range tied.Steps[s].Top5Logits {
				if untied.Steps[s].Top5IDs[k] != tied.Steps[s].Top5IDs[k] || untied.Steps[s].Top5Logits[k] != tied.Steps[s].Top5Logits[k] {
					t.Fatalf("%s step %d: untied top-5 %v %v, tied %v %v", name, s, untied.Steps[s].Top5IDs, untied.Steps[s].Top5Logits, tied.Steps[s].Top5IDs, tied.Steps[s].Top5Logits)
				}
			}
		}
	}
}

// A NaN weight anywhere (embedding, a quantized Linear, a norm, an untied head) is bad input on
// every command that reads weights, named by tensor, row and column, before any graph runs.
func TestNonFiniteWeights(t *testing.T) {
	cases := []struct {
		size, tensor string
		row, col     int
	}{
		{"0.8b", "model.language_model.embed_tokens.weight", 7, 3},
		{"0.8b", "model.language_model.layers.1.mlp.up_proj.weight", 5, 30},
		{"0.8b", "model.language_model.layers.3.self_attn.q_norm.weight", 0, 2},
		{"9b", "lm_head.weight", 100, 17},
	}
	for _, c := range cases {
		t.Run(c.tensor, func(t *testing.T) {
			dir := scaledSynth(t, c.size, synth.Multimodal, &synth.Poison{Tensor: c.tensor, Row: c.row, Col: c.col})
			want := c.tensor + " (model.safetensors): row " + itoa(c.row) + ", column " + itoa(c.col) + " is NaN"
			runs := [][]string{
				{"run", dir, "--ids", "1,2,3", "-n", "2"},
				{"run", dir, "--target", "gpu-pipelined", "--ids", "1,2,3", "-n", "2"},
				{"run", dir, "--target", "ios-ane", "--ids", "1,2,3", "-n", "2"},
			}
			for _, target := range []string{"gpu-pipelined", "ios-gpu", "ios-ane", "macos"} {
				runs = append(runs, []string{"export", "--target", target, dir, "-o", t.TempDir()})
				runs = append(runs, []string{"export", "--target", target, "--no-gate", dir, "-o", t.TempDir()})
			}
			for _, args := range runs {
				code, _, errText := execQconv(t, args...)
				if code != exitcode.BadInput || !strings.Contains(errText, want) {
					// A quantized tensor is named by the quantizer: tensor, row, column, "not finite".
					q := "tensor " + c.tensor + ": row " + itoa(c.row) + ", column " + itoa(c.col) + ": weight is not finite"
					if code != exitcode.BadInput || !strings.Contains(errText, q) {
						t.Errorf("qconv %s: exit %d, want 2 naming %q:\n%s", strings.Join(args, " "), code, want, errText)
					}
				}
			}
		})
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// MoE checkpoints are refused up front, naming what is supported.
func TestMoERefused(t *testing.T) {
	dir := scaledSynth(t, "0.8b", synth.Multimodal, nil)
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	moe := strings.Replace(string(b), `"model_type": "qwen3_5"`, `"model_type": "qwen3_5_moe"`, 1)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(moe), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"info", dir}, {"export", "--target", "all", dir, "-o", t.TempDir()}, {"run", dir, "--ids", "1"}} {
		code, _, errText := execQconv(t, args...)
		if code != exitcode.BadInput || !strings.Contains(errText, "qwen3_5_moe") || !strings.Contains(errText, "dense") || !strings.Contains(errText, "qwen3_5_text") {
			t.Errorf("qconv %s: exit %d: %s", args[0], code, errText)
		}
	}
}
