package hf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// LayerType is the mixer of one decoder layer.
type LayerType string

const (
	LinearAttention LayerType = "linear_attention" // gated DeltaNet
	FullAttention   LayerType = "full_attention"   // gated softmax attention
)

// Supported values of config.json's top-level model_type.
var supportedModelTypes = []string{"qwen3_5", "qwen3_5_text"}

// Config is the text decoder's configuration, normalised from either config.json layout
// (flat qwen3_5_text, or qwen3_5 with a nested text_config) and from either RoPE spelling.
type Config struct {
	ModelType        string // top-level model_type as written ("qwen3_5" or "qwen3_5_text")
	Architectures    []string
	Nested           bool // text fields came from text_config
	VocabSize        int
	HiddenSize       int
	IntermediateSize int
	NumLayers        int
	LayerTypes       []LayerType

	NumHeads   int // query heads of full attention
	NumKVHeads int
	HeadDim    int

	LinearNumKeyHeads   int // nk
	LinearNumValueHeads int // nv
	LinearKeyHeadDim    int // dk
	LinearValueHeadDim  int // dv
	ConvKernel          int // K

	RopeTheta           float64
	PartialRotaryFactor float64
	MropeSection        []int
	MropeInterleaved    bool

	RMSNormEps            float64
	TieWordEmbeddings     bool
	MaxPositionEmbeddings int
	EOSTokenIDs           []int
	TorchDType            string // declared dtype, informational
}

// RotaryDim is the number of leading head dims that RoPE rotates.
func (c *Config) RotaryDim() int { return int(float64(c.HeadDim) * c.PartialRotaryFactor) }

// KeyDim is nk*dk, the width of the gated-delta q and k.
func (c *Config) KeyDim() int { return c.LinearNumKeyHeads * c.LinearKeyHeadDim }

// ValueDim is nv*dv, the width of the gated-delta v and output.
func (c *Config) ValueDim() int { return c.LinearNumValueHeads * c.LinearValueHeadDim }

// ConvDim is the channel count of the causal conv (q, k and v together).
func (c *Config) ConvDim() int { return 2*c.KeyDim() + c.ValueDim() }

// NumLayersOf counts the layers of one type.
func (c *Config) NumLayersOf(t LayerType) int {
	n := 0
	for _, lt := range c.LayerTypes {
		if lt == t {
			n++
		}
	}
	return n
}

// rawConfig holds the fields qconv reads, at either level. Pointers tell "absent" from zero.
type rawConfig struct {
	ModelType             *string         `json:"model_type"`
	Architectures         []string        `json:"architectures"`
	TextConfig            json.RawMessage `json:"text_config"`
	VocabSize             *int            `json:"vocab_size"`
	HiddenSize            *int            `json:"hidden_size"`
	IntermediateSize      *int            `json:"intermediate_size"`
	NumHiddenLayers       *int            `json:"num_hidden_layers"`
	LayerTypes            []string        `json:"layer_types"`
	FullAttentionInterval *int            `json:"full_attention_interval"`
	NumAttentionHeads     *int            `json:"num_attention_heads"`
	NumKeyValueHeads      *int            `json:"num_key_value_heads"`
	HeadDim               *int            `json:"head_dim"`
	LinearNumKeyHeads     *int            `json:"linear_num_key_heads"`
	LinearNumValueHeads   *int            `json:"linear_num_value_heads"`
	LinearKeyHeadDim      *int            `json:"linear_key_head_dim"`
	LinearValueHeadDim    *int            `json:"linear_value_head_dim"`
	LinearConvKernelDim   *int            `json:"linear_conv_kernel_dim"`
	RopeParameters        *rawRope        `json:"rope_parameters"`
	RopeScaling           *rawRope        `json:"rope_scaling"`
	RopeTheta             *float64        `json:"rope_theta"`
	PartialRotaryFactor   *float64        `json:"partial_rotary_factor"`
	RMSNormEps            *float64        `json:"rms_norm_eps"`
	HiddenAct             *string         `json:"hidden_act"`
	TieWordEmbeddings     *bool           `json:"tie_word_embeddings"`
	MaxPositionEmbeddings *int            `json:"max_position_embeddings"`
	AttentionBias         *bool           `json:"attention_bias"`
	EOSTokenID            json.RawMessage `json:"eos_token_id"`
	TorchDType            *string         `json:"torch_dtype"`
	DType                 *string         `json:"dtype"`
}

type rawRope struct {
	RopeType            *string  `json:"rope_type"`
	Type                *string  `json:"type"` // older spelling of rope_type
	RopeTheta           *float64 `json:"rope_theta"`
	PartialRotaryFactor *float64 `json:"partial_rotary_factor"`
	MropeSection        []int    `json:"mrope_section"`
	MropeInterleaved    *bool    `json:"mrope_interleaved"`
}

// LoadConfig reads and validates dir/config.json.
func LoadConfig(dir string) (*Config, error) {
	path := filepath.Join(dir, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("%s: missing (a Hugging Face checkpoint directory needs config.json)", path)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig parses config.json bytes. Errors name the offending field.
func ParseConfig(data []byte) (*Config, error) {
	var top rawConfig
	if err := decodeJSON(data, &top); err != nil {
		return nil, err
	}
	if top.ModelType == nil {
		return nil, fmt.Errorf("field model_type: missing (supported: %s)", strings.Join(supportedModelTypes, ", "))
	}
	cfg := &Config{ModelType: *top.ModelType, Architectures: top.Architectures}
	text := &top
	prefix := ""
	switch *top.ModelType {
	case "qwen3_5_text":
	case "qwen3_5":
		if len(top.TextConfig) == 0 || string(top.TextConfig) == "null" {
			return nil, fmt.Errorf("field text_config: missing (model_type qwen3_5 keeps the text decoder's fields there)")
		}
		text = new(rawConfig)
		if err := decodeJSON(top.TextConfig, text); err != nil {
			return nil, fmt.Errorf("field text_config: %w", err)
		}
		if text.ModelType != nil && *text.ModelType != "qwen3_5_text" {
			return nil, fmt.Errorf("field text_config.model_type: %q is not supported (want qwen3_5_text)", *text.ModelType)
		}
		cfg.Nested = true
		prefix = "text_config."
	case "qwen3_5_moe", "qwen3_5_moe_text":
		return nil, fmt.Errorf("field model_type: %q is a mixture-of-experts Qwen3.5, which qconv does not export; it supports the dense Qwen3.5 models (model_type %s)", *top.ModelType, strings.Join(supportedModelTypes, " or "))
	default:
		return nil, fmt.Errorf("field model_type: %q is not supported (supported: the dense Qwen3.5 models, %s)", *top.ModelType, strings.Join(supportedModelTypes, ", "))
	}

	var errs []string
	req := func(name string, v *int, dst *int) {
		switch {
		case v == nil:
			errs = append(errs, fmt.Sprintf("field %s%s: missing", prefix, name))
		case *v <= 0:
			errs = append(errs, fmt.Sprintf("field %s%s: must be positive, got %d", prefix, name, *v))
		default:
			*dst = *v
		}
	}
	req("vocab_size", text.VocabSize, &cfg.VocabSize)
	req("hidden_size", text.HiddenSize, &cfg.HiddenSize)
	req("intermediate_size", text.IntermediateSize, &cfg.IntermediateSize)
	req("num_hidden_layers", text.NumHiddenLayers, &cfg.NumLayers)
	req("num_attention_heads", text.NumAttentionHeads, &cfg.NumHeads)
	req("num_key_value_heads", text.NumKeyValueHeads, &cfg.NumKVHeads)
	req("head_dim", text.HeadDim, &cfg.HeadDim)
	req("linear_num_key_heads", text.LinearNumKeyHeads, &cfg.LinearNumKeyHeads)
	req("linear_num_value_heads", text.LinearNumValueHeads, &cfg.LinearNumValueHeads)
	req("linear_key_head_dim", text.LinearKeyHeadDim, &cfg.LinearKeyHeadDim)
	req("linear_value_head_dim", text.LinearValueHeadDim, &cfg.LinearValueHeadDim)
	cfg.ConvKernel = 4
	if text.LinearConvKernelDim != nil {
		req("linear_conv_kernel_dim", text.LinearConvKernelDim, &cfg.ConvKernel)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(errs, "; "))
	}

	if text.HiddenAct != nil && *text.HiddenAct != "silu" {
		return nil, fmt.Errorf("field %shidden_act: %q is not supported (Qwen3.5 uses silu)", prefix, *text.HiddenAct)
	}
	if text.AttentionBias != nil && *text.AttentionBias {
		return nil, fmt.Errorf("field %sattention_bias: true is not supported (Qwen3.5 has no biases)", prefix)
	}

	// Layer types: explicit list, else every interval-th layer is full attention.
	if text.LayerTypes != nil {
		if len(text.LayerTypes) != cfg.NumLayers {
			return nil, fmt.Errorf("field %slayer_types: %d entries, but num_hidden_layers is %d", prefix, len(text.LayerTypes), cfg.NumLayers)
		}
		for i, s := range text.LayerTypes {
			lt := LayerType(s)
			if lt != LinearAttention && lt != FullAttention {
				return nil, fmt.Errorf("field %slayer_types[%d]: %q is not linear_attention or full_attention", prefix, i, s)
			}
			cfg.LayerTypes = append(cfg.LayerTypes, lt)
		}
	} else {
		interval := 4
		if text.FullAttentionInterval != nil {
			interval = *text.FullAttentionInterval
			if interval <= 0 {
				return nil, fmt.Errorf("field %sfull_attention_interval: must be positive, got %d", prefix, interval)
			}
		}
		for i := 0; i < cfg.NumLayers; i++ {
			if (i+1)%interval == 0 {
				cfg.LayerTypes = append(cfg.LayerTypes, FullAttention)
			} else {
				cfg.LayerTypes = append(cfg.LayerTypes, LinearAttention)
			}
		}
	}

	if err := parseRope(cfg, text, prefix); err != nil {
		return nil, err
	}

	cfg.RMSNormEps = 1e-6
	if text.RMSNormEps != nil {
		if !(*text.RMSNormEps > 0) || math.IsInf(*text.RMSNormEps, 0) {
			return nil, fmt.Errorf("field %srms_norm_eps: must be positive, got %g", prefix, *text.RMSNormEps)
		}
		cfg.RMSNormEps = *text.RMSNormEps
	}

	// tie_word_embeddings may sit at either level; the official checkpoints set both.
	tie, err := tieWordEmbeddings(&top, text, cfg.Nested)
	if err != nil {
		return nil, err
	}
	cfg.TieWordEmbeddings = tie

	if text.MaxPositionEmbeddings != nil {
		cfg.MaxPositionEmbeddings = *text.MaxPositionEmbeddings
	}
	for _, raw := range []json.RawMessage{text.EOSTokenID, top.EOSTokenID} {
		if ids, ok := parseIDs(raw); ok {
			cfg.EOSTokenIDs = ids
			break
		}
	}
	for _, s := range []*string{text.TorchDType, text.DType, top.TorchDType, top.DType} {
		if s != nil {
			cfg.TorchDType = *s
			break
		}
	}
	return cfg, cfg.validate(prefix)
}

func parseRope(cfg *Config, text *rawConfig, prefix string) error {
	rope := text.RopeParameters
	field := prefix + "rope_parameters"
	if rope == nil && text.RopeScaling != nil {
		rope, field = text.RopeScaling, prefix+"rope_scaling"
	}
	if rope != nil {
		kind := rope.RopeType
		if kind == nil {
			kind = rope.Type
		}
		// MRoPE with equal T/H/W positions (text) is plain RoPE; other scalings change the math.
		if kind != nil && *kind != "default" && *kind != "mrope" {
			return fmt.Errorf("field %s.rope_type: %q is not supported (only default RoPE)", field, *kind)
		}
		if rope.RopeTheta != nil {
			cfg.RopeTheta = *rope.RopeTheta
		}
		if rope.PartialRotaryFactor != nil {
			cfg.PartialRotaryFactor = *rope.PartialRotaryFactor
		}
		cfg.MropeSection = rope.MropeSection
		if rope.MropeInterleaved != nil {
			cfg.MropeInterleaved = *rope.MropeInterleaved
		}
	}
	if cfg.RopeTheta == 0 && text.RopeTheta != nil {
		cfg.RopeTheta = *text.RopeTheta
	}
	if cfg.PartialRotaryFactor == 0 && text.PartialRotaryFactor != nil {
		cfg.PartialRotaryFactor = *text.PartialRotaryFactor
	}
	if cfg.RopeTheta == 0 {
		return fmt.Errorf("field %srope_parameters.rope_theta: missing (nor a legacy %srope_theta)", prefix, prefix)
	}
	if !(cfg.RopeTheta > 1) || math.IsInf(cfg.RopeTheta, 0) {
		return fmt.Errorf("field %srope_theta: must be > 1, got %g", prefix, cfg.RopeTheta)
	}
	if cfg.PartialRotaryFactor == 0 {
		// transformers' Qwen3.5 config adds 0.25 for backward compatibility when absent.
		cfg.PartialRotaryFactor = 0.25
	}
	if !(cfg.PartialRotaryFactor > 0 && cfg.PartialRotaryFactor <= 1) {
		return fmt.Errorf("field %spartial_rotary_factor: must be in (0, 1], got %g", prefix, cfg.PartialRotaryFactor)
	}
	return nil
}

func tieWordEmbeddings(top, text *rawConfig, nested bool) (bool, error) {
	if !nested {
		if text.TieWordEmbeddings != nil {
			return *text.TieWordEmbeddings, nil
		}
		return false, nil
	}
	switch {
	case top.TieWordEmbeddings != nil && text.TieWordEmbeddings != nil:
		if *top.TieWordEmbeddings != *text.TieWordEmbeddings {
			return false, fmt.Errorf("fields tie_word_embeddings (%v) and text_config.tie_word_embeddings (%v) disagree", *top.TieWordEmbeddings, *text.TieWordEmbeddings)
		}
		return *top.TieWordEmbeddings, nil
	case top.TieWordEmbeddings != nil:
		return *top.TieWordEmbeddings, nil
	case text.TieWordEmbeddings != nil:
		return *text.TieWordEmbeddings, nil
	}
	return false, nil
}

func (c *Config) validate(prefix string) error {
	if c.NumHeads%c.NumKVHeads != 0 {
		return fmt.Errorf("field %snum_attention_heads: %d is not a multiple of num_key_value_heads %d", prefix, c.NumHeads, c.NumKVHeads)
	}
	if c.LinearNumValueHeads%c.LinearNumKeyHeads != 0 {
		return fmt.Errorf("field %slinear_num_value_heads: %d is not a multiple of linear_num_key_heads %d", prefix, c.LinearNumValueHeads, c.LinearNumKeyHeads)
	}
	r := c.RotaryDim()
	if r <= 0 || r%2 != 0 || float64(r) != float64(c.HeadDim)*c.PartialRotaryFactor {
		return fmt.Errorf("field %spartial_rotary_factor: head_dim %d x %g = %g is not a positive even integer rotary dim", prefix, c.HeadDim, c.PartialRotaryFactor, float64(c.HeadDim)*c.PartialRotaryFactor)
	}
	if len(c.MropeSection) > 0 {
		sum := 0
		for _, s := range c.MropeSection {
			if s < 0 {
				return fmt.Errorf("field %srope_parameters.mrope_section: negative entry %d", prefix, s)
			}
			sum += s
		}
		if sum != r/2 {
			return fmt.Errorf("field %srope_parameters.mrope_section: sums to %d, want rotary_dim/2 = %d", prefix, sum, r/2)
		}
	}
	if c.NumLayersOf(FullAttention) == 0 {
		// The KV-cache states and the shape-derived write index need at least one full layer.
		return fmt.Errorf("field %slayer_types: no full_attention layer", prefix)
	}
	return nil
}

// decodeJSON decodes one JSON object, rejecting trailing data, and reports type errors with the field.
func decodeJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te):
			return fmt.Errorf("field %s: JSON %s where %s is expected", te.Field, te.Value, te.Type)
		case errors.As(err, &se):
			return fmt.Errorf("malformed JSON at byte %d: %v", se.Offset, err)
		}
		return fmt.Errorf("malformed JSON: %w", err)
	}
	if dec.More() {
		return fmt.Errorf("malformed JSON: trailing data after the top-level object")
	}
	return nil
}

// parseIDs accepts a JSON int or list of ints (eos_token_id has both forms).
func parseIDs(raw json.RawMessage) ([]int, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, false
	}
	var one int
	if json.Unmarshal(raw, &one) == nil {
		return []int{one}, true
	}
	var many []int
	if json.Unmarshal(raw, &many) == nil && len(many) > 0 {
		sort.Ints(many)
		return many, true
	}
	return nil, false
}
