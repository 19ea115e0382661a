package hf

import (
	"fmt"
	"strings"
)

// Kind says what a text-stack tensor is for; quantization recipes key their tables on it.
type Kind string

const (
	KindEmbedding Kind = "embedding"  // embed_tokens [V, h]
	KindHead      Kind = "head"       // lm_head [V, h] (untied)
	KindLinear    Kind = "linear"     // nn.Linear weight [out, in]
	KindNorm      Kind = "norm"       // zero-centred RMSNorm weight (applied as 1+w)
	KindGatedNorm Kind = "gated_norm" // gated RMSNorm weight of the delta layers (applied as w)
	KindConv      Kind = "conv"       // depthwise causal conv [conv_dim, 1, K]
	KindALog      Kind = "a_log"      // per-value-head log decay rate
	KindDtBias    Kind = "dt_bias"    // per-value-head softplus bias
)

// TensorSpec is one tensor the config implies, under its canonical name.
type TensorSpec struct {
	Name  string
	Shape []int
	Kind  Kind
	Layer int // -1 outside the decoder layers
}

// Stored-name prefixes, as data. The text stack may sit under either prefix (multimodal
// checkpoints and CausalLM checkpoints loaded from them use the first, models built from scratch
// the second); the vision tower and the multi-token-prediction head are not part of a text export.
var (
	textPrefixes = []string{"model.language_model.", "model."}
	skipPrefixes = []struct{ prefix, reason string }{
		{"model.visual.", "vision tower (not part of a text export)"},
		{"mtp.", "multi-token-prediction head (ignored by transformers, not exported)"},
	}
)

const headName = "lm_head.weight"

// canonicalName maps a stored name to its text-stack name. skip is non-empty for tensors a text
// export leaves out; ok is false for names outside every known layout.
func canonicalName(stored string) (name, skip string, ok bool) {
	for _, s := range skipPrefixes {
		if strings.HasPrefix(stored, s.prefix) {
			return "", s.reason, true
		}
	}
	if stored == headName {
		return headName, "", true
	}
	for _, p := range textPrefixes {
		if strings.HasPrefix(stored, p) {
			return strings.TrimPrefix(stored, p), "", true
		}
	}
	return "", "", false
}

// ExpectedTensors lists every tensor the config implies, in model order, with its exact shape
// (docs/model-math.md#2-tensors). A tied model has no lm_head entry.
func (c *Config) ExpectedTensors() []TensorSpec {
	h, I := c.HiddenSize, c.IntermediateSize
	var specs []TensorSpec
	add := func(layer int, name string, kind Kind, shape ...int) {
		if layer >= 0 {
			name = fmt.Sprintf("layers.%d.%s", layer, name)
		}
		specs = append(specs, TensorSpec{Name: name, Shape: shape, Kind: kind, Layer: layer})
	}
	add(-1, "embed_tokens.weight", KindEmbedding, c.VocabSize, h)
	for i, lt := range c.LayerTypes {
		add(i, "input_layernorm.weight", KindNorm, h)
		switch lt {
		case LinearAttention:
			nv := c.LinearNumValueHeads
			add(i, "linear_attn.in_proj_qkv.weight", KindLinear, c.ConvDim(), h)
			add(i, "linear_attn.in_proj_z.weight", KindLinear, c.ValueDim(), h)
			add(i, "linear_attn.in_proj_b.weight", KindLinear, nv, h)
			add(i, "linear_attn.in_proj_a.weight", KindLinear, nv, h)
			add(i, "linear_attn.conv1d.weight", KindConv, c.ConvDim(), 1, c.ConvKernel)
			add(i, "linear_attn.dt_bias", KindDtBias, nv)
			add(i, "linear_attn.A_log", KindALog, nv)
			add(i, "linear_attn.norm.weight", KindGatedNorm, c.LinearValueHeadDim)
			add(i, "linear_attn.out_proj.weight", KindLinear, h, c.ValueDim())
		case FullAttention:
			H, Hkv, D := c.NumHeads, c.NumKVHeads, c.HeadDim
			add(i, "self_attn.q_proj.weight", KindLinear, 2*H*D, h)
			add(i, "self_attn.k_proj.weight", KindLinear, Hkv*D, h)
			add(i, "self_attn.v_proj.weight", KindLinear, Hkv*D, h)
			add(i, "self_attn.o_proj.weight", KindLinear, h, H*D)
			add(i, "self_attn.q_norm.weight", KindNorm, D)
			add(i, "self_attn.k_norm.weight", KindNorm, D)
		}
		add(i, "post_attention_layernorm.weight", KindNorm, h)
		add(i, "mlp.gate_proj.weight", KindLinear, I, h)
		add(i, "mlp.up_proj.weight", KindLinear, I, h)
		add(i, "mlp.down_proj.weight", KindLinear, h, I)
	}
	add(-1, "norm.weight", KindNorm, h)
	if !c.TieWordEmbeddings {
		add(-1, headName, KindHead, c.VocabSize, h)
	}
	return specs
}
