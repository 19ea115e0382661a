package export

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/x448/float16"

	"qconv/bundle"
	"qconv/gating"
	"qconv/graph"
	"qconv/graph/interp"
	"qconv/hf"
	"qconv/internal/exitcode"
	"qconv/internal/golden"
	"qconv/internal/kernels"
	"qconv/internal/testfix"
	"qconv/oracle"
	"qconv/recipe"
)

const fixture = testfix.Trained

func exportTargets(t testing.TB, ck *hf.Checkpoint, out string, targets string, f recipe.Flags, mod func(*Options)) (*Result, error) {
	t.Helper()
	ts, err := recipe.ParseTargets(targets)
	if err != nil {
		t.Fatal(err)
	}
	opt := Options{Checkpoint: ck, Targets: ts, Flags: f, OutDir: out, Version: "test"}
	if mod != nil {
		mod(&opt)
	}
	return Run(context.Background(), opt)
}

// goldenPrompts are the trained fixture's golden prompts as gate prompts.
func goldenPrompts(t testing.TB) ([]oracle.GatePrompt, *golden.Model) {
	t.Helper()
	gf, err := golden.LoadTrained()
	if err != nil {
		t.Fatal(err)
	}
	gm := gf.Models[fixture]
	var ps []oracle.GatePrompt
	for _, p := range gm.Prompts {
		ps = append(ps, oracle.GatePrompt{Name: p.Name, Text: p.Text, IDs: p.IDs})
	}
	return ps, gm
}

// The fp32 validation form of int8 block-32 absmax graphs reproduces the goldens' fake-quant
// variants: next_logits within 1e-3 and the greedy ids exactly (q8: tied fp16 head; q8hu: the
// head untied and quantized too), run from the shipped bytes through the interpreter.
func TestInt8GraphReproducesGoldens(t *testing.T) {
	ck := testfix.Open(t, fixture)
	_, gm := goldenPrompts(t)
	for _, c := range []struct {
		variant string
		flags   recipe.Flags
	}{
		{"q8", recipe.Flags{Weights: "int8-block32", Compute: "fp32"}},
		{"q8hu", recipe.Flags{Weights: "int8-block32", Head: "int8", HeadSym: true, Compute: "fp32"}},
	} {
		tgt, _ := recipe.TargetByName("gpu-pipelined")
		built, err := Build(ck, tgt, c.flags)
		if err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for _, p := range gm.Prompts {
			v := p.Variants[c.variant]
			s, err := interp.NewSession(built.Decode, nil)
			if err != nil {
				t.Fatal(err)
			}
			logits, err := s.Prefill(p.IDs)
			if err != nil {
				t.Fatal(err)
			}
			want, err := p.Tensor(c.variant + ".next_logits")
			if err != nil {
				t.Fatal(err)
			}
			var gen []int
			for k := 0; k <= 16; k++ {
				worst = max(worst, gating.MaxDiff(logits, want.Row(k)))
				if k == 16 {
					break
				}
				id := kernels.Argmax(logits)
				gen = append(gen, id)
				if logits, err = s.Step(id); err != nil {
					t.Fatal(err)
				}
			}
			if !slices.Equal(gen, v.GenIDs) {
				t.Errorf("%s %s: greedy %v, golden %v", c.variant, p.Name, gen, v.GenIDs)
			}
		}
		t.Logf("%s: max |graph - golden next_logits| %.2e", c.variant, worst)
		if worst > 1e-3 {
			t.Errorf("%s: next_logits differ from the goldens by %.3g > 1e-3", c.variant, worst)
		}
	}
}

// The gate passes int8 and refuses int4; run on the fp32 forms its per-prompt counts equal the
// goldens' variant figures (greedy matches, first divergence, teacher-forced top-1 over 17 rows).
func TestGateAgreesWithGoldenVariants(t *testing.T) {
	ck := testfix.Open(t, fixture)
	prompts, gm := goldenPrompts(t)
	for _, c := range []struct {
		variant string
		flags   recipe.Flags
		pass    bool
	}{
		{"q8", recipe.Flags{Weights: "int8-block32", Compute: "fp32"}, true},
		{"q8hu", recipe.Flags{Weights: "int8-block32", Head: "int8", HeadSym: true, Compute: "fp32"}, true},
		{"q4", recipe.Flags{Weights: "int4-block32", Compute: "fp32"}, false},
		{"q4hu", recipe.Flags{Weights: "int4-block32", Head: "int4", HeadSym: true, Compute: "fp32"}, false},
	} {
		out := t.TempDir()
		res, err := exportTargets(t, ck, out, "gpu-pipelined", c.flags, func(o *Options) { o.GatePrompts = prompts })
		if c.pass != (err == nil) {
			t.Fatalf("%s: export error %v, want pass=%v", c.variant, err, c.pass)
		}
		if !c.pass && exitcode.Of(err) != exitcode.GateFailed {
			t.Fatalf("%s: exit code %d, want %d", c.variant, exitcode.Of(err), exitcode.GateFailed)
		}
		rep := res.Bundles[0].Report
		for i, pr := range rep.Prompts {
			v := gm.Prompts[i].Variants[c.variant]
			if pr.GreedyMatch != v.GreedyMatch || pr.FirstDivergence != v.FirstDivergence || pr.DecodeTop1Match != v.TeacherForcedTop1Match {
				t.Errorf("%s %s: greedy %d first divergence %d teacher-forced %d; goldens %d %d %d", c.variant, pr.Prompt.Name,
					pr.GreedyMatch, pr.FirstDivergence, pr.DecodeTop1Match, v.GreedyMatch, v.FirstDivergence, v.TeacherForcedTop1Match)
			}
			if math.Abs(pr.PrefillCosine-v.PrefillCosine) > 1e-4 {
				t.Errorf("%s %s: prefill cosine %.6f, golden %.6f", c.variant, pr.Prompt.Name, pr.PrefillCosine, v.PrefillCosine)
			}
		}
		if !c.pass {
			// Nothing is published, and the report names the first failing prompt and step.
			if ents, _ := os.ReadDir(filepath.Join(out, "gpu-pipelined")); len(ents) != 0 {
				t.Errorf("%s: failed gate left %v in the output directory", c.variant, ents)
			}
			ff := rep.Totals.FirstFailure
			if !strings.HasPrefix(ff, "prompt ") || !strings.Contains(ff, "position") && !strings.Contains(ff, "step") {
				t.Errorf("%s: first failure %q does not name a prompt and step", c.variant, ff)
			}
			t.Logf("%s refused: %s", c.variant, ff)
		}
	}
}

// The device forms of the default recipes pass the gate on the golden prompts (int8 linear
// with the tied fp16 head, and the untied int8 absmax head), and int4 LUTs fail.
func TestGateDeviceForms(t *testing.T) {
	ck := testfix.Open(t, fixture)
	prompts, _ := goldenPrompts(t)
	for _, c := range []struct {
		name  string
		flags recipe.Flags
		pass  bool
	}{
		{"int8 block32, tied head", recipe.Flags{}, true},
		{"int8 block32, int8 absmax head", recipe.Flags{HeadSym: true}, true},
		{"int4 block32", recipe.Flags{Weights: "int4-block32"}, false},
		{"int4 lut", recipe.Flags{Weights: "int4-lut"}, false},
	} {
		res, err := exportTargets(t, ck, t.TempDir(), "gpu-pipelined", c.flags, func(o *Options) { o.GatePrompts = prompts })
		if c.pass != (err == nil) || (err != nil && exitcode.Of(err) != exitcode.GateFailed) {
			t.Fatalf("%s: %v (exit %d), want pass=%v", c.name, err, exitcode.Of(err), c.pass)
		}
		t.Logf("%s: %s", c.name, res.Bundles[0].Report.Summary())
	}
}

// Damaging one block's scale (x4) in a late layer of a shipped bundle makes verify fail.
func TestGateCatchesDamagedScale(t *testing.T) {
	ck := testfix.Open(t, fixture)
	prompts, _ := goldenPrompts(t)
	out := t.TempDir()
	res, err := exportTargets(t, ck, out, "gpu-pipelined", recipe.Flags{}, func(o *Options) { o.GatePrompts = prompts })
	if err != nil {
		t.Fatal(err)
	}
	dir := res.Bundles[0].Path
	mlirb := filepath.Join(dir, res.Bundles[0].Name+".aimodel", "main.mlirb")
	m, mapping, err := bundle.ReadModule(mlirb)
	if err != nil {
		t.Fatal(err)
	}
	// The block of layers.7.mlp.down_proj with the largest scale: the most consequential one.
	r := m.Resource("layers.7.mlp.down_proj.weight.scale")
	if r == nil {
		t.Fatal("no scale resource for layers.7.mlp.down_proj")
	}
	off := int64(-1)
	best := float32(0)
	base := int64(len(mapping)) // offset of the blob in the file
	for i := range mapping {
		if &mapping[i] == &r.Data[0] {
			base = int64(i)
			break
		}
	}
	for i := 0; i < len(r.Data); i += 2 {
		s := float16.Frombits(binary.LittleEndian.Uint16(r.Data[i:])).Float32()
		if s > best {
			best, off = s, int64(i)
		}
	}
	graph.Verify(m, graph.VerifyOptions{})
	data, err := os.ReadFile(mlirb)
	if err != nil {
		t.Fatal(err)
	}
	damaged := float16.Fromfloat32(best * 4)
	binary.LittleEndian.PutUint16(data[base+off:], damaged.Bits())
	sum := sha256.Sum256(data)
	if err := os.WriteFile(mlirb, data, 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, res.Bundles[0].Name+".aimodel", "main.hash"), sum[:], 0o644)
	b, err := bundle.OpenBundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rep, _, err := gating.Verify(b, ck, prompts, oracle.DefaultGateOptions())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Passed {
		t.Fatalf("a x4 scale in layers.7.mlp.down_proj passed the gate: %s", rep.Summary())
	}
	t.Logf("damaged scale refused: %s", rep.Totals.FirstFailure)
}

// Every target exports from the trained fixture and passes verify; main.hash is the SHA-256 of
// main.mlirb; inspect agrees with the metadata; a second export, its gates each running the
// reference instead of sharing it, is byte-identical and reports the same; --check passes
// unchanged and reports drift after one weight byte of the checkpoint changes.
func TestExportAllTargets(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1767225600")
	ck := testfix.Open(t, fixture)
	out := t.TempDir()
	var shared oracle.SharingStats
	sharedGates = func(s oracle.SharingStats) { shared = s }
	defer func() { sharedGates = nil }()
	res, err := exportTargets(t, ck, out, "all", recipe.Flags{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// gpu-pipelined, ios-gpu decode and ios-ane gate; the first computes, the others read back.
	if shared.Trajectories == 0 || shared.Reads < 2*shared.Writes {
		t.Errorf("the gates did not share the reference: %+v", shared)
	}
	t.Logf("shared: %+v", shared)
	if len(res.Bundles) != 5 {
		t.Fatalf("%d bundles, want 5 (gpu-pipelined, ios-gpu decode + prefill, ios-ane, macos)", len(res.Bundles))
	}
	names := map[string]string{}
	for _, b := range res.Bundles {
		names[b.Target+"/"+b.Contract] = b.Name
		mlirb := filepath.Join(b.Path, b.Name+".aimodel", "main.mlirb")
		data, err := os.ReadFile(mlirb)
		if err != nil {
			t.Fatal(err)
		}
		hash, _ := os.ReadFile(filepath.Join(b.Path, b.Name+".aimodel", "main.hash"))
		if sum := sha256.Sum256(data); string(hash) != string(sum[:]) {
			t.Errorf("%s: main.hash is not the SHA-256 of main.mlirb", b.Name)
		}
		in, err := bundle.Inspect(b.Path)
		if err != nil {
			t.Fatalf("inspect %s: %v", b.Name, err)
		}
		if !in.HashOK || in.Derived.Weights != string(b.Recipe.Weights) {
			t.Errorf("%s: inspect hash %v weights %s", b.Name, in.HashOK, in.Derived.Weights)
		}
		bd, err := bundle.OpenBundle(b.Path)
		if err != nil {
			t.Fatal(err)
		}
		prompts, err := DefaultPrompts(ck)
		if err != nil {
			t.Fatal(err)
		}
		rep, cc, err := gating.Verify(bd, ck, prompts, oracle.DefaultGateOptions())
		bd.Close()
		if err != nil || !rep.Passed || (cc != nil && !cc.Passed) {
			t.Errorf("verify %s: %v %v", b.Name, err, rep.Summary())
		}
		checkMLIROpt(t, mlirb)
	}
	want := map[string]string{
		"gpu-pipelined/pipelined":    "tinyqwen35_code_decode_int8lin",
		"ios-gpu/host-cache decode":  "tinyqwen35_code_ios_hc0_int8",
		"ios-gpu/host-cache prefill": "tinyqwen35_code_ios_hc_prefill_q16_b2048_int8",
		"ios-ane/pipelined":          "tinyqwen35_code_decode_int8",
		"macos/pipelined":            "tinyqwen35_code_decode_int8",
	}
	for k, v := range want {
		if names[k] != v {
			t.Errorf("%s: name %q, want %q", k, names[k], v)
		}
	}
	// ios-ane and macos hold identical bytes.
	a, _ := os.ReadFile(filepath.Join(out, "ios-ane", want["ios-ane/pipelined"], want["ios-ane/pipelined"]+".aimodel", "main.mlirb"))
	b, _ := os.ReadFile(filepath.Join(out, "macos", want["macos/pipelined"], want["macos/pipelined"]+".aimodel", "main.mlirb"))
	if !slices.Equal(a, b) {
		t.Error("ios-ane and macos main.mlirb differ")
	}

	// A second export, sharing nothing, is byte-identical (gate reports in the metadata
	// included), prints the same --json document but for paths and times, and --check agrees.
	out2 := t.TempDir()
	gateSharing = false
	shared = oracle.SharingStats{}
	res2, err := exportTargets(t, ck, out2, "all", recipe.Flags{}, nil)
	gateSharing = true
	if err != nil {
		t.Fatal(err)
	}
	if shared != (oracle.SharingStats{}) {
		t.Errorf("sharing turned off, yet: %+v", shared)
	}
	if diffs, err := compareDirs(out2, out); err != nil || len(diffs) > 0 {
		t.Fatalf("second export differs: %v %v", err, diffs)
	}
	if a, b := exportJSON(t, res, out), exportJSON(t, res2, out2); a != b {
		t.Errorf("--json differs with shared gates:\n%s\nwithout:\n%s", a, b)
	}
	if _, err := exportTargets(t, ck, out, "all", recipe.Flags{}, func(o *Options) { o.Check = true }); err != nil {
		t.Fatalf("--check on unchanged bundles: %v", err)
	}
	// One weight byte of the checkpoint changes: --check exits 4 and names the drift.
	ckDir := filepath.Join(t.TempDir(), fixture) // same directory name: same bundle names
	os.Mkdir(ckDir, 0o755)
	for _, f := range []string{"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"} {
		data, err := os.ReadFile(filepath.Join("..", "testdata", fixture, f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "model.safetensors" {
			n := binary.LittleEndian.Uint64(data)
			data[8+int(n)+1001] ^= 0x01 // a low mantissa bit of an embedding value
		}
		os.WriteFile(filepath.Join(ckDir, f), data, 0o644)
	}
	ck2, err := hf.Open(ckDir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck2.Close()
	res3, err := exportTargets(t, ck2, out, "gpu-pipelined", recipe.Flags{}, func(o *Options) { o.Check = true })
	if exitcode.Of(err) != exitcode.Drift {
		t.Fatalf("--check after a weight change: %v (exit %d), want exit 4", err, exitcode.Of(err))
	}
	if len(res3.Drift) == 0 {
		t.Fatal("no drift listed")
	}
	t.Logf("drift: %v", res3.Drift[0])
}

// checkMLIROpt has upstream MLIR parse the bytecode (skipped without mlir-opt).
func checkMLIROpt(t *testing.T, path string) {
	t.Helper()
	const opt = "/usr/lib/llvm-22/bin/mlir-opt"
	if _, err := os.Stat(opt); err != nil {
		t.Logf("skipping the mlir-opt check of %s: %s not installed (apt-get install mlir-22-tools)", filepath.Base(path), opt)
		return
	}
	out, err := exec.Command(opt, "--allow-unregistered-dialect", "--mlir-print-op-generic", path, "-o", os.DevNull).CombinedOutput()
	if err != nil {
		t.Errorf("mlir-opt rejects %s: %v\n%s", path, err, out)
	}
}

// Names describe the bytes: the block-32 head is named block32, per-channel is refused on GPU
// targets unless overridden (then named perchan and stored per channel), and allowed on the ANE.
func TestHeadGranularityNaming(t *testing.T) {
	ck := testfix.Open(t, fixture)
	skipGate := func(o *Options) { o.NoGate = true }
	cases := []struct {
		name, target string
		flags        recipe.Flags
		wantName     string
		wantGran     string
		wantErr      string
	}{
		{"ship config", "gpu-pipelined", recipe.Flags{HeadSym: true}, "tinyqwen35_code_decode_int8hu_block32_sym", "block32", ""},
		{"perchan refused on GPU", "gpu-pipelined", recipe.Flags{HeadSym: true, HeadGranularity: "perchan"}, "", "", "constraint 3"},
		{"perchan overridden", "gpu-pipelined", recipe.Flags{HeadSym: true, HeadGranularity: "perchan", AllowDelegate: true}, "tinyqwen35_code_decode_int8hu_perchan_sym", "perchan", ""},
		{"perchan on the ANE", "ios-ane", recipe.Flags{HeadSym: true, HeadGranularity: "perchan"}, "tinyqwen35_code_decode_int8_headint8_perchan_sym", "perchan", ""},
		{"clipped head has no _sym", "gpu-pipelined", recipe.Flags{Weights: "int8hu", Scheme: "clip"}, "tinyqwen35_code_decode_int8hu_block32_clip", "block32", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := exportTargets(t, ck, t.TempDir(), c.target, c.flags, skipGate)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || exitcode.Of(err) != exitcode.BadInput {
					t.Fatalf("error %v (exit %d), want %q and exit 2", err, exitcode.Of(err), c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b := res.Bundles[0]
			if b.Name != c.wantName {
				t.Errorf("name %s, want %s", b.Name, c.wantName)
			}
			in, err := bundle.Inspect(b.Path)
			if err != nil {
				t.Fatal(err)
			}
			if in.Derived.HeadGranularity != c.wantGran {
				t.Errorf("the bytes hold a %s head, want %s", in.Derived.HeadGranularity, c.wantGran)
			}
		})
	}
}

// Renaming a bundle directory, or metadata claiming another head granularity, makes inspect fail.
func TestInspectCatchesDisagreement(t *testing.T) {
	ck := testfix.Open(t, fixture)
	out := t.TempDir()
	res, err := exportTargets(t, ck, out, "gpu-pipelined", recipe.Flags{HeadSym: true}, func(o *Options) { o.NoGate = true })
	if err != nil {
		t.Fatal(err)
	}
	b := res.Bundles[0]
	// The published mistake: a _perchan_sym directory holding a block-32 head.
	wrong := filepath.Join(out, "gpu-pipelined", "tinyqwen35_code_decode_int8hu_perchan_sym")
	if err := os.Rename(b.Path, wrong); err != nil {
		t.Fatal(err)
	}
	_, err = bundle.Inspect(wrong)
	if err == nil || exitcode.Of(err) != exitcode.BadInput || !strings.Contains(err.Error(), "tinyqwen35_code_decode_int8hu_block32_sym") {
		t.Fatalf("renamed bundle: %v", err)
	}
	os.Rename(wrong, b.Path)
	// Metadata claiming per-channel.
	mdPath := filepath.Join(b.Path, "metadata.json")
	raw, _ := os.ReadFile(mdPath)
	var md bundle.BundleMetadata
	json.Unmarshal(raw, &md)
	md.QConv.Recipe.HeadGranularity = "perchan"
	patched, _ := marshalJSON(md)
	os.WriteFile(mdPath, patched, 0o644)
	_, err = bundle.Inspect(b.Path)
	if err == nil || !strings.Contains(err.Error(), "head granularity perchan, the bytes hold block32") {
		t.Fatalf("metadata/bytes disagreement: %v", err)
	}
	// Metadata claiming an fp16 recurrence for a GPU bundle's fp32 state.
	json.Unmarshal(raw, &md)
	md.QConv.Recipe.StateDType = graph.F16
	patched, _ = marshalJSON(md)
	os.WriteFile(mdPath, patched, 0o644)
	if _, err = bundle.Inspect(b.Path); err == nil || !strings.Contains(err.Error(), "recurrence dtype f16, the bytes' recState is f32") {
		t.Fatalf("recurrence dtype disagreement: %v", err)
	}
	// A damaged main.hash.
	os.WriteFile(mdPath, raw, 0o644)
	os.WriteFile(filepath.Join(b.Path, b.Name+".aimodel", "main.hash"), make([]byte, 32), 0o644)
	in, err := bundle.Inspect(b.Path)
	if err == nil || in.HashOK {
		t.Fatalf("bad main.hash accepted: %v", err)
	}
}

// A cancelled run (Ctrl-C) leaves the previous bundle intact and no staging directories.
func TestCancelledExportLeavesPreviousBundle(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1767225600")
	ck := testfix.Open(t, fixture)
	out := t.TempDir()
	res, err := exportTargets(t, ck, out, "gpu-pipelined", recipe.Flags{}, func(o *Options) { o.NoGate = true })
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(res.Bundles[0].Path, "metadata.json"))
	ctx, cancel := context.WithCancel(context.Background())
	ts, _ := recipe.ParseTargets("gpu-pipelined")
	prog := &cancelAfter{n: 3, cancel: cancel} // cancel in the middle of writing main.mlirb
	_, err = Run(ctx, Options{Checkpoint: ck, Targets: ts, Flags: recipe.Flags{Weights: "fp16"}, OutDir: out, Version: "test", NoGate: true, Progress: prog})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run: %v", err)
	}
	after, err := os.ReadFile(filepath.Join(res.Bundles[0].Path, "metadata.json"))
	if err != nil || string(after) != string(before) {
		t.Fatalf("previous bundle damaged: %v", err)
	}
	ents, _ := os.ReadDir(filepath.Join(out, "gpu-pipelined"))
	if len(ents) != 1 {
		t.Errorf("output holds %v, want only the previous bundle", ents)
	}
}

// cancelAfter cancels after n progress updates.
type cancelAfter struct {
	n      int
	cancel func()
}

func (c *cancelAfter) Phase(string, int64, bool) {}
func (c *cancelAfter) Done()                     {}
func (c *cancelAfter) Add(int64) {
	if c.n--; c.n == 0 {
		c.cancel()
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	ck := testfix.Open(t, fixture)
	out := filepath.Join(t.TempDir(), "out")
	res, err := exportTargets(t, ck, out, "all", recipe.Flags{HeadSym: true}, func(o *Options) { o.DryRun = true })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dry run created %s", out)
	}
	for _, b := range res.Bundles {
		if len(b.Tensors) == 0 || b.Bytes == 0 {
			t.Errorf("%s: empty plan", b.Name)
		}
	}

}

// A 32-row projection palettized as one group of 32 inspects clean (tiny_tied_4L's k/v_proj).
func TestInspectSingleLUTGroup(t *testing.T) {
	ck := testfix.Open(t, "random/tiny_tied_4L")
	res, err := exportTargets(t, ck, t.TempDir(), "ios-ane", recipe.Flags{}, func(o *Options) { o.NoGate = true })
	if err != nil {
		t.Fatal(err)
	}
	in, err := bundle.Inspect(res.Bundles[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	for _, ti := range in.Tensors {
		if ti.Name == "layers.3.self_attn.k_proj.weight" && ti.Granularity != "g32" {
			t.Errorf("k_proj [32, 64]: %s, want g32", ti.Granularity)
		}
	}
}

// The companion check reads the decode-only side from the decode gate's report when it has the
// prompt; that gives the same ids and verdict as decoding again.
func TestCompanionCheckFromGateReport(t *testing.T) {
	ck := testfix.Open(t, fixture)
	prompts, _ := goldenPrompts(t)
	tgt, _ := recipe.TargetByName("ios-gpu")
	built, err := Build(ck, tgt, recipe.Flags{})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := oracle.New(ck, oracle.Options{})
	if err != nil {
		t.Fatal(err)
	}
	opt := oracle.DefaultGateOptions()
	rep, err := oracle.Gate(ref, func() (oracle.Candidate, error) {
		s, err := interp.NewSession(built.Decode, nil)
		return gating.SessionCandidate(s), err
	}, prompts, opt)
	if err != nil {
		t.Fatal(err)
	}
	own, err := gating.CheckCompanion(built.Decode, built.Prefill, prompts, opt, nil)
	if err != nil {
		t.Fatal(err)
	}
	reused, err := gating.CheckCompanion(built.Decode, built.Prefill, prompts, opt, rep)
	if err != nil {
		t.Fatal(err)
	}
	if len(own.Prompts) == 0 || len(own.Prompts) != len(reused.Prompts) || own.Passed != reused.Passed {
		t.Fatalf("own %+v, reused %+v", own, reused)
	}
	for i := range own.Prompts {
		a, b := own.Prompts[i], reused.Prompts[i]
		if !slices.Equal(a.DecodeOnly, b.DecodeOnly) || !slices.Equal(a.WithPrefill, b.WithPrefill) || a.FirstDivergence != b.FirstDivergence || b.DecodeOnlyFrom == "" {
			t.Errorf("%s: own %+v, from the report %+v", a.Name, a, b)
		}
		// The row after the prompt is compared either way, to the same token-by-token bits.
		if a.EndCosine == nil || b.EndCosine == nil || *a.EndCosine != *b.EndCosine || *a.EndCosine < gating.MinPathCosine {
			t.Errorf("%s: end-row cosine own %v, from the report %v", a.Name, a.EndCosine, b.EndCosine)
		} else {
			t.Logf("%s: end-row cosine %.7f", a.Name, *a.EndCosine)
		}
	}
}

// exportJSON is res as --json prints it, with the bundles' paths relative to out and no phase
// times, followed by each bundle's whole gate report.
func exportJSON(t *testing.T, res *Result, out string) string {
	t.Helper()
	r := *res
	r.Bundles = slices.Clone(res.Bundles)
	var reports []*oracle.GateReport
	for i := range r.Bundles {
		b := &r.Bundles[i]
		rel, err := filepath.Rel(out, b.Path)
		if err != nil {
			t.Fatal(err)
		}
		b.Path, b.Phases = rel, nil
		reports = append(reports, b.Report)
	}
	doc, err := json.Marshal(struct {
		Result  Result
		Reports []*oracle.GateReport
	}{r, reports})
	if err != nil {
		t.Fatal(err)
	}
	return string(doc)
}
