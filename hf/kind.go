package hf

import (
	"strconv"
	"strings"
)

// kindByRole maps a canonical tensor name with its layer index dropped ("layers.linear_attn.
// in_proj_a.weight", "embed_tokens.weight") to its Kind. It is built from ExpectedTensors on a
// two-layer config, one layer of each type, so the table that says which tensors a checkpoint
// holds is also the only one that says what they are.
var kindByRole = func() map[string]Kind {
	c := &Config{LayerTypes: []LayerType{LinearAttention, FullAttention}}
	m := map[string]Kind{}
	for _, s := range append(c.ExpectedTensors(), c.FusedTensors()...) {
		m[layerRole(s.Name)] = s.Kind
	}
	return m
}()

// layerRole drops the layer index from a canonical name: "layers.3.mlp.up_proj.weight" becomes
// "layers.mlp.up_proj.weight"; names outside the decoder layers are returned as they are.
func layerRole(name string) string {
	rest, ok := strings.CutPrefix(name, "layers.")
	if !ok {
		return name
	}
	idx, tail, ok := strings.Cut(rest, ".")
	if !ok {
		return name
	}
	if _, err := strconv.ParseUint(idx, 10, 32); err != nil {
		return name
	}
	return "layers." + tail
}

// KindOf classifies a canonical text-stack tensor name (as ExpectedTensors and bundles spell it:
// "layers.0.mlp.gate_proj.weight", "lm_head.weight"), so code that only has a name, such as an
// inspection of a bundle's bytes, asks the same table the exporter used. ok is false for names
// that are not text-stack tensors of a Qwen3.5 checkpoint.
func KindOf(name string) (Kind, bool) {
	k, ok := kindByRole[layerRole(name)]
	return k, ok
}
