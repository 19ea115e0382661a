package export

import (
	"fmt"
	"strings"
	"testing"

	"qconv/bundle"
	"qconv/graph"
	"qconv/hf"
	"qconv/quant"
	"qconv/recipe"
)

// TestWeightSchemeTable holds each --weights value to one meaning across its readers: the
// flag parses to it, the weight source stores a Linear as it says, inspect names that storage
// back as the same value, and the table spells it for the card (card.TestSchemeWords).
func TestWeightSchemeTable(t *testing.T) {
	want := map[recipe.WeightScheme]struct {
		format, gran, words string
		linear              *quant.Linear
		palette             *quant.Palette
	}{
		recipe.FP16:        {"f16", "dense", "fp16", nil, nil},
		recipe.Int8Block32: {"int8", "block32", "int8 block-32", &quant.Linear{Bits: 8, Scheme: quant.Clip, Granularity: quant.Block32}, nil},
		recipe.Int4Block32: {"int4", "block32", "int4 block-32", &quant.Linear{Bits: 4, Scheme: quant.Clip, Granularity: quant.Block32}, nil},
		recipe.Int8PerChan: {"int8", "perchan", "int8 per-channel", &quant.Linear{Bits: 8, Scheme: quant.Clip, Granularity: quant.PerChannel}, nil},
		recipe.Int8LUT:     {"lut8", "g32", "int8 LUT", nil, &quant.Palette{Bits: 8, GroupRows: 32}},
		recipe.Int4LUT:     {"lut4", "g32", "int4 LUT", nil, &quant.Palette{Bits: 4, GroupRows: 32}},
	}
	if len(recipe.WeightSchemes) != len(want) {
		t.Fatalf("WeightSchemes %v, want %d schemes", recipe.WeightSchemes, len(want))
	}
	gpu, _ := recipe.TargetByName("gpu-pipelined")
	linear := hf.TensorSpec{Name: "layers.0.mlp.up_proj.weight", Kind: hf.KindLinear, Shape: []int{64, 64}}
	for _, s := range recipe.WeightSchemes {
		w, ok := want[s]
		if !ok {
			t.Errorf("unexpected scheme %q", s)
			continue
		}
		r, err := recipe.Flags{Weights: string(s), Scheme: "clip", AllowDelegate: true}.Apply(gpu)
		if err != nil || r.Weights != s {
			t.Errorf("--weights %s: recipe weights %q, err %v", s, r.Weights, err)
			continue
		}
		st := (&weightSource{recipe: &r, target: gpu}).decide(linear)
		switch {
		case w.linear != nil:
			if st.linear == nil || *st.linear != *w.linear {
				t.Errorf("%s: stored as %+v, want linear %v", s, st, w.linear)
			}
		case w.palette != nil:
			if st.palette == nil || *st.palette != *w.palette {
				t.Errorf("%s: stored as %+v, want palette %v", s, st, w.palette)
			}
		default:
			if st.linear != nil || st.palette != nil || st.dense != graph.F16 {
				t.Errorf("%s: stored as %+v, want dense f16", s, st)
			}
		}
		if got := bundle.LinearScheme(bundle.TensorInfo{Format: w.format, Granularity: w.gran}); got != string(s) {
			t.Errorf("%s: inspect names %s/%s storage %q", s, w.format, w.gran, got)
		}
		if row, _ := recipe.WeightSchemeOf(s); row.Words != w.words {
			t.Errorf("%s: card words %q, want %q", s, row.Words, w.words)
		}
	}
	// Storage no --weights value gives is named from the bytes, not forced into the table.
	for _, c := range []struct{ format, gran, want string }{
		{"int8", "block16", "int8-block16"},
		{"int4", "perchan", "int4-perchan"},
		{"lut8", "pertensor", string(recipe.Int8LUT)},
		{"f32", "dense", "f32"},
	} {
		if got := bundle.LinearScheme(bundle.TensorInfo{Format: c.format, Granularity: c.gran}); got != c.want {
			t.Errorf("inspect names %s/%s %q, want %q", c.format, c.gran, got, c.want)
		}
	}
	if _, err := (recipe.Flags{Weights: "int3-block32"}).Apply(gpu); err == nil {
		t.Error("--weights int3-block32 accepted")
	} else if msg := fmt.Sprint(err); !strings.Contains(msg, "int8-block32") {
		t.Errorf("unknown --weights error %q does not list the schemes", msg)
	}
}
