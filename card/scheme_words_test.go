package card

import "testing"

// The card spells a --weights value by the scheme table's words, and storage no --weights value
// gives from its format and granularity.
func TestSchemeWords(t *testing.T) {
	for s, want := range map[string]string{
		"fp16": "fp16", "int8-block32": "int8 block-32", "int8-lut": "int8 LUT", "int4-block32": "int4 block-32",
		"int4-lut": "int4 LUT", "int8-perchan": "int8 per-channel", "int8-block16": "int8 block-16", "f32": "f32",
	} {
		if got := schemeWords(s); got != want {
			t.Errorf("schemeWords(%q) = %q, want %q", s, got, want)
		}
	}
}
