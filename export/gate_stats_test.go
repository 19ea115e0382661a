package export

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"qconv/bundle"
	"qconv/graph/interp"
	"qconv/hf"
	"qconv/internal/exitcode"
	"qconv/internal/kernels"
	"qconv/internal/testfix"
	"qconv/oracle"
	"qconv/recipe"
)

// refCandidate runs an fp32 reference model as the gate's candidate.
type refCandidate struct {
	m  *oracle.Model
	st *oracle.State
}

func (c *refCandidate) Step(id int) ([]float32, error) {
	l, err := c.m.Decode(c.st, id)
	return slices.Clone(l), err
}

func (c *refCandidate) Fork() (oracle.Candidate, error) {
	return &refCandidate{m: c.m, st: c.st.Clone()}, nil
}

// shiftedRoPECheckpoint copies the trained fixture into a temporary directory with its
// rope_theta scaled by f: every rotary frequency but the first is off by f^(2j/rot), so the
// query-key phase error grows linearly with position, as a position computed or stored at too
// low a precision would make it.
func shiftedRoPECheckpoint(t *testing.T, f float64) string {
	t.Helper()
	src := filepath.Join("..", "testdata", fixture)
	dir := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == "config.json" {
			old := []byte(`"rope_theta": 10000000.0`)
			if !bytes.Contains(b, old) {
				t.Fatalf("the fixture's config.json no longer says %s", old)
			}
			b = bytes.Replace(b, old, []byte(fmt.Sprintf(`"rope_theta": %g`, 1e7*f)), 1)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// A candidate whose error grows with position passes every built-in prompt of 70 tokens or
// fewer and fails the long one, at confident teacher-forced positions past the short prompts'
// reach: only a long context shows it.
func TestGateCatchesLongContextOnlyFailure(t *testing.T) {
	ck := testfix.Open(t, fixture)
	ref, err := oracle.New(ck, oracle.Options{})
	if err != nil {
		t.Fatal(err)
	}
	prompts, err := DefaultPrompts(ck)
	if err != nil {
		t.Fatal(err)
	}
	dck, err := hf.Open(shiftedRoPECheckpoint(t, 0.9))
	if err != nil {
		t.Fatal(err)
	}
	defer dck.Close()
	dm, err := oracle.New(dck, oracle.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := oracle.Gate(ref, func() (oracle.Candidate, error) { return &refCandidate{m: dm, st: dm.NewState()}, nil }, prompts, oracle.DefaultGateOptions())
	if err != nil {
		t.Fatal(err)
	}
	long, shortKLD := 0, 0.0
	for _, p := range rep.Prompts {
		t.Logf("%s (%d tokens): passed %v, prefill cosine %.6f, %s", p.Prompt.Name, p.Length, p.Passed, p.PrefillCosine, p.Stats.StatsLine())
		if p.Length <= 70 {
			if !p.Passed {
				t.Errorf("%s (%d tokens) fails: %v", p.Prompt.Name, p.Length, p.Failures)
			}
			shortKLD = max(shortKLD, p.Stats.KLDMean)
			continue
		}
		long++
		if p.Length < 512 || p.Passed {
			t.Fatalf("%s (%d tokens) passed %v", p.Prompt.Name, p.Length, p.Passed)
		}
		first := -1
		for _, st := range p.Steps {
			if st.Verdict == oracle.VerdictMismatch && st.Phase != "greedy" {
				first = st.Pos
				break
			}
		}
		if first <= 70 {
			t.Errorf("%s: first confident teacher-forced mismatch at position %d, want one past 70", p.Prompt.Name, first)
		}
		if !(p.Stats.KLDMean > 100*shortKLD) {
			t.Errorf("%s: mean KLD %g, not far above the short prompts' worst %g", p.Prompt.Name, p.Stats.KLDMean, shortKLD)
		}
	}
	if long != 1 || rep.Passed || !strings.Contains(rep.Totals.FirstFailure, "code-long") {
		t.Fatalf("%d long prompts; %s", long, rep.Summary())
	}
}

// klNats is KL(softmax(p) || softmax(q)) in float64, written out independently of the oracle's.
func klNats(p, q []float32) float64 {
	lse := func(v []float32) float64 {
		m := math.Inf(-1)
		for _, x := range v {
			m = math.Max(m, float64(x))
		}
		s := 0.0
		for _, x := range v {
			s += math.Exp(float64(x) - m)
		}
		return m + math.Log(s)
	}
	lp, lq := lse(p), lse(q)
	kl := 0.0
	for i := range p {
		a := float64(p[i]) - lp
		kl += math.Exp(a) * (a - (float64(q[i]) - lq))
	}
	return kl
}

// The gate's per-position KL divergence on the fp32 forms of int8 and int4 block-32 equals the
// one computed from transformers' own fake-quantized logits (the goldens' teacher_forced_logits
// against the fp32 next_logits), on the 17 rows after every golden prompt.
func TestGateKLDAgreesWithGoldenVariants(t *testing.T) {
	ck := testfix.Open(t, fixture)
	prompts, gm := goldenPrompts(t)
	for _, c := range []struct {
		variant string
		flags   recipe.Flags
	}{
		{"q8", recipe.Flags{Weights: "int8-block32", Compute: "fp32"}},
		{"q4", recipe.Flags{Weights: "int4-block32", Compute: "fp32"}},
	} {
		res, _ := exportTargets(t, ck, t.TempDir(), "gpu-pipelined", c.flags, func(o *Options) { o.GatePrompts = prompts })
		if res == nil || res.Bundles[0].Report == nil {
			t.Fatalf("%s: no report", c.variant)
		}
		for i, pr := range res.Bundles[0].Report.Prompts {
			gp := gm.Prompts[i]
			next, err := gp.Tensor("next_logits")
			if err != nil {
				t.Fatal(err)
			}
			tf, err := gp.Tensor(c.variant + ".teacher_forced_logits")
			if err != nil {
				t.Fatal(err)
			}
			var ours, theirs float64
			for s := 0; s < 17; s++ {
				theirs += klNats(next.Row(s), tf.Row(s)) / 17
				ours += pr.Steps[pr.Length-1+s].KLD / 17
			}
			t.Logf("%s %s: mean KLD over the 17 rows %.6g, transformers %.6g", c.variant, gp.Name, ours, theirs)
			if !(math.Abs(ours-theirs) <= 1e-3*theirs+1e-7) {
				t.Errorf("%s %s: mean KLD %g, transformers' fake quantization gives %g", c.variant, gp.Name, ours, theirs)
			}
		}
	}
}

// On the trained fixture with the built-in prompts (one of them >= 512 tokens), int8 passes
// with llama.cpp-Q8_0-like figures and int4 fails with a KL divergence two orders larger; the
// figures are recorded, and an optional threshold fails an otherwise passing gate.
func TestGateFiguresInt8Int4(t *testing.T) {
	ck := testfix.Open(t, fixture)
	run := func(w string, mod func(*Options)) (*oracle.GateReport, error) {
		res, err := exportTargets(t, ck, t.TempDir(), "gpu-pipelined", recipe.Flags{Weights: w}, mod)
		if res == nil || res.Bundles[0].Report == nil {
			t.Fatalf("%s: no report (%v)", w, err)
		}
		return res.Bundles[0].Report, err
	}
	r8, err := run("int8-block32", nil)
	if err != nil || !r8.Passed {
		t.Fatalf("int8: %v\n%s", err, r8.Summary())
	}
	r4, err := run("int4-block32", nil)
	if exitcode.Of(err) != exitcode.GateFailed || r4.Passed {
		t.Fatalf("int4: %v\n%s", err, r4.Summary())
	}
	t.Logf("int8: %s", r8.Totals.Stats.StatsLine())
	t.Logf("int4: %s", r4.Totals.Stats.StatsLine())
	s8, s4 := r8.Totals.Stats, r4.Totals.Stats
	if !(s8.KLDMean > 0 && s8.KLDMean < 1e-3 && s8.SameTop1 >= 99 && s8.DeltaPRMS < 0.02 && s8.MinCosine > 0.999) {
		t.Errorf("int8 figures: %+v", *s8)
	}
	if !(s4.KLDMean > 100*s8.KLDMean && s4.KLDP99 > 10*s8.KLDP99 && s4.SameTop1 < 95 && s4.DeltaPRMS > 3*s8.DeltaPRMS) {
		t.Errorf("int4 figures %+v not visibly worse than int8's %+v", *s4, *s8)
	}
	long := false
	positions := 0
	for _, p := range r8.Prompts {
		positions += p.Stats.Positions
		if p.Stats.Positions != p.Length+16 || p.Length != len(p.Prompt.IDs) {
			t.Errorf("%s: %d positions for %d tokens", p.Prompt.Name, p.Stats.Positions, p.Length)
		}
		long = long || p.Length >= 512 && p.Passed && p.TeacherForcedConfident > 256
	}
	if !long || positions != s8.Positions || r8.Totals.TeacherForcedConfident < oracle.DefaultMinConfident {
		t.Errorf("long prompt %v; %d positions over prompts, %d overall; %d confident", long, positions, s8.Positions, r8.Totals.TeacherForcedConfident)
	}
	// A KLD ceiling below int8's mean fails it, and says which threshold.
	r, err := run("int8-block32", func(o *Options) {
		o.Gate = oracle.DefaultGateOptions()
		o.Gate.MaxKLD = s8.KLDMean / 2
	})
	if exitcode.Of(err) != exitcode.GateFailed || r.Passed || r.Totals.PromptsPassed != r.Totals.Prompts || !strings.Contains(r.Totals.FirstFailure, "--gate-max-kld") {
		t.Errorf("--gate-max-kld %g: %v; %s", s8.KLDMean/2, err, r.Summary())
	}
}

// The gate takes the teacher-forced rows after the prompt from the candidate's free rollout when
// that rollout chose the reference's tokens; they are the rows a fresh session fed the same
// tokens gives, bit for bit (same top-1, same top-2 margin as a float64).
func TestGateTeacherForcedShortcutIsExact(t *testing.T) {
	ck := testfix.Open(t, fixture)
	prompts, err := DefaultPrompts(ck)
	if err != nil {
		t.Fatal(err)
	}
	res, err := exportTargets(t, ck, t.TempDir(), "gpu-pipelined", recipe.Flags{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.OpenBundle(res.Bundles[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	checked := 0
	for i, pr := range res.Bundles[0].Report.Prompts {
		if !slices.Equal(pr.CandGen, pr.RefGen) || pr.Length > 64 {
			continue // the shortcut applies only when the rollout followed the reference
		}
		s, err := interp.NewSession(b.Module, nil)
		if err != nil {
			t.Fatal(err)
		}
		feed := append(slices.Clone(prompts[i].IDs), pr.RefGen...)
		for pos, id := range feed {
			row, err := s.Step(id)
			if err != nil {
				t.Fatal(err)
			}
			if pos < pr.Length-1 {
				continue
			}
			st := pr.Steps[pos]
			if st.Pos != pos || st.Phase == "greedy" || st.CandID != kernels.Argmax(row) || st.CandMargin != oracle.Margin(row) {
				t.Fatalf("%s position %d: report %+v, fresh session top-1 %d margin %v", pr.Prompt.Name, pos, st, kernels.Argmax(row), oracle.Margin(row))
			}
			checked++
		}
	}
	if checked < 3*17 {
		t.Fatalf("only %d positions checked", checked)
	}
}
