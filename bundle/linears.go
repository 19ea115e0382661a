package bundle

import "qconv/hf"

// DecoderLinear reports whether a bundle tensor is a decoder Linear weight: the tensors whose
// storage the recipe's --weights names. hf owns the classification (the exporter's storage table
// keys on the same hf.KindLinear), so inspect and the card cannot drift from what was written.
func DecoderLinear(name string) bool {
	k, ok := hf.KindOf(name)
	return ok && k == hf.KindLinear
}
