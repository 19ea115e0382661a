package golden

import (
	"os"
	"path/filepath"
	"testing"
)

func TestTrained(t *testing.T) {
	f, err := LoadTrained()
	if err != nil {
		t.Fatal(err)
	}
	m := f.Models["tinyqwen35-code"]
	if m == nil {
		t.Fatal("no model tinyqwen35-code")
	}
	wantLens := map[string]int{"p1": 1, "h0": 12, "h1": 40, "h2": 100, "h3": 300}
	var names []string
	for _, p := range m.Prompts {
		names = append(names, p.Name)
		if len(p.IDs) != wantLens[p.Name] {
			t.Errorf("%s: %d ids, want %d", p.Name, len(p.IDs), wantLens[p.Name])
		}
		if len(p.GenIDs) != 16 || len(p.LogitMargins) != 17 || len(p.Top5IDs) != 17 || p.Text == "" || p.GenText == "" {
			t.Errorf("%s: gen %d, margins %d, top5 %d, text %q, gen_text %q", p.Name, len(p.GenIDs), len(p.LogitMargins), len(p.Top5IDs), p.Text, p.GenText)
		}
		for _, v := range []string{"q8", "q8hu", "q4", "q4hu"} {
			if p.Variants[v] == nil || len(p.Variants[v].GenIDs) != 16 || p.Variants[v].TeacherForcedSteps != 17 {
				t.Errorf("%s: variant %s missing or incomplete", p.Name, v)
			}
		}
		nl, err := p.Tensor("next_logits")
		if err != nil {
			t.Fatal(err)
		}
		if nl.Shape[0] != 17 || nl.Shape[1] != 1024 {
			t.Errorf("%s: next_logits shape %v", p.Name, nl.Shape)
		}
		// The stored margin is the top-1 minus top-2 logit of each next_logits row.
		for s := range 17 {
			a, b := top2(nl.Row(s))
			if d := float64(a-b) - p.LogitMargins[s]; d > 1e-5 || d < -1e-5 {
				t.Errorf("%s step %d: margin %g from the logits, %g in the JSON", p.Name, s, a-b, p.LogitMargins[s])
			}
		}
	}
	if got := names; len(got) != 5 || got[0] != "p1" || got[1] != "h0" || got[4] != "h3" {
		t.Errorf("prompt order %v", got)
	}
	h0, _ := m.Prompt("h0")
	if h0.IDs[0] != 259 || h0.IDs[11] != 603 || h0.GenIDs[0] != 10 || h0.Text != "   if hi is None:\n        hi = len" {
		t.Errorf("h0: ids %v text %q", h0.IDs, h0.Text)
	}
	if v := h0.Variants["q4"]; v.GreedyMatch != 8 || v.FirstDivergence != 8 {
		t.Errorf("h0 q4: %+v", v)
	}
	if v := h0.Variants["q8"]; v.GreedyMatch != 16 || v.FirstDivergence != -1 {
		t.Errorf("h0 q8: %+v", v)
	}
	h1, _ := m.Prompt("h1")
	for _, c := range []struct {
		layer int
		kind  string
		shape []int
	}{{0, "conv", []int{1, 512, 4}}, {0, "recurrent", []int{1, 8, 32, 32}}, {3, "key", []int{1, 2, 40, 64}}, {7, "value", []int{1, 2, 40, 64}}} {
		st, ok := h1.StateAfterPrompt(c.layer, c.kind)
		if !ok || !equalInts(st.Shape, c.shape) {
			t.Errorf("h1 state layer%d.%s: ok %v, shape %v, want %v", c.layer, c.kind, ok, st, c.shape)
		}
	}
	if _, ok := h1.StateAfterPrompt(3, "conv"); ok {
		t.Error("h1: layer 3 (full attention) has a conv state")
	}
	if f.QuantRule == "" {
		t.Error("no quant_rule")
	}
}

func TestRandom(t *testing.T) {
	f, err := LoadRandom()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"tiny_tied_4L", "tiny_untied_8L"} {
		m := f.Models[name]
		if m == nil || len(m.Prompts) != 4 {
			t.Fatalf("%s: %v", name, m)
		}
		for i, want := range []int{1, 7, 33, 70} {
			p := m.Prompts[i]
			if len(p.IDs) != want || len(p.GenIDs) != 16 || len(p.Top5Logits) != 17 || len(p.LogitMargins) != 17 {
				t.Errorf("%s %s: %d ids, %d gen, %d top5", name, p.Name, len(p.IDs), len(p.GenIDs), len(p.Top5Logits))
			}
			if p.FullVsCachedMaxAbs <= 0 && p.Name != "p1" {
				t.Errorf("%s %s: no full-vs-cached gap", name, p.Name)
			}
			pl, err := p.Tensor("prefill_logits")
			if err != nil || pl.Shape[0] != want || pl.Shape[1] != 512 {
				t.Fatalf("%s %s prefill_logits: %v %v", name, p.Name, pl, err)
			}
			nl, _ := p.Tensor("next_logits")
			// Row 0 of next_logits is the last prefill row, bit for bit.
			if d := MaxAbsDiff(nl.Row(0), pl.Row(want-1)); d != 0 {
				t.Errorf("%s %s: next_logits[0] differs from the last prefill row by %g", name, p.Name, d)
			}
			if g, ok := p.StateAfterGen(3, "key"); !ok || g.Shape[2] != want+16 {
				t.Errorf("%s %s: state_after_gen key %v", name, p.Name, g)
			}
		}
	}
}

func TestFixtures(t *testing.T) {
	fx, err := Fixtures()
	if err != nil {
		t.Fatal(err)
	}
	if len(fx) != 4 || fx[3].Golden.Name != "tiny_untied_8L" {
		t.Fatalf("fixtures %+v", fx)
	}
	for _, x := range fx {
		if _, err := os.Stat(filepath.Join(x.Dir, "config.json")); err != nil {
			t.Error(err)
		}
	}
}

func TestMalformedSafetensors(t *testing.T) {
	dir := t.TempDir()
	cases := map[string][]byte{
		"short":     {1, 2, 3},
		"hugeheadr": {0xff, 0xff, 0, 0, 0, 0, 0, 0, '{', '}'},
		"badjson":   append([]byte{2, 0, 0, 0, 0, 0, 0, 0}, '{', 'x'),
		"baddtype":  withHeader(`{"a":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]}}`, 2),
		"overrun":   withHeader(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, 8),
		"mismatch":  withHeader(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}}`, 8),
	}
	for name, data := range cases {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := readSafetensors(path); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func withHeader(h string, body int) []byte {
	b := []byte{byte(len(h)), 0, 0, 0, 0, 0, 0, 0}
	b = append(b, h...)
	return append(b, make([]byte, body)...)
}

func top2(x []float32) (a, b float32) {
	a, b = x[0], x[1]
	if b > a {
		a, b = b, a
	}
	for _, v := range x[2:] {
		if v > a {
			a, b = v, a
		} else if v > b {
			b = v
		}
	}
	return a, b
}
