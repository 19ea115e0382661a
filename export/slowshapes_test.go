package export

import (
	"bytes"
	"qconv/bundle"
	"qconv/card"
	"qconv/internal/testfix"
	"qconv/recipe"
	"slices"
	"strings"
	"testing"
)

// Known slow shapes warn and are recorded in metadata and on the card; fast shapes say nothing.
func TestSlowShapesWarnAndRecord(t *testing.T) {
	ck := testfix.Open(t, fixture)
	for _, c := range []struct {
		target string
		flags  recipe.Flags
		want   []string // fragments, one per expected note
	}{
		{"gpu-pipelined", recipe.Flags{Head: "int8", HeadGranularity: "block16"}, []string{"3.2x slower than per-block-32"}},
		{"gpu-pipelined", recipe.Flags{Head: "int8-block8"}, []string{"3.2x slower than per-block-32"}},
		{"gpu-pipelined", recipe.Flags{Head: "int8"}, nil},
		{"gpu-pipelined", recipe.Flags{Weights: "int8-lut"}, []string{"slower than linear int8"}},
		{"ios-gpu", recipe.Flags{}, []string{"slower than linear int8"}},
		{"ios-ane", recipe.Flags{Head: "int8", HeadGranularity: "block8"}, nil}, // measured on the GPU delegate only
	} {
		out := t.TempDir()
		res, err := exportTargets(t, ck, out, c.target, c.flags, func(o *Options) { o.NoGate = true })
		if err != nil {
			t.Fatal(err)
		}
		b := res.Bundles[0]
		if len(b.Warnings) != len(c.want) {
			t.Fatalf("%s %+v: warnings %q, want %d", c.target, c.flags, b.Warnings, len(c.want))
		}
		for i, w := range c.want {
			if !strings.Contains(b.Warnings[i], w) {
				t.Errorf("%s: warning %q lacks %q", c.target, b.Warnings[i], w)
			}
		}
		in, err := bundle.Inspect(b.Path)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range b.Warnings {
			if !slices.Contains(in.Metadata.QConv.Notes, w) {
				t.Errorf("%s: metadata notes %q lack %q", c.target, in.Metadata.QConv.Notes, w)
			}
		}
		if len(c.want) == 0 {
			continue
		}
		cd, err := card.BuildCard(out, card.CardOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var md bytes.Buffer
		if err := cd.WriteMarkdown(&md); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(md.String(), c.want[0]) {
			t.Errorf("%s: the card does not say %q", c.target, c.want[0])
		}
	}
}
