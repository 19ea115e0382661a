package hf

import "testing"

func TestKindOf(t *testing.T) {
	for _, c := range []struct {
		name string
		kind Kind
		ok   bool
	}{
		{"embed_tokens.weight", KindEmbedding, true},
		{"lm_head.weight", KindHead, true},
		{"norm.weight", KindNorm, true},
		{"layers.0.linear_attn.in_proj_qkv.weight", KindLinear, true},
		{"layers.17.linear_attn.in_proj_a.weight", KindLinear, true},
		{"layers.0.linear_attn.conv1d.weight", KindConv, true},
		{"layers.0.linear_attn.norm.weight", KindGatedNorm, true},
		{"layers.2.linear_attn.A_log", KindALog, true},
		{"layers.2.linear_attn.dt_bias", KindDtBias, true},
		{"layers.3.self_attn.q_proj.weight", KindLinear, true},
		{"layers.3.self_attn.q_norm.weight", KindNorm, true},
		{"layers.40.mlp.down_proj.weight", KindLinear, true},
		{"layers.40.post_attention_layernorm.weight", KindNorm, true},
		// Not text-stack tensors, or not canonical spellings.
		{"model.layers.0.mlp.down_proj.weight", "", false},
		{"layers.x.mlp.down_proj.weight", "", false},
		{"layers.0.mlp.down_proj", "", false},
		{"mtp.fc.weight", "", false},
		{"layers.0.mlp.gate_proj.weight.scale", "", false},
	} {
		k, ok := KindOf(c.name)
		if k != c.kind || ok != c.ok {
			t.Errorf("KindOf(%q) = %q, %v; want %q, %v", c.name, k, ok, c.kind, c.ok)
		}
	}
}

// TestKindOfAgreesWithExpectedTensors: every tensor a real-shaped config implies classifies
// by name exactly as ExpectedTensors says.
func TestKindOfAgreesWithExpectedTensors(t *testing.T) {
	c := &Config{HiddenSize: 64, IntermediateSize: 96, VocabSize: 100, NumHeads: 2, NumKVHeads: 1, HeadDim: 32,
		LinearNumKeyHeads: 2, LinearNumValueHeads: 4, LinearKeyHeadDim: 16, LinearValueHeadDim: 16, ConvKernel: 4,
		LayerTypes: []LayerType{LinearAttention, LinearAttention, LinearAttention, FullAttention, LinearAttention, FullAttention}}
	for _, s := range c.ExpectedTensors() {
		if k, ok := KindOf(s.Name); !ok || k != s.Kind {
			t.Errorf("KindOf(%q) = %q, %v; ExpectedTensors says %q", s.Name, k, ok, s.Kind)
		}
	}
}
