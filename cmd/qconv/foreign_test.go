package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"qconv/graph"
	"qconv/graph/mlir"
	"qconv/hf"
	"qconv/internal/exitcode"
	"qconv/lower"
)

// writeAppleBundle writes a bundle in the form Apple's exporter writes for Qwen3.5
// (docs/verify-foreign.md): @main and @prefill with Apple's inputs and states, the rms_norm,
// scaled_dot_product_attention and gated_delta_update composites invoked, fused projections,
// dense fp16 weights (Apple's --compression none, in fp16 where Apple keeps bf16), the tokenizer
// in tokenizer/, and Apple's metadata.json: schema 0.2, {"main": ["main"]}, no states map, no
// qconv block. edit changes the module before it is written, patch its bytes after (main.hash is
// the SHA-256 of the patched bytes).
func writeAppleBundle(t *testing.T, dir, name string, edit func(m *graph.Module), patch func([]byte) []byte) string {
	t.Helper()
	ck, err := hf.Open(trained)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	m, err := lower.Lower(ck.Config, lower.Options{Contract: graph.Stock, Compute: graph.F16, StateDType: graph.F32, NormDType: graph.F32,
		AppleComposites: true, Weights: lower.DenseWeights{Checkpoint: ck, DType: graph.F16}})
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(m)
	}
	var buf bytes.Buffer
	if err := mlir.WriteBytecode(&buf, m, "apple-form test"); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	if patch != nil {
		data = patch(data)
	}
	root := filepath.Join(dir, name)
	asset := filepath.Join(root, name+".aimodel")
	for _, d := range []string{asset, filepath.Join(root, "tokenizer")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sum := sha256.Sum256(data)
	files := map[string][]byte{filepath.Join(asset, "main.mlirb"): data, filepath.Join(asset, "main.hash"): sum[:]}
	for _, f := range []string{"tokenizer.json", "tokenizer_config.json"} {
		b, err := os.ReadFile(filepath.Join(trained, f))
		if err != nil {
			t.Fatal(err)
		}
		files[filepath.Join(root, "tokenizer", f)] = b
	}
	md, _ := json.MarshalIndent(map[string]any{
		"metadata_version": "0.2", "kind": "llm", "name": name,
		"assets": map[string]string{"main": name + ".aimodel"},
		"language": map[string]any{"tokenizer": "tinyqwen35-code", "vocab_size": ck.Config.VocabSize, "max_context_length": ck.Config.MaxPositionEmbeddings,
			"embedded_tokenizer": true, "function_map": map[string][]string{"main": {"main"}}},
		"source":      map[string]string{"model_definition": "torch", "hf_model_id": "tinyqwen35-code"},
		"compression": nil,
		"compilation": map[string]any{"date": "2026-01-01T00:00:00+00:00", "targets": []string{}},
	}, "", "  ")
	files[filepath.Join(root, "metadata.json")] = md
	for p, b := range files {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// `qconv verify --reference` through the binary on bundles in Apple's form: the faithful one
// passes the gate and the entrypoint check; one whose attention composite was declared with a
// one-key window (each query sees itself only) fails it with exit 3; one declaring an
// rms_norm qconv does not implement and one using an op qconv does not run are refused with
// exit 2 naming what is unsupported. (A loop in a composite body is read opaque and run by the
// declaration: graph/mlir's TestCompositeWithLoopReadOpaque.)
func TestVerifyAppleFormBundle(t *testing.T) {
	dir := t.TempDir()
	good := writeAppleBundle(t, dir, "Qwen3.5-tiny-apple", nil, nil)
	r := cli(t, "", nil, "verify", good, "--reference", trained, "--json")
	if r.code != 0 {
		t.Fatalf("verify of the Apple-form bundle: exit %d\n%s", r.code, r.stderr)
	}
	t.Logf("Apple-form bundle: exit 0: %s", strings.TrimSpace(r.stderr))
	var doc struct {
		Passed    bool `json:"passed"`
		Companion struct {
			Passed  bool              `json:"passed"`
			Prompts []json.RawMessage `json:"prompts"`
		} `json:"companion"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || !doc.Passed || !doc.Companion.Passed || len(doc.Companion.Prompts) < 10 {
		t.Fatalf("verify doc: %v %s", err, r.stdout)
	}
	if !strings.Contains(r.stderr, "recorded at export: not gated") {
		t.Errorf("stderr does not say the bundle carries no gate record:\n%s", r.stderr)
	}

	bad := writeAppleBundle(t, dir, "window1", func(m *graph.Module) {
		for _, f := range m.Funcs {
			if graph.CompositeName(f.Composite) == graph.CompositeSDPA {
				f.Composite = strings.Replace(f.Composite, "window_size = 0", "window_size = 1", 1)
			}
		}
	}, nil)
	r = cli(t, "", nil, "verify", bad, "--reference", trained)
	t.Logf("window_size = 1: exit %d: %s", r.code, strings.TrimSpace(r.stderr))
	if r.code != exitcode.GateFailed || !strings.Contains(r.stderr, "gate FAILED") {
		t.Errorf("verify of an attention declared to see one key: exit %d, want %d\n%s", r.code, exitcode.GateFailed, r.stderr)
	}

	// A non-causal attention changes only what multi-token calls compute (one query at a time sees
	// no future key): the gate of @main cannot see it, the entrypoint check's end rows must.
	nc := writeAppleBundle(t, dir, "noncausal", func(m *graph.Module) {
		for _, f := range m.Funcs {
			if graph.CompositeName(f.Composite) == graph.CompositeSDPA {
				f.Composite = strings.Replace(f.Composite, "is_causal = true", "is_causal = false", 1)
			}
		}
	}, nil)
	r = cli(t, "", nil, "verify", nc, "--reference", trained, "--json")
	t.Logf("is_causal = false: exit %d: %s", r.code, strings.TrimSpace(r.stderr))
	if r.code != exitcode.GateFailed || !strings.Contains(r.stderr, "last row through the prefill path differs") {
		t.Errorf("verify of a non-causal attention: exit %d, want %d naming the end row\n%s", r.code, exitcode.GateFailed, r.stderr)
	}

	for _, tc := range []struct {
		name, want string
		edit       func(m *graph.Module)
		patch      func([]byte) []byte
	}{
		{"axes", `rms_norm over axes "0"`, func(m *graph.Module) {
			for _, f := range m.Funcs {
				if graph.CompositeName(f.Composite) == graph.CompositeRMSNorm {
					f.Composite = strings.Replace(f.Composite, "axes = -1", "axes = 0", 1)
				}
			}
		}, nil},
		// A Core AI op qconv's interpreter does not run (the rotary table's cos renamed to tan).
		{"op", "coreai.tan", func(m *graph.Module) {
			for _, op := range m.Func(graph.FuncMain).Body {
				if op.Name == graph.OpCos {
					op.Name = "coreai.tan"
					return
				}
			}
		}, nil},
	} {
		b := writeAppleBundle(t, dir, tc.name, tc.edit, tc.patch)
		r := cli(t, "", nil, "verify", b, "--reference", trained)
		t.Logf("%s: exit %d: %s", tc.name, r.code, strings.TrimSpace(r.stderr))
		if r.code != exitcode.BadInput || !strings.Contains(r.stderr, tc.want) || !strings.Contains(r.stderr, "qconv cannot gate this bundle") {
			t.Errorf("%s: exit %d, want %d naming %s\n%s", tc.name, r.code, exitcode.BadInput, tc.want, r.stderr)
		}
	}
}
