package export

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"qconv/bundle"
	"qconv/card"
	"qconv/internal/exitcode"
	"qconv/internal/testfix"
	"qconv/recipe"
)

// The fp16-accumulation stress runs on the dynamic fp16 bundles (not on the fp32 form), is
// recorded beside the exact verdict in metadata, inspect and the card, and decides the gate only
// under --gate-stress gate: with a cosine floor between the two verdicts' worst cosines, record
// publishes and gate refuses (exit 3).
func TestStressGateRecordedAndOptIn(t *testing.T) {
	ck := testfix.Open(t, fixture)
	prompts, err := DefaultPrompts(ck)
	if err != nil {
		t.Fatal(err)
	}
	small := func(mode StressMode, floor float64) func(*Options) {
		return func(o *Options) {
			o.GatePrompts = prompts[:2]
			o.Gate.Tokens, o.Gate.MinMargin, o.Gate.MinCosine = 8, 0.1, floor
			o.Stress = mode
		}
	}
	out := t.TempDir()
	res, err := exportTargets(t, ck, out, "ios-ane,macos", recipe.Flags{}, small("", 0.999))
	if err != nil {
		t.Fatal(err)
	}
	var st *bundle.StressGate
	for _, b := range res.Bundles {
		if b.Stress == nil {
			t.Fatalf("%s: no stress verdict recorded", b.Name)
		}
		st = b.Stress
		in, err := bundle.Inspect(b.Path)
		if err != nil {
			t.Fatal(err)
		}
		q := in.Metadata.QConv
		if q.GateStress == nil || *q.GateStress != *b.Stress {
			t.Fatalf("%s: metadata gate_stress %+v, result %+v", b.Name, q.GateStress, b.Stress)
		}
		var text bytes.Buffer
		in.WriteText(&text)
		if !strings.Contains(text.String(), "fp16-accumulate stress passed (recorded, does not gate)") {
			t.Errorf("inspect does not show the stress verdict:\n%s", text.String())
		}
	}
	t.Logf("exact worst cosine %.6f, fp16-accumulate worst cosine %.6f", st.ExactMinPrefillCosine, st.MinPrefillCosine)
	if st.Gates || st.Numerics != "fp16-accumulate" || st.ExactMinPrefillCosine != res.Bundles[0].Gate.MinPrefillCosine {
		t.Fatalf("stress verdict %+v", st)
	}
	if !(st.MinPrefillCosine < st.ExactMinPrefillCosine) {
		t.Fatalf("fp16 accumulation should cost cosine: %.7f vs exact %.7f", st.MinPrefillCosine, st.ExactMinPrefillCosine)
	}
	cd, err := card.BuildCard(out, card.CardOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var md bytes.Buffer
	if err := cd.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "Delegate-numerics stress") || !strings.Contains(md.String(), "worst prefill cosine") {
		t.Errorf("the card does not show the stress verdict")
	}

	// A floor between the two: record passes, gate fails with the stress named.
	floor := (st.MinPrefillCosine + st.ExactMinPrefillCosine) / 2
	if _, err := exportTargets(t, ck, t.TempDir(), "ios-ane", recipe.Flags{}, small(StressRecord, floor)); err != nil {
		t.Fatalf("record mode with floor %.7f: %v", floor, err)
	}
	res, err = exportTargets(t, ck, t.TempDir(), "ios-ane", recipe.Flags{}, small(StressGates, floor))
	if exitcode.Of(err) != exitcode.GateFailed {
		t.Fatalf("gate mode with floor %.7f: %v, want exit 3", floor, err)
	}
	if f := res.Bundles[0].Gate.FirstFailure; !strings.Contains(f, "fp16 accumulation") {
		t.Errorf("first failure %q does not name the stress", f)
	}

	// Not applicable: the fp32 validation form and the static ios-gpu graphs.
	res, err = exportTargets(t, ck, filepath.Join(t.TempDir(), "o"), "gpu-pipelined", recipe.Flags{Compute: "fp32"}, small("", 0.999))
	if err != nil {
		t.Fatal(err)
	}
	if res.Bundles[0].Stress != nil {
		t.Errorf("fp32 bundle got a stress verdict")
	}
}
