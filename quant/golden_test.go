package quant_test

import (
	"math"
	"path/filepath"
	"slices"
	"testing"

	"qconv/hf"
	"qconv/internal/golden"
	"qconv/internal/kernels"
	"qconv/oracle"
	"qconv/quant"
)

// Replacing the trained fixture's decoder Linear weights (and, for the hu variants, the head,
// untied from the embedding) with this package's quantized bytes, multiplied exactly as
// q*scale, reproduces transformers' fake-quant goldens: next_logits within 1e-3 and the greedy
// ids exactly, for int8 and int4.
func TestQuantizedWeightsReproduceGoldens(t *testing.T) {
	ck, err := hf.Open(filepath.Join("..", "testdata", "tinyqwen35-code"))
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	gf, err := golden.LoadTrained()
	if err != nil {
		t.Fatal(err)
	}
	gm := gf.Models["tinyqwen35-code"]
	for _, v := range []struct {
		name string
		bits int
		head bool
	}{{"q8", 8, false}, {"q8hu", 8, true}, {"q4", 4, false}, {"q4hu", 4, true}} {
		spec := quant.Linear{Bits: v.bits, Scheme: quant.Absmax, Granularity: quant.Block32}
		m, err := oracle.New(ck, oracle.Options{Weights: func(s hf.TensorSpec, tt *hf.Tensor) (kernels.Matrix, error) {
			if s.Kind == hf.KindEmbedding || (s.Kind == hf.KindHead && !v.head) {
				return nil, nil
			}
			src := quant.RowSource(tt)
			if tt.DType == hf.BF16 {
				src = &quant.BF16Matrix{R: tt.Rows(), C: tt.Cols(), Data: tt.Bytes()}
			}
			q, err := quant.QuantizeLinear(src, spec, quant.Options{})
			if err != nil || q.Skipped {
				t.Fatalf("%s %s: %v %s", v.name, s.Name, err, q.SkipReason)
			}
			if v.bits == 4 {
				return kernels.NewQ4Matrix(q.Data, q.Scales, tt.Rows(), tt.Cols(), 1, 32)
			}
			return kernels.NewQ8Matrix(q.Data, q.Scales, tt.Rows(), tt.Cols(), 1, 32)
		}})
		if err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for _, p := range gm.Prompts {
			gen, err := m.Generate(m.NewState(), p.IDs, oracle.GenerateOptions{Tokens: 16, FeedLast: true})
			if err != nil {
				t.Fatal(err)
			}
			if want := p.Variants[v.name].GenIDs; !slices.Equal(gen.IDs(), want) {
				t.Errorf("%s %s: greedy %v, golden %v", v.name, p.Name, gen.IDs(), want)
			}
			want, err := p.Tensor(v.name + ".next_logits")
			if err != nil {
				t.Fatal(err)
			}
			for k := 0; k <= 16; k++ {
				row := gen.Next
				if k < 16 {
					row = gen.Steps[k].Logits
				}
				for i, x := range row {
					worst = max(worst, math.Abs(float64(x)-float64(want.Row(k)[i])))
				}
			}
		}
		t.Logf("%s: max |logits - golden| %.2e", v.name, worst)
		if worst > 1e-3 {
			t.Errorf("%s: next_logits differ from the goldens by %.3g > 1e-3", v.name, worst)
		}
	}
}
