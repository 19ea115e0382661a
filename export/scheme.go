package export

import (
	"fmt"

	"qconv/quant"
)

// weightSchemeTable is the one table of --weights values. The weight source stores a decoder
// Linear by it, inspect recognises that storage in a bundle's bytes by it, the flag parser and
// the card's wording read it, so a scheme is added or changed in one row.
var weightSchemeTable = []weightSchemeRow{
	{scheme: FP16, words: "fp16"},
	{scheme: Int8Block32, bits: 8, gran: quant.Block32, words: "int8 block-32"},
	{scheme: Int8LUT, bits: 8, lut: true, words: "int8 LUT"},
	{scheme: Int4Block32, bits: 4, gran: quant.Block32, words: "int4 block-32"},
	{scheme: Int4LUT, bits: 4, lut: true, words: "int4 LUT"},
	{scheme: Int8PerChan, bits: 8, gran: quant.PerChannel, words: "int8 per-channel"},
}

// weightSchemeRow is one --weights value. bits 0 is float storage in the compute dtype; lut a
// k-means palette over groups of quant.PaletteGroupRows output rows; otherwise linear with one
// scale per gran.
type weightSchemeRow struct {
	scheme WeightScheme
	bits   int
	lut    bool
	gran   quant.Granularity
	words  string // the card's spelling
}

func weightSchemeOf(s WeightScheme) (weightSchemeRow, bool) {
	for _, r := range weightSchemeTable {
		if r.scheme == s {
			return r, true
		}
	}
	return weightSchemeRow{}, false
}

// storage is how the weight source stores a decoder Linear under this scheme: body is the
// recipe's linear scale scheme (absmax or clip), dense the float storage.
func (r weightSchemeRow) storage(body quant.Scheme, dense storage) storage {
	switch {
	case r.bits == 0:
		return dense
	case r.lut:
		return storage{palette: &quant.Palette{Bits: r.bits, GroupRows: quant.PaletteGroupRows}}
	}
	return storage{linear: &quant.Linear{Bits: r.bits, Scheme: body, Granularity: r.gran}}
}

// format is TensorInfo.Format of a Linear stored this way (the float form is the device's f16).
func (r weightSchemeRow) format() string {
	switch {
	case r.bits == 0:
		return "f16"
	case r.lut:
		return fmt.Sprintf("lut%d", r.bits)
	}
	return fmt.Sprintf("int%d", r.bits)
}

// matches reports whether inspect's description of a Linear is this scheme's storage. A LUT
// matches whatever its grouping: tensors too short for the groups hold one LUT (weights.go).
func (r weightSchemeRow) matches(t TensorInfo) bool {
	if t.Format != r.format() {
		return false
	}
	return r.bits == 0 || r.lut || t.Granularity == r.gran.String()
}
