package export

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"qconv/graph/mlir"
	"qconv/hf"
	"qconv/internal/testfix"
	"qconv/recipe"
)

var (
	genericOp  = regexp.MustCompile(`^\s*(%[0-9]+)(?::([0-9]+))? = "([a-z_.0-9]+)"\(([^)]*)\)`)
	genericOpN = regexp.MustCompile(`^\s*"([a-z_.0-9]+)"\(([^)]*)\)`)
	blockArg   = regexp.MustCompile(`(%arg[0-9]+): (!coreai\.handle<tensor<[^>]*>>|[^,)]+)`)
)

// Every pipelined bundle, as upstream mlir-opt prints it generically, writes each state exactly
// once, and no slice_update on a fixed-shape state takes another slice_update as its input (the
// GPU delegate drops such chained writes). The KV pair (dynamic shape) keeps one shape-derived
// slice_update per full-attention layer.
func TestPipelinedBundlesOneWritePerStateInMLIROpt(t *testing.T) {
	if _, err := os.Stat(mlirOptPath); err != nil {
		t.Skipf("upstream mlir-opt not found at %s: skipping", mlirOptPath)
	}
	dir := t.TempDir()
	for _, c := range []struct {
		ck     string
		target string
		flags  recipe.Flags
	}{
		{fixture, "gpu-pipelined", recipe.Flags{}},
		{fixture, "gpu-pipelined", recipe.Flags{HeadSym: true}},
		{fixture, "gpu-pipelined", recipe.Flags{Weights: "fp16"}},
		{fixture, "gpu-pipelined", recipe.Flags{Compute: "fp32"}},
		{fixture, "ios-ane", recipe.Flags{}},
		{fixture, "ios-ane", recipe.Flags{Weights: "int4-lut"}},
		{fixture, "macos", recipe.Flags{Weights: "int8-block32"}},
		{"random/tiny_untied_8L-multimodal", "gpu-pipelined", recipe.Flags{}},
		{"random/tiny_untied_8L-multimodal", "ios-ane", recipe.Flags{}},
	} {
		ck := testfix.Open(t, c.ck)
		tgt, err := recipe.TargetByName(c.target)
		if err != nil {
			t.Fatal(err)
		}
		built, err := Build(ck, tgt, c.flags)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(c.target+"/"+built.Name, func(t *testing.T) {
			var bc bytes.Buffer
			if err := mlir.WriteBytecode(&bc, built.Decode, "qconv test"); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, built.Name+".mlirb")
			if err := os.WriteFile(path, bc.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			text := string(mlirOpt(t, "--mlir-print-op-generic", path))
			handles := map[string]string{} // %argN -> its tensor type
			defOp := map[string]string{}   // SSA result -> op name
			firstIn := map[string]string{} // SSA result -> its op's first operand
			writes := map[string]int{}
			var updates [][2]string // (result, input) of each slice_update
			for _, line := range strings.Split(text, "\n") {
				if strings.Contains(line, "^bb0(") {
					for _, m := range blockArg.FindAllStringSubmatch(line, -1) {
						if strings.HasPrefix(m[2], "!coreai.handle") {
							handles[m[1]] = m[2]
						}
					}
					continue
				}
				var res, name, args string
				if m := genericOp.FindStringSubmatch(line); m != nil {
					res, name, args = m[1], m[3], m[4]
					if m[2] != "" {
						res += "#0"
					}
				} else if m := genericOpN.FindStringSubmatch(line); m != nil {
					name, args = m[1], m[2]
				} else {
					continue
				}
				ops := strings.Split(args, ", ")
				if res != "" {
					defOp[res] = name
					firstIn[res] = ops[0]
				}
				switch name {
				case "coreai.write_handle":
					writes[ops[0]]++
				case "coreai.slice_update":
					updates = append(updates, [2]string{res, ops[0]})
				}
			}
			if len(handles) != 4 {
				t.Fatalf("found %d state handles in the generic print, want 4", len(handles))
			}
			fixed := 0
			for arg, typ := range handles {
				if writes[arg] != 1 {
					t.Errorf("state %s %s is written %d times, want once", arg, typ, writes[arg])
				}
				if !strings.Contains(typ, "?") {
					fixed++
				}
			}
			if fixed != 2 {
				t.Errorf("%d fixed-shape states, want 2 (convState, recState)", fixed)
			}
			// root follows slice_update inputs back to the read_handle and its handle.
			root := func(v string) string {
				for defOp[v] == "coreai.slice_update" {
					v = firstIn[v]
				}
				if defOp[v] == "coreai.read_handle" {
					return firstIn[v]
				}
				return ""
			}
			kv := 0
			for _, u := range updates {
				h := root(u[1])
				typ, ok := handles[h]
				if !ok {
					t.Errorf("slice_update %s does not update a state", u[0])
					continue
				}
				if !strings.Contains(typ, "?") {
					t.Errorf("slice_update %s updates fixed-shape state %s %s; want one fused write", u[0], h, typ)
				}
				kv++
			}
			if want := 2 * ck.Config.NumLayersOf(hf.FullAttention); kv != want {
				t.Errorf("%d KV slice_updates, want %d", kv, want)
			}
		})
	}
}
