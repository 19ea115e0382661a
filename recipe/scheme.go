package recipe

import (
	"fmt"

	"qconv/quant"
)

// WeightSchemeTable is the one table of --weights values. The weight source stores a decoder
// Linear by it, inspect recognises that storage in a bundle's bytes by it, the flag parser and
// the card's wording read it, so a scheme is added or changed in one row.
var WeightSchemeTable = []WeightSchemeRow{
	{Scheme: FP16, Words: "fp16"},
	{Scheme: Int8Block32, Bits: 8, Gran: quant.Block32, Words: "int8 block-32"},
	{Scheme: Int8LUT, Bits: 8, LUT: true, Words: "int8 LUT"},
	{Scheme: Int4Block32, Bits: 4, Gran: quant.Block32, Words: "int4 block-32"},
	{Scheme: Int4LUT, Bits: 4, LUT: true, Words: "int4 LUT"},
	{Scheme: Int8PerChan, Bits: 8, Gran: quant.PerChannel, Words: "int8 per-channel"},
}

// WeightSchemeRow is one --weights value. bits 0 is float storage in the compute dtype; lut a
// k-means palette over groups of quant.PaletteGroupRows output rows; otherwise linear with one
// scale per gran.
type WeightSchemeRow struct {
	Scheme WeightScheme
	Bits   int
	LUT    bool
	Gran   quant.Granularity
	Words  string // the card's spelling
}

func WeightSchemeOf(s WeightScheme) (WeightSchemeRow, bool) {
	for _, r := range WeightSchemeTable {
		if r.Scheme == s {
			return r, true
		}
	}
	return WeightSchemeRow{}, false
}

// Quantizer is how the weight source stores a decoder Linear under this scheme: a palette, or a
// linear quantizer with body as its scale scheme (absmax or clip); both nil for float storage.
func (r WeightSchemeRow) Quantizer(body quant.Scheme) (*quant.Linear, *quant.Palette) {
	switch {
	case r.Bits == 0:
		return nil, nil
	case r.LUT:
		return nil, &quant.Palette{Bits: r.Bits, GroupRows: quant.PaletteGroupRows}
	}
	return &quant.Linear{Bits: r.Bits, Scheme: body, Granularity: r.Gran}, nil
}

// Format is inspect's TensorInfo.Format of a Linear stored this way (the float form is the device's f16).
func (r WeightSchemeRow) Format() string {
	switch {
	case r.Bits == 0:
		return "f16"
	case r.LUT:
		return fmt.Sprintf("lut%d", r.Bits)
	}
	return fmt.Sprintf("int%d", r.Bits)
}

// Matches reports whether a Linear stored in format at granularity (as inspect reads them from
// the bytes) is this scheme's storage. A LUT matches whatever its grouping: tensors too short
// for the groups hold one LUT (export's weight source).
func (r WeightSchemeRow) Matches(format, granularity string) bool {
	if format != r.Format() {
		return false
	}
	return r.Bits == 0 || r.LUT || granularity == r.Gran.String()
}
