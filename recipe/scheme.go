package recipe

import (
	"qconv/graph"
	"qconv/quant"
)

// WeightSchemeTable is the one table of --weights values. The weight source stores a decoder
// Linear by it, inspect recognises that storage in a bundle's bytes by it, the flag parser,
// bundle names and the card's wording read it, so a scheme is added or changed in one row.
var WeightSchemeTable = []WeightSchemeRow{
	{Scheme: FP16, Words: "fp16", Mode: "fp16"},
	{Scheme: Int8Block32, Bits: 8, Gran: quant.Block32, Words: "int8 block-32", Mode: "int8lin"},
	{Scheme: Int8LUT, Bits: 8, LUT: true, Words: "int8 LUT", Mode: "int8"},
	{Scheme: Int4Block32, Bits: 4, Gran: quant.Block32, Words: "int4 block-32", Mode: "int4lin"},
	{Scheme: Int4LUT, Bits: 4, LUT: true, Words: "int4 LUT", Mode: "int4"},
	{Scheme: Int8PerChan, Bits: 8, Gran: quant.PerChannel, Words: "int8 per-channel", Mode: "int8perchan"},
}

// WeightSchemeRow is one --weights value. Bits 0 is float storage in the compute dtype; LUT a
// k-means palette over groups of quant.PaletteGroupRows output rows; otherwise linear with one
// scale per Gran.
type WeightSchemeRow struct {
	Scheme WeightScheme
	Bits   int
	LUT    bool
	Gran   quant.Granularity
	Words  string // the card's spelling
	Mode   string // the community-style mode name bundle names start with (int8lin, int8, ...)
}

// WeightSchemeOf is s's row of the table.
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
	if r.Bits == 0 {
		return "f16"
	}
	_, format := StoredAs(r.Bits, r.LUT)
	return format
}

// storedFormats is the one table of quantized storage: the element type a linear (blockwise) or
// palette (LUT) weight of a width is stored as, and its format name. The weight source writes
// by it and inspect reads the bytes back by it.
var storedFormats = []struct {
	bits   int
	lut    bool
	dtype  graph.DType
	format string
}{
	{8, false, graph.SI8, "int8"}, {4, false, graph.SI4, "int4"},
	{8, true, graph.UI8, "lut8"}, {4, true, graph.UI4, "lut4"},
}

// StoredAs is the element type and format name of bits-wide linear (lut false) or palette
// indices (lut true); 0 and "" for a width no scheme stores.
func StoredAs(bits int, lut bool) (graph.DType, string) {
	for _, f := range storedFormats {
		if f.bits == bits && f.lut == lut {
			return f.dtype, f.format
		}
	}
	return 0, ""
}

// FormatOf is the format name of weights stored as dt ("" for a dtype no scheme stores).
func FormatOf(dt graph.DType) string {
	for _, f := range storedFormats {
		if f.dtype == dt {
			return f.format
		}
	}
	return ""
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
