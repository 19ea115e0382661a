package export

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"qconv/gating"
	"qconv/graph"
	"qconv/graph/interp"
	"qconv/hf"
	"qconv/internal/testfix"
	"qconv/lower"
	"qconv/oracle"
	"qconv/recipe"
)

// The outlier checkpoint: the trained fixture transformed so its residual stream carries a few
// channels above fp16's squaring limit (one near 750, the median channel below 200) while the fp32 function stays
// the same up to rounding.
//
// RMSNorm divides by the per-token rms, so only maps that scale every channel's contribution to
// the rms alike keep the function exactly: x' = α·R·x with R orthogonal. R is the Householder
// reflection that sends u, the mean direction of the stream, onto channel c; α is a power of two.
// Then:
//   - the embedding rows and every residual writer (o_proj, down_proj, out_proj) are multiplied
//     by α·R (rows of the embedding, columns of the writers);
//   - every norm in front of the stream's consumers satisfies norm(x')·(1+w) = R·norm(x)·(1+w)
//     only for w = 0 after the rotation, so each norm weight (1+w) is folded into the columns of
//     the linears it feeds (W·diag(1+w)·Rᵀ) and set to zero;
//   - the head is untied (lm_head = E·diag(1+w_final)·Rᵀ), since the tied table now feeds two
//     different products.
//
// A channel-selective scale with compensation in the norm weights is not exact (it changes the
// rms every channel is divided by); the reflection is, and it is what puts the stream's common
// component, which real models carry in a few channels, into one channel.

const outlierAlpha = 64

// residualTaps runs the fp32 lowering of ck over ids and returns the stream after every layer's
// last residual add, per token: taps[token][add] is [h].
func residualTaps(t *testing.T, ck *hf.Checkpoint, ids []int) [][][]float32 {
	t.Helper()
	h := int64(ck.Config.HiddenSize)
	m, err := lower.Lower(ck.Config, lower.Options{Contract: graph.Pipelined, Compute: graph.F32, StateDType: graph.F32, Weights: lower.DenseWeights{Checkpoint: ck, DType: graph.F32}})
	if err != nil {
		t.Fatal(err)
	}
	f := m.Func("main")
	n := 0
	for _, op := range f.Body {
		if op.Name == graph.OpAdd && op.Results[0].Type.Equal(graph.Tensor(graph.F32, 1, 1, h)) {
			f.AddResult(fmt.Sprintf("tap%03d", n), op.Results[0])
			n++
		}
	}
	it, err := interp.New(m, "main")
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]*interp.Array{}
	for _, a := range f.Args {
		if a.Value.Type.Kind == graph.HandleKind {
			shape := append([]int64(nil), a.Value.Type.Shape...)
			for i, d := range shape {
				if d == graph.Dyn {
					shape[i] = int64(len(ids))
				}
			}
			states[a.Name] = interp.NewArray(a.Value.Type.DType, shape...)
		}
	}
	var taps [][][]float32
	for p, id := range ids {
		in := map[string]*interp.Array{
			graph.InInputIDs:    {DType: graph.SI32, Shape: []int64{1, 1}, I: []int64{int64(id)}},
			graph.InPositionIDs: interp.NewArray(graph.SI32, 1, int64(p+1)),
		}
		out, err := it.Run(in, states)
		if err != nil {
			t.Fatal(err)
		}
		var row [][]float32
		for k := 0; k < n; k++ {
			row = append(row, append([]float32(nil), out[fmt.Sprintf("tap%03d", k)].F...))
		}
		taps = append(taps, row)
	}
	return taps
}

// channelMax is the largest |x| per channel over every tap of every token.
func channelMax(taps [][][]float32) []float64 {
	mx := make([]float64, len(taps[0][0]))
	for _, tok := range taps {
		for _, v := range tok {
			for c, x := range v {
				mx[c] = math.Max(mx[c], math.Abs(float64(x)))
			}
		}
	}
	return mx
}

// householder is R = I - 2wwᵀ/(wᵀw) with w = u - e_c (|u| = 1): R u = e_c, R = Rᵀ = R⁻¹.
type householder struct {
	w  []float64
	ww float64
}

func newHouseholder(u []float64, c int) householder {
	w := append([]float64(nil), u...)
	w[c]--
	var ww float64
	for _, x := range w {
		ww += x * x
	}
	return householder{w, ww}
}

// apply overwrites v with s·R·v.
func (r householder) apply(v []float64, s float64) {
	var d float64
	for i, x := range v {
		d += r.w[i] * x
	}
	k := 2 * d / r.ww
	for i := range v {
		v[i] = s * (v[i] - k*r.w[i])
	}
}

// writeOutlierCheckpoint writes the transformed copy of src into dst (f32 safetensors, untied).
func writeOutlierCheckpoint(t *testing.T, src *hf.Checkpoint, dst string, alpha float64, r householder) {
	t.Helper()
	cfg := src.Config
	h := cfg.HiddenSize
	vals := map[string][]float32{}
	shapes := map[string][]int{}
	for _, tn := range src.Stored() {
		vals[tn.Name] = tn.Values()
		shapes[tn.Name] = tn.Shape
	}
	if _, ok := vals["lm_head.weight"]; !ok {
		vals["lm_head.weight"] = append([]float32(nil), vals["embed_tokens.weight"]...)
		shapes["lm_head.weight"] = shapes["embed_tokens.weight"]
	}
	// rows applies s·R to every row of an [n, h] matrix, after scaling column j by g[j].
	rows := func(name string, g []float32, s float64) {
		m := vals[name]
		v := make([]float64, h)
		for i := 0; i+h <= len(m); i += h {
			for j := range v {
				v[j] = float64(m[i+j])
				if g != nil {
					v[j] *= 1 + float64(g[j])
				}
			}
			r.apply(v, s)
			for j := range v {
				m[i+j] = float32(v[j])
			}
		}
	}
	// cols applies s·R to every column of an [h, n] matrix.
	cols := func(name string) {
		m := vals[name]
		n := len(m) / h
		v := make([]float64, h)
		for j := 0; j < n; j++ {
			for i := range v {
				v[i] = float64(m[i*n+j])
			}
			r.apply(v, alpha)
			for i := range v {
				m[i*n+j] = float32(v[i])
			}
		}
	}
	fold := func(norm string, consumers ...string) {
		g := vals[norm]
		for _, c := range consumers {
			rows(c, g, 1)
		}
		for j := range g {
			g[j] = 0
		}
	}
	rows("embed_tokens.weight", nil, alpha)
	fold("norm.weight", "lm_head.weight")
	for i, lt := range cfg.LayerTypes {
		p := fmt.Sprintf("layers.%d.", i)
		if lt == hf.FullAttention {
			fold(p+"input_layernorm.weight", p+"self_attn.q_proj.weight", p+"self_attn.k_proj.weight", p+"self_attn.v_proj.weight")
			cols(p + "self_attn.o_proj.weight")
		} else {
			fold(p+"input_layernorm.weight", p+"linear_attn.in_proj_qkv.weight", p+"linear_attn.in_proj_z.weight",
				p+"linear_attn.in_proj_b.weight", p+"linear_attn.in_proj_a.weight")
			cols(p + "linear_attn.out_proj.weight")
		}
		fold(p+"post_attention_layernorm.weight", p+"mlp.gate_proj.weight", p+"mlp.up_proj.weight")
		cols(p + "mlp.down_proj.weight")
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range vals {
		names = append(names, n)
	}
	sort.Strings(names)
	header := map[string]any{}
	var off int
	for _, n := range names {
		stored := "model." + n
		if n == "lm_head.weight" {
			stored = n
		}
		header[stored] = map[string]any{"dtype": "F32", "shape": shapes[n], "data_offsets": []int{off, off + 4*len(vals[n])}}
		off += 4 * len(vals[n])
	}
	hj, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	for len(hj)%8 != 0 {
		hj = append(hj, ' ')
	}
	buf := make([]byte, 8, 8+len(hj)+off)
	binary.LittleEndian.PutUint64(buf, uint64(len(hj)))
	buf = append(buf, hj...)
	for _, n := range names {
		for _, x := range vals[n] {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(x))
		}
	}
	if err := os.WriteFile(filepath.Join(dst, "model.safetensors"), buf, 0o644); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(src.Dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cj map[string]any
	if err := json.Unmarshal(raw, &cj); err != nil {
		t.Fatal(err)
	}
	cj["tie_word_embeddings"] = false
	out, _ := json.MarshalIndent(cj, "", "  ")
	if err := os.WriteFile(filepath.Join(dst, "config.json"), out, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"tokenizer.json", "tokenizer_config.json", "generation_config.json"} {
		if b, err := os.ReadFile(filepath.Join(src.Dir, f)); err == nil {
			if err := os.WriteFile(filepath.Join(dst, f), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// outlierCheckpoint derives the outlier checkpoint from the trained fixture into a temp dir and
// returns it with the channel it put the stream's mean direction on.
func outlierCheckpoint(t *testing.T) (*hf.Checkpoint, int) {
	t.Helper()
	src := testfix.Open(t, fixture)
	prompts, err := DefaultPrompts(src)
	if err != nil {
		t.Fatal(err)
	}
	taps := residualTaps(t, src, prompts[0].IDs)
	h := src.Config.HiddenSize
	u := make([]float64, h)
	for _, tok := range taps {
		last := tok[len(tok)-1]
		for j, x := range last {
			u[j] += float64(x)
		}
	}
	var nrm float64
	for _, x := range u {
		nrm += x * x
	}
	for j := range u {
		u[j] /= math.Sqrt(nrm)
	}
	const c = 7
	dir := filepath.Join(t.TempDir(), "tinyqwen35-outliers")
	writeOutlierCheckpoint(t, src, dir, outlierAlpha, newHouseholder(u, c))
	ck, err := hf.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	return ck, c
}

// On the outlier checkpoint the fp32 function is the fixture's, the stream carries a few
// channels in the hundreds (one far above the rest), the ANE bundles (fp16 statistics, overflow-safe norm) pass the gate against
// the fp32 reference, and the previous lowering (x² in fp16 unscaled) fails it.
func TestOutlierCheckpointANEGate(t *testing.T) {
	ck, c := outlierCheckpoint(t)
	src := testfix.Open(t, fixture)
	prompts, err := DefaultPrompts(src)
	if err != nil {
		t.Fatal(err)
	}
	// The stream: one channel far above the others, and above fp16's squaring limit (256).
	mx := channelMax(residualTaps(t, ck, prompts[0].IDs))
	sorted := append([]float64(nil), mx...)
	sort.Float64s(sorted)
	median := sorted[len(sorted)/2]
	over := 0
	for _, x := range mx {
		if x > 256 {
			over++
		}
	}
	t.Logf("outlier checkpoint: channel %d max |x| = %.0f, median channel max %.0f, largest other %.0f, %d of %d channels above 256",
		c, mx[c], median, sorted[len(sorted)-2], over, len(mx))
	if mx[c] < 512 || mx[c] > 30000 || mx[c] < 3*median || over > len(mx)/4 {
		t.Fatalf("channel %d max |x| %.0f (median %.0f, %d channels above 256): not a few outlier channels in the hundreds to thousands", c, mx[c], median, over)
	}
	// Same function: the fp32 references of both checkpoints agree.
	refA, err := oracle.New(src, oracle.Options{})
	if err != nil {
		t.Fatal(err)
	}
	refB, err := oracle.New(ck, oracle.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range prompts {
		la, err := refA.Prefill(refA.NewState(), p.IDs)
		if err != nil {
			t.Fatal(err)
		}
		lb, err := refB.Prefill(refB.NewState(), p.IDs)
		if err != nil {
			t.Fatal(err)
		}
		if cs := cosine32(la, lb); cs < 0.99999 {
			t.Fatalf("prompt %s: the transformed checkpoint's fp32 logits differ (cosine %.7f)", p.Name, cs)
		}
	}

	// The published thresholds on two prompts and 8 tokens keep the test small; the unscaled form
	// fails at the first prompt position already.
	opt := oracle.DefaultGateOptions()
	opt.Tokens = 8
	prompts = prompts[:2]
	for _, tc := range []struct {
		target string
		flags  recipe.Flags
	}{
		{"ios-ane", recipe.Flags{}},                      // int8 LUT, the default
		{"macos", recipe.Flags{Weights: "int8-block32"}}, // int8 linear
	} {
		tgt, err := recipe.TargetByName(tc.target)
		if err != nil {
			t.Fatal(err)
		}
		r, err := tc.flags.Apply(tgt)
		if err != nil {
			t.Fatal(err)
		}
		for _, unscaled := range []bool{false, true} {
			j := &job{target: tgt, recipe: r, contract: tgt.Contract}
			lo := j.lowerOptions(newWeightSource(ck, tgt, &j.recipe))
			lo.UnscaledF16Norm = unscaled
			m, err := lower.Lower(ck.Config, lo)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := oracle.Gate(refB, func() (oracle.Candidate, error) {
				s, err := interp.NewSession(m, nil)
				if err != nil {
					return nil, err
				}
				return gating.SessionCandidate(s), nil
			}, prompts, opt)
			if err != nil {
				t.Fatal(err)
			}
			tt := rep.Totals
			t.Logf("%s %s unscaled=%v: passed=%v teacher-forced %d/%d confident, min prefill cosine %.6f, first failure %q",
				tc.target, tc.flags.Weights, unscaled, rep.Passed, tt.TeacherForcedMatched, tt.TeacherForcedConfident, tt.MinPrefillCosine, tt.FirstFailure)
			if tt.TeacherForcedConfident < 20 {
				t.Fatalf("only %d confident positions: the gate would prove nothing", tt.TeacherForcedConfident)
			}
			if rep.Passed == unscaled {
				t.Errorf("%s unscaled=%v: gate passed=%v, want %v", tc.target, unscaled, rep.Passed, !unscaled)
			}
		}
	}
}

func cosine32(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	return ab / math.Sqrt(aa*bb)
}
