package export

import (
	"bytes"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"qconv/graph"
	"qconv/graph/interp"
	"qconv/graph/mlir"
	"qconv/internal/testfix"
	"qconv/recipe"
)

const mlirOptPath = "/usr/lib/llvm-22/bin/mlir-opt"

func mlirOpt(t *testing.T, args ...string) []byte {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(mlirOptPath, append([]string{"--allow-unregistered-dialect"}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("mlir-opt %v: %v\n%s", args, err, stderr.String())
	}
	return stdout.Bytes()
}

// For every target and every weights scheme, the graph qconv ships is accepted by upstream
// mlir-opt 22, whose generic print of qconv's bytecode equals qconv's own text for the same
// graph (no normalisation); the bytecode mlir-opt re-emits from that text reads back into an
// identical IR whose blobs are byte-identical to the quantized data; and the interpreter gives
// the same logits on the bytes read back as on the in-memory graph.
func TestShippedGraphsThroughMLIROpt(t *testing.T) {
	if _, err := os.Stat(mlirOptPath); err != nil {
		t.Skipf("upstream mlir-opt not found at %s (Debian package mlir-22-tools): skipping", mlirOptPath)
	}
	ck := testfix.Open(t, fixture)
	cases := []struct {
		target string
		flags  recipe.Flags
	}{
		{"gpu-pipelined", recipe.Flags{Weights: "fp16"}},
		{"gpu-pipelined", recipe.Flags{HeadSym: true}},
		{"gpu-pipelined", recipe.Flags{Weights: "int4-block32"}},
		{"gpu-pipelined", recipe.Flags{Weights: "int8-perchan", AllowDelegate: true}},
		{"gpu-pipelined", recipe.Flags{Compute: "fp32"}},
		{"ios-gpu", recipe.Flags{}},
		{"ios-ane", recipe.Flags{}},
		{"ios-ane", recipe.Flags{Weights: "int4-lut"}},
		{"macos-stock", recipe.Flags{}},
	}
	dir := t.TempDir()
	for _, c := range cases {
		tgt, err := recipe.TargetByName(c.target)
		if err != nil {
			t.Fatal(err)
		}
		built, err := Build(ck, tgt, c.flags)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range []*graph.Module{built.Decode, built.Prefill} {
			if m == nil {
				continue
			}
			name := built.Name
			if i == 1 {
				name += "_prefill"
			}
			t.Run(name, func(t *testing.T) {
				var bc, text bytes.Buffer
				if err := mlir.WriteBytecode(&bc, m, "qconv test"); err != nil {
					t.Fatal(err)
				}
				if err := mlir.WriteText(&text, m); err != nil {
					t.Fatal(err)
				}
				bcPath := filepath.Join(dir, name+".mlirb")
				textPath := filepath.Join(dir, name+".mlir")
				os.WriteFile(bcPath, bc.Bytes(), 0o644)
				os.WriteFile(textPath, text.Bytes(), 0o644)
				printed := mlirOpt(t, "--mlir-print-op-generic", bcPath)
				if !bytes.Equal(printed, text.Bytes()) {
					t.Fatalf("mlir-opt's generic print of the bytecode differs from qconv's text (%d vs %d bytes)", len(printed), text.Len())
				}
				reemitted := mlirOpt(t, "--emit-bytecode", textPath)
				back, err := mlir.ReadBytecode(reemitted)
				if err != nil {
					t.Fatal(err)
				}
				if err := graph.EqualModules(m, back); err != nil {
					t.Fatalf("mlir-opt's bytecode reads back differently: %v", err)
				}
				for _, r := range m.Resources {
					if rb := back.Resource(r.Key); rb == nil || !bytes.Equal(rb.Data, r.Data) {
						t.Fatalf("blob %s is not byte-identical after mlir-opt", r.Key)
					}
				}
				if i == 0 {
					ours, err := mlir.ReadBytecode(bc.Bytes())
					if err != nil {
						t.Fatal(err)
					}
					sameLogits(t, m, ours)
				}
			})
		}
	}
}

// sameLogits steps both modules through a prompt and requires bit-identical logits.
func sameLogits(t *testing.T, a, b *graph.Module) {
	t.Helper()
	sa, err := interp.NewSession(a, nil)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := interp.NewSession(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []int{321, 285, 75, 68, 10, 80, 310} {
		la, err := sa.Step(id)
		if err != nil {
			t.Fatal(err)
		}
		lb, err := sb.Step(id)
		if err != nil {
			t.Fatal(err)
		}
		for i := range la {
			if math.Float32bits(la[i]) != math.Float32bits(lb[i]) {
				t.Fatalf("logit %d: in memory %v, from the bytes %v", i, la[i], lb[i])
			}
		}
	}
}
