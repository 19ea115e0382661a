// Package synth writes deterministic random-weight Qwen3.5 checkpoints with the published
// dimensions of the dense Qwen3.5 family (or scaled-down variants of them), in either save
// layout: the multimodal qwen3_5 one of the official checkpoints (nested text_config,
// model.language_model.* names, model.visual.* and mtp.* tensors a text export skips) or the
// text-only qwen3_5_text one (flat config, model.* names). testdata/synth is its command line;
// tests use it for layouts and sizes no committed fixture has.
//
// The weights are uniform noise of plausible scale: outputs are meaningless, only sizes,
// layouts and speeds are real. Every tensor's values depend only on its name and the seed, so
// the output is byte-identical across runs and shard sizes.
package synth

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"path/filepath"
	"sort"
)

// Dims are a dense Qwen3.5 text decoder's dimensions.
type Dims struct {
	Vocab, Hidden, Intermediate, Layers int
	Heads, KVHeads, HeadDim             int // gated full attention
	KeyHeads, ValueHeads                int // gated DeltaNet
	KeyDim, ValueDim, ConvKernel        int
	Tied                                bool // tie_word_embeddings as published
	RopeTheta                           float64
	// VisionHidden is the width of the token vision tower written in the multimodal layout.
	VisionHidden int
}

// Sizes are the published dense Qwen3.5 configurations (sources in testdata/FIXTURES.md).
var Sizes = map[string]Dims{
	"0.8b": {Vocab: 248320, Hidden: 1024, Intermediate: 3584, Layers: 24, Heads: 8, KVHeads: 2, HeadDim: 256,
		KeyHeads: 16, ValueHeads: 16, KeyDim: 128, ValueDim: 128, ConvKernel: 4, Tied: true, RopeTheta: 1e7, VisionHidden: 768},
	"2b": {Vocab: 248320, Hidden: 2048, Intermediate: 6144, Layers: 24, Heads: 8, KVHeads: 2, HeadDim: 256,
		KeyHeads: 16, ValueHeads: 16, KeyDim: 128, ValueDim: 128, ConvKernel: 4, Tied: true, RopeTheta: 1e7, VisionHidden: 1024},
	"4b": {Vocab: 248320, Hidden: 2560, Intermediate: 9216, Layers: 32, Heads: 16, KVHeads: 4, HeadDim: 256,
		KeyHeads: 16, ValueHeads: 32, KeyDim: 128, ValueDim: 128, ConvKernel: 4, Tied: true, RopeTheta: 1e7, VisionHidden: 1024},
	"9b": {Vocab: 248320, Hidden: 4096, Intermediate: 12288, Layers: 32, Heads: 16, KVHeads: 4, HeadDim: 256,
		KeyHeads: 16, ValueHeads: 32, KeyDim: 128, ValueDim: 128, ConvKernel: 4, Tied: false, RopeTheta: 1e7, VisionHidden: 1152},
	"27b": {Vocab: 248320, Hidden: 5120, Intermediate: 17408, Layers: 64, Heads: 24, KVHeads: 4, HeadDim: 256,
		KeyHeads: 16, ValueHeads: 48, KeyDim: 128, ValueDim: 128, ConvKernel: 4, Tied: false, RopeTheta: 1e7, VisionHidden: 1152},
}

// SizeNames lists Sizes' keys, smallest first.
var SizeNames = []string{"0.8b", "2b", "4b", "9b", "27b"}

// Scaled is d with every width divided by div (head counts, tying and the layer pattern kept),
// layers decoder layers and a vocab-token vocabulary: a variant small enough for tests with the
// same head grouping and ratios. div must divide the widths (1, 2, ... 32 do for every size).
func (d Dims) Scaled(div, layers, vocab int) Dims {
	s := d
	s.Hidden, s.Intermediate = d.Hidden/div, d.Intermediate/div
	s.HeadDim, s.KeyDim, s.ValueDim = d.HeadDim/div, d.KeyDim/div, d.ValueDim/div
	s.VisionHidden = max(d.VisionHidden/div, 8)
	s.Layers, s.Vocab = layers, vocab
	return s
}

// Layouts a checkpoint is saved in.
const (
	Multimodal = "qwen3_5"      // Qwen3_5ForConditionalGeneration, model.language_model.*
	TextOnly   = "qwen3_5_text" // Qwen3_5ForCausalLM, model.*
)

// Options say what to write.
type Options struct {
	Dims
	Layout     string // Multimodal (default) or TextOnly
	ShardBytes int64  // start a new shard past this many bytes (0: one file, no index)
	Seed       uint64
	DType      string // BF16 (default) or F32 for the float tensors
	// Poison, when set, writes NaN at one element of one tensor (the checkpoint name).
	Poison *Poison
}

// Poison names an element: tensor, row, column (of the tensor viewed as [rows, cols]).
type Poison struct {
	Tensor   string
	Row, Col int
}

type tensor struct {
	name  string
	dtype string // BF16 or F32
	shape []int
	fill  fill
}

// fill says how a tensor's values are drawn: uniform in [lo, hi], or log of uniform (A_log).
type fill struct {
	lo, hi float32
	log    bool
}

func (t tensor) elems() int {
	n := 1
	for _, d := range t.shape {
		n *= d
	}
	return n
}

func (t tensor) bytes() int64 {
	size := 2
	if t.dtype == "F32" {
		size = 4
	}
	return int64(t.elems() * size)
}

func sym(a float32) fill { return fill{lo: -a, hi: a} }

func fullAttention(i int) bool { return (i+1)%4 == 0 }

// plan lists every tensor in checkpoint order.
func plan(o Options) []tensor {
	d := o.Dims
	p := "model.language_model."
	if o.Layout == TextOnly {
		p = "model."
	}
	ft := o.DType
	lin := sym(0.035) // std 0.02 uniform
	convDim := 2*d.KeyHeads*d.KeyDim + d.ValueHeads*d.ValueDim
	var ts []tensor
	add := func(name, dtype string, f fill, shape ...int) {
		ts = append(ts, tensor{name, dtype, shape, f})
	}
	add(p+"embed_tokens.weight", ft, lin, d.Vocab, d.Hidden)
	for i := 0; i < d.Layers; i++ {
		l := fmt.Sprintf("%slayers.%d.", p, i)
		add(l+"input_layernorm.weight", ft, sym(0.1), d.Hidden)
		if fullAttention(i) {
			add(l+"self_attn.q_proj.weight", ft, lin, 2*d.Heads*d.HeadDim, d.Hidden)
			add(l+"self_attn.k_proj.weight", ft, lin, d.KVHeads*d.HeadDim, d.Hidden)
			add(l+"self_attn.v_proj.weight", ft, lin, d.KVHeads*d.HeadDim, d.Hidden)
			add(l+"self_attn.o_proj.weight", ft, lin, d.Hidden, d.Heads*d.HeadDim)
			add(l+"self_attn.q_norm.weight", ft, sym(0.1), d.HeadDim)
			add(l+"self_attn.k_norm.weight", ft, sym(0.1), d.HeadDim)
		} else {
			add(l+"linear_attn.in_proj_qkv.weight", ft, lin, convDim, d.Hidden)
			add(l+"linear_attn.in_proj_z.weight", ft, lin, d.ValueHeads*d.ValueDim, d.Hidden)
			add(l+"linear_attn.in_proj_b.weight", ft, lin, d.ValueHeads, d.Hidden)
			add(l+"linear_attn.in_proj_a.weight", ft, lin, d.ValueHeads, d.Hidden)
			add(l+"linear_attn.conv1d.weight", ft, sym(0.3), convDim, 1, d.ConvKernel)
			add(l+"linear_attn.dt_bias", ft, fill{lo: 0, hi: 1}, d.ValueHeads)
			add(l+"linear_attn.A_log", "F32", fill{lo: 1, hi: 16, log: true}, d.ValueHeads)
			add(l+"linear_attn.norm.weight", ft, fill{lo: 0.9, hi: 1.1}, d.ValueDim)
			add(l+"linear_attn.out_proj.weight", ft, lin, d.Hidden, d.ValueHeads*d.ValueDim)
		}
		add(l+"post_attention_layernorm.weight", ft, sym(0.1), d.Hidden)
		add(l+"mlp.gate_proj.weight", ft, lin, d.Intermediate, d.Hidden)
		add(l+"mlp.up_proj.weight", ft, lin, d.Intermediate, d.Hidden)
		add(l+"mlp.down_proj.weight", ft, lin, d.Hidden, d.Intermediate)
	}
	add(p+"norm.weight", ft, sym(0.1), d.Hidden)
	if !d.Tied {
		add("lm_head.weight", ft, lin, d.Vocab, d.Hidden)
	}
	if o.Layout != TextOnly {
		// A token vision tower and MTP head: present in official checkpoints, skipped by a text export.
		vh := d.VisionHidden
		add("model.visual.patch_embed.proj.weight", ft, lin, vh, 3, 2, 16, 16)
		add("model.visual.blocks.0.attn.qkv.weight", ft, lin, 3*vh, vh)
		add("model.visual.merger.linear_fc2.weight", ft, lin, d.Hidden, 4*vh)
		add("mtp.fc.weight", ft, lin, d.Hidden, 2*d.Hidden)
		add("mtp.norm.weight", ft, sym(0.1), d.Hidden)
		add("mtp.layers.0.mlp.up_proj.weight", ft, lin, d.Intermediate, d.Hidden)
	}
	return ts
}

// Bytes is the size of the tensors o writes.
func Bytes(o Options) int64 {
	o = o.withDefaults()
	var n int64
	for _, t := range plan(o) {
		n += t.bytes()
	}
	return n
}

func (o Options) withDefaults() Options {
	if o.Layout == "" {
		o.Layout = Multimodal
	}
	if o.DType == "" {
		o.DType = "BF16"
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.RopeTheta == 0 {
		o.RopeTheta = 1e7
	}
	return o
}

// Write writes the checkpoint into dir (created; it must not already hold one).
func Write(dir string, o Options) error {
	o = o.withDefaults()
	if o.Layout != Multimodal && o.Layout != TextOnly {
		return fmt.Errorf("layout %q: want %s or %s", o.Layout, Multimodal, TextOnly)
	}
	if o.Vocab < minVocab {
		return fmt.Errorf("vocab %d: the synthetic tokenizer needs at least %d tokens", o.Vocab, minVocab)
	}
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err == nil {
		return fmt.Errorf("%s already holds a checkpoint; choose an empty directory", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ts := plan(o)
	var shards [][]tensor
	var cur []tensor
	var size, total int64
	for _, t := range ts {
		if o.ShardBytes > 0 && len(cur) > 0 && size+t.bytes() > o.ShardBytes {
			shards = append(shards, cur)
			cur, size = nil, 0
		}
		cur = append(cur, t)
		size += t.bytes()
		total += t.bytes()
	}
	shards = append(shards, cur)

	buf := make([]byte, 1<<20)
	if o.ShardBytes <= 0 {
		if err := writeShard(filepath.Join(dir, "model.safetensors"), shards[0], o, buf); err != nil {
			return err
		}
	} else {
		weightMap := map[string]string{}
		for i, sh := range shards {
			name := fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(shards))
			for _, t := range sh {
				weightMap[t.name] = name
			}
			if err := writeShard(filepath.Join(dir, name), sh, o, buf); err != nil {
				return err
			}
		}
		index := map[string]any{"metadata": map[string]any{"total_size": total}, "weight_map": weightMap}
		if err := writeJSON(filepath.Join(dir, "model.safetensors.index.json"), index); err != nil {
			return err
		}
	}
	if err := writeJSON(filepath.Join(dir, "config.json"), config(o)); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(dir, "generation_config.json"), map[string]any{"eos_token_id": []int{specialBase, specialBase + 2}, "do_sample": false}); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(dir, "tokenizer_config.json"), map[string]any{"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "tokenizer_class": "TokenizersBackend"}); err != nil {
		return err
	}
	return writeJSON(filepath.Join(dir, "tokenizer.json"), tokenizerJSON())
}

func writeShard(path string, ts []tensor, o Options, buf []byte) error {
	header := map[string]any{"__metadata__": map[string]string{"format": "pt"}}
	var off int64
	for _, t := range ts {
		header[t.name] = map[string]any{"dtype": t.dtype, "shape": t.shape, "data_offsets": []int64{off, off + t.bytes()}}
		off += t.bytes()
	}
	h, err := json.Marshal(header)
	if err != nil {
		return err
	}
	for len(h)%8 != 0 { // keep the data section 8-byte aligned, as the reference writer does
		h = append(h, ' ')
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 4<<20)
	binary.Write(w, binary.LittleEndian, uint64(len(h)))
	w.Write(h)
	for _, t := range ts {
		if err := writeValues(w, t, o, buf); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeValues streams a tensor's values in chunks; the generator is seeded by name.
func writeValues(w *bufio.Writer, t tensor, o Options, buf []byte) error {
	seed := o.Seed
	poison := -1
	if p := o.Poison; p != nil && p.Tensor == t.name {
		cols := t.elems() / t.shape[0]
		poison = p.Row*cols + p.Col
	}
	idx := 0
	h := fnv.New64a()
	h.Write([]byte(t.name))
	rng := splitmix{state: h.Sum64() ^ seed*0x9e3779b97f4a7c15}
	n := t.elems()
	width := 2
	if t.dtype == "F32" {
		width = 4
	}
	span := t.fill.hi - t.fill.lo
	for n > 0 {
		k := min(n, len(buf)/width)
		for i := 0; i < k; i++ {
			u := float32(rng.next()>>40) / (1 << 24) // uniform [0, 1)
			v := t.fill.lo + span*u
			if t.fill.log {
				v = float32(math.Log(float64(v)))
			}
			if idx == poison {
				v = float32(math.NaN())
			}
			idx++
			bits := math.Float32bits(v)
			if width == 2 {
				binary.LittleEndian.PutUint16(buf[2*i:], uint16(bits>>16)) // bf16 by truncation
			} else {
				binary.LittleEndian.PutUint32(buf[4*i:], bits)
			}
		}
		if _, err := w.Write(buf[:k*width]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// splitmix is SplitMix64: tiny, fast, and stable across Go versions (math/rand's streams are not
// a compatibility promise for our purposes).
type splitmix struct{ state uint64 }

func (s *splitmix) next() uint64 {
	s.state += 0x9e3779b97f4a7c15
	z := s.state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func config(o Options) map[string]any {
	d := o.Dims
	var layerTypes []string
	for i := 0; i < d.Layers; i++ {
		if fullAttention(i) {
			layerTypes = append(layerTypes, "full_attention")
		} else {
			layerTypes = append(layerTypes, "linear_attention")
		}
	}
	// mrope_section splits rotary_dim/2 (head_dim/4 at partial factor 0.25) 11:11:10 as the
	// published configs do at head_dim 256.
	half := d.HeadDim / 8
	t := half * 11 / 32
	mrope := []int{t, t, half - 2*t}
	dtype := map[string]string{"BF16": "bfloat16", "F32": "float32"}[o.DType]
	text := map[string]any{
		"model_type": "qwen3_5_text", "architectures": []string{"Qwen3_5ForCausalLM"},
		"vocab_size": d.Vocab, "hidden_size": d.Hidden, "intermediate_size": d.Intermediate,
		"num_hidden_layers": d.Layers, "layer_types": layerTypes,
		"num_attention_heads": d.Heads, "num_key_value_heads": d.KVHeads, "head_dim": d.HeadDim,
		"linear_num_key_heads": d.KeyHeads, "linear_num_value_heads": d.ValueHeads,
		"linear_key_head_dim": d.KeyDim, "linear_value_head_dim": d.ValueDim, "linear_conv_kernel_dim": d.ConvKernel,
		"rope_parameters": map[string]any{"rope_type": "default", "rope_theta": d.RopeTheta, "partial_rotary_factor": 0.25,
			"mrope_section": mrope, "mrope_interleaved": true},
		"rms_norm_eps": 1e-6, "hidden_act": "silu", "tie_word_embeddings": d.Tied, "attention_bias": false,
		"max_position_embeddings": 262144, "full_attention_interval": 4, "attn_output_gate": true,
		"mamba_ssm_dtype": "float32", "mtp_num_hidden_layers": 1, "dtype": dtype,
		"eos_token_id": specialBase,
	}
	if o.Layout == TextOnly {
		text["transformers_version"] = "5.17.0"
		text["_qconv_synthetic"] = "random weights written by qconv's internal/synth; outputs are meaningless"
		return text
	}
	return map[string]any{
		"model_type": "qwen3_5", "architectures": []string{"Qwen3_5ForConditionalGeneration"},
		"text_config": text, "tie_word_embeddings": d.Tied,
		"image_token_id": 248056, "video_token_id": 248057, "vision_start_token_id": 248053, "vision_end_token_id": 248054,
		"vision_config": map[string]any{"model_type": "qwen3_5_vision", "depth": 12, "hidden_size": d.VisionHidden, "num_heads": 12, "out_hidden_size": d.Hidden},
		"dtype":         dtype, "transformers_version": "5.17.0",
		"_qconv_synthetic": "random weights written by qconv's internal/synth; outputs are meaningless",
	}
}

// minVocab is the synthetic tokenizer's size (bytes, specials and merges).
const minVocab = 512

// specialBase is where the synthetic tokenizer's special tokens sit (after the 256 byte tokens).
const specialBase = 256

// tokenizerJSON is a byte-level BPE tokenizer with the structure of Qwen's (NFC, a Split
// pre-tokenizer with Qwen's lookahead regex, ByteLevel without its own regex) but only byte
// tokens and a handful of merges: enough to encode any text, small enough to generate.
func tokenizerJSON() map[string]any {
	byteChar := byteLevelAlphabet()
	vocabMap := map[string]int{}
	for b := 0; b < 256; b++ {
		vocabMap[string(byteChar[b])] = b
	}
	specials := []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"}
	var added []map[string]any
	for i, s := range specials {
		vocabMap[s] = specialBase + i
		added = append(added, map[string]any{"id": specialBase + i, "content": s, "single_word": false,
			"lstrip": false, "rstrip": false, "normalized": false, "special": true})
	}
	// A few merges of common English pairs so that BPE merging is exercised.
	var merges [][2]string
	next := specialBase + len(specials)
	// Each merge's halves must already be tokens (bytes or earlier merges).
	for _, pair := range [][2]string{{"t", "h"}, {"th", "e"}, {"Ġ", "t"}, {"Ġt", "h"}, {"Ġth", "e"}, {"i", "n"}, {"e", "r"}, {"a", "n"}, {"o", "n"}} {
		tok := pair[0] + pair[1]
		if _, ok := vocabMap[tok]; ok {
			continue
		}
		merges = append(merges, pair)
		vocabMap[tok] = next
		next++
	}
	keys := make([]string, 0, len(vocabMap))
	for k := range vocabMap {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return map[string]any{
		"version": "1.0", "truncation": nil, "padding": nil, "added_tokens": added,
		"normalizer": map[string]any{"type": "NFC"},
		"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`},
				"behavior": "Isolated", "invert": false},
			map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
		}},
		"post_processor": map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
		"decoder":        map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": "",
			"end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
			"vocab": vocabMap, "merges": merges},
	}
}

// byteLevelAlphabet is GPT-2's reversible byte -> printable rune mapping.
func byteLevelAlphabet() [256]rune {
	var m [256]rune
	n := 0
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			m[b] = rune(b)
		} else {
			m[b] = rune(256 + n)
			n++
		}
	}
	return m
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
