package synth

import (
	"errors"
	"path/filepath"
	"testing"

	"qconv/hf"
)

// The text decoder's parameter count from the dimensions lands where the published model's size
// says (the names count the vision tower too, which is small): a wrong width or head count shows.
func TestSizesMatchTheirNames(t *testing.T) {
	bands := map[string][2]float64{"0.8b": {0.7e9, 0.85e9}, "2b": {1.8e9, 2.1e9}, "4b": {4.0e9, 4.5e9}, "9b": {8.7e9, 9.4e9}, "27b": {26.5e9, 27.8e9}}
	for _, size := range SizeNames {
		d := Sizes[size]
		var n int64
		for _, ts := range plan(Options{Dims: d, Layout: TextOnly, DType: "BF16"}) {
			n += int64(ts.elems())
		}
		if b := bands[size]; float64(n) < b[0] || float64(n) > b[1] {
			t.Errorf("%s: %d text parameters, want %g..%g", size, n, b[0], b[1])
		}
		if d.Tied != (size != "9b" && size != "27b") {
			t.Errorf("%s: tied %v", size, d.Tied)
		}
	}
}

// Every size's scaled-down variant, in both layouts, opens through qconv's reader with every
// tensor the config implies, and a poisoned element is reported at its row and column.
func TestScaledVariantsOpen(t *testing.T) {
	for _, size := range SizeNames {
		for _, layout := range []string{Multimodal, TextOnly} {
			dir := filepath.Join(t.TempDir(), size)
			d := Sizes[size].Scaled(32, 4, 512)
			p := &Poison{Tensor: "model.layers.0.mlp.gate_proj.weight", Row: 3, Col: 9}
			if layout == Multimodal {
				p.Tensor = "model.language_model.layers.0.mlp.gate_proj.weight"
			}
			if err := Write(dir, Options{Dims: d, Layout: layout, Poison: p}); err != nil {
				t.Fatal(err)
			}
			ck, err := hf.Open(dir)
			if err != nil {
				t.Fatalf("%s %s: %v", size, layout, err)
			}
			c := ck.Config
			if c.HiddenSize != d.Hidden || c.TieWordEmbeddings != d.Tied || c.Nested != (layout == Multimodal) {
				t.Errorf("%s %s: config %+v", size, layout, c)
			}
			tn, err := ck.Tensor("layers.0.mlp.gate_proj.weight")
			if err != nil {
				t.Fatal(err)
			}
			var nf *hf.NonFiniteError
			if err := tn.CheckFinite(); !errors.As(err, &nf) || nf.Row != 3 || nf.Col != 9 {
				t.Errorf("%s %s: CheckFinite = %v", size, layout, err)
			}
			ck.Close()
		}
	}
}
