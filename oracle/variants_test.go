package oracle

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"testing"

	"qconv/hf"
	"qconv/internal/golden"
	"qconv/internal/kernels"
)

// fakeQuant returns an fp32 matrix holding w dequantized by the goldens' rule: per block of 32
// along the input axis, scale = fp16(max|w| / qmax), q = clamp(round_half_even(w / scale)),
// value q·scale, all in fp32 (the quant package owns the real implementation; this is the
// test's independent transcription of the JSON's quant_rule).
func fakeQuant(t *hf.Tensor, qmax float32) (kernels.Matrix, error) {
	rows, cols := t.Shape[0], t.Shape[1]
	if cols%32 != 0 {
		return nil, fmt.Errorf("%s: %d columns", t.Name, cols)
	}
	row := make([]float32, cols)
	data := make([]byte, 0, 4*rows*cols)
	half := make([]byte, 2)
	for r := range rows {
		if err := t.Row(r, row); err != nil {
			return nil, err
		}
		for b := 0; b < cols; b += 32 {
			var amax float32
			for _, v := range row[b : b+32] {
				amax = max(amax, float32(math.Abs(float64(v))))
			}
			var scale [1]float32
			kernels.F32ToF16(half, []float32{amax / qmax})
			kernels.F16ToF32(scale[:], half)
			for _, v := range row[b : b+32] {
				var q float32
				if scale[0] > 0 {
					q = float32(math.RoundToEven(float64(v / scale[0])))
					q = min(max(q, -qmax), qmax)
				}
				data = binary.LittleEndian.AppendUint32(data, math.Float32bits(q*scale[0]))
			}
		}
	}
	return kernels.NewF32Matrix(data, rows, cols)
}

// TestFakeQuantVariants runs the trained fixture with every decoder Linear (and for the hu
// variants the head, untied from the embedding) replaced through Options.Weights, and checks
// transformers' fake-quantized outputs: the teacher-forced logits along the fp32 trajectory
// (17 rows, and their top-1 match count) and the variant's own greedy ids and 17 logit rows. It proves the substitution hook covers exactly
// the tensors the goldens quantized.
func TestFakeQuantVariants(t *testing.T) {
	fx := fixture(t, "tinyqwen35-code")
	ck, err := hf.Open(fx.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	for _, v := range []struct {
		name string
		qmax float32
		head bool
	}{{"q8", 127, false}, {"q8hu", 127, true}, {"q4", 7, false}, {"q4hu", 7, true}} {
		m, err := New(ck, Options{Weights: func(spec hf.TensorSpec, tn *hf.Tensor) (kernels.Matrix, error) {
			if spec.Kind == hf.KindLinear || spec.Kind == hf.KindHead && v.head {
				return fakeQuant(tn, v.qmax)
			}
			return nil, nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		var worst float64
		for _, p := range fx.Golden.Prompts {
			gv := p.Variants[v.name]
			traj := append(slices.Clone(p.IDs), p.GenIDs...)
			all, err := m.PrefillAll(m.NewState(), traj)
			if err != nil {
				t.Fatal(err)
			}
			tf, err := p.Tensor(v.name + ".teacher_forced_logits")
			if err != nil {
				t.Fatal(err)
			}
			V := m.VocabSize()
			top1 := 0
			ref, _ := p.Tensor("next_logits")
			for s := range 17 {
				row := all[(len(p.IDs)-1+s)*V : (len(p.IDs)+s)*V]
				worst = max(worst, golden.MaxAbsDiff(row, tf.Row(s)))
				if kernels.Argmax(row) == kernels.Argmax(ref.Row(s)) {
					top1++
				}
			}
			if top1 != gv.TeacherForcedTop1Match {
				t.Errorf("%s %s: teacher-forced top-1 matches %d/17, transformers %d", v.name, p.Name, top1, gv.TeacherForcedTop1Match)
			}
			g, err := m.Generate(m.NewState(), p.IDs, GenerateOptions{Tokens: 16, FeedLast: true})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(g.IDs(), gv.GenIDs) {
				t.Errorf("%s %s: greedy ids %v, transformers %v", v.name, p.Name, g.IDs(), gv.GenIDs)
				continue
			}
			own, err := p.Tensor(v.name + ".next_logits")
			if err != nil {
				t.Fatal(err)
			}
			for s, st := range g.Steps {
				worst = max(worst, golden.MaxAbsDiff(st.Logits, own.Row(s)))
			}
			worst = max(worst, golden.MaxAbsDiff(g.Next, own.Row(16)))
		}
		t.Logf("%s: max |Δlogit| (teacher-forced and own rollout) %.3g", v.name, worst)
		if worst > tol {
			t.Errorf("%s: logits differ from transformers by %g", v.name, worst)
		}
	}
}
