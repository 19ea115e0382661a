// Command synth writes a deterministic random-weight Qwen3.5 checkpoint with the real 0.8B
// dimensions, in the official multimodal layout (nested config, model.language_model.* names,
// a few model.visual.* and mtp.* tensors a text export must skip), sharded with an index, so
// benchmarks and scale checks can run where the real weights cannot be downloaded.
//
//	go run ./testdata/synth -o /tmp/qwen35-synth
//
// The weights are uniform noise of plausible scale: outputs are meaningless, only sizes, layouts
// and speeds are real. Every tensor's values depend only on its name and -seed, so the output is
// byte-identical across runs and shard sizes. Never commit its output.
package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// Qwen3.5-0.8B text dimensions (docs/model-math.md#1-configuration).
const (
	vocab        = 248320
	hidden       = 1024
	intermediate = 3584
	layers       = 24
	heads        = 8
	kvHeads      = 2
	headDim      = 256
	keyHeads     = 16
	valueHeads   = 16
	keyDim       = 128
	valueDim     = 128
	convKernel   = 4
	convDim      = 2*keyHeads*keyDim + valueHeads*valueDim
)

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

// plan lists every tensor in checkpoint order.
func plan(untied bool) []tensor {
	const p = "model.language_model."
	lin := sym(0.035) // std 0.02 uniform
	var ts []tensor
	add := func(name, dtype string, f fill, shape ...int) {
		ts = append(ts, tensor{name, dtype, shape, f})
	}
	add(p+"embed_tokens.weight", "BF16", lin, vocab, hidden)
	for i := 0; i < layers; i++ {
		l := fmt.Sprintf("%slayers.%d.", p, i)
		add(l+"input_layernorm.weight", "BF16", sym(0.1), hidden)
		if (i+1)%4 == 0 {
			add(l+"self_attn.q_proj.weight", "BF16", lin, 2*heads*headDim, hidden)
			add(l+"self_attn.k_proj.weight", "BF16", lin, kvHeads*headDim, hidden)
			add(l+"self_attn.v_proj.weight", "BF16", lin, kvHeads*headDim, hidden)
			add(l+"self_attn.o_proj.weight", "BF16", lin, hidden, heads*headDim)
			add(l+"self_attn.q_norm.weight", "BF16", sym(0.1), headDim)
			add(l+"self_attn.k_norm.weight", "BF16", sym(0.1), headDim)
		} else {
			add(l+"linear_attn.in_proj_qkv.weight", "BF16", lin, convDim, hidden)
			add(l+"linear_attn.in_proj_z.weight", "BF16", lin, valueHeads*valueDim, hidden)
			add(l+"linear_attn.in_proj_b.weight", "BF16", lin, valueHeads, hidden)
			add(l+"linear_attn.in_proj_a.weight", "BF16", lin, valueHeads, hidden)
			add(l+"linear_attn.conv1d.weight", "BF16", sym(0.3), convDim, 1, convKernel)
			add(l+"linear_attn.dt_bias", "BF16", fill{lo: 0, hi: 1}, valueHeads)
			add(l+"linear_attn.A_log", "F32", fill{lo: 1, hi: 16, log: true}, valueHeads)
			add(l+"linear_attn.norm.weight", "BF16", fill{lo: 0.9, hi: 1.1}, valueDim)
			add(l+"linear_attn.out_proj.weight", "BF16", lin, hidden, valueHeads*valueDim)
		}
		add(l+"post_attention_layernorm.weight", "BF16", sym(0.1), hidden)
		add(l+"mlp.gate_proj.weight", "BF16", lin, intermediate, hidden)
		add(l+"mlp.up_proj.weight", "BF16", lin, intermediate, hidden)
		add(l+"mlp.down_proj.weight", "BF16", lin, hidden, intermediate)
	}
	add(p+"norm.weight", "BF16", sym(0.1), hidden)
	if untied {
		add("lm_head.weight", "BF16", lin, vocab, hidden)
	}
	// A token vision tower and MTP head: present in official checkpoints, skipped by a text export.
	add("model.visual.patch_embed.proj.weight", "BF16", lin, 768, 3, 2, 16, 16)
	add("model.visual.blocks.0.attn.qkv.weight", "BF16", lin, 3*768, 768)
	add("model.visual.merger.linear_fc2.weight", "BF16", lin, hidden, 4*768)
	add("mtp.fc.weight", "BF16", lin, hidden, 2*hidden)
	add("mtp.norm.weight", "BF16", sym(0.1), hidden)
	add("mtp.layers.0.mlp.up_proj.weight", "BF16", lin, intermediate, hidden)
	return ts
}

func main() {
	out := flag.String("o", "", "output directory (created; must not already hold a checkpoint)")
	shardBytes := flag.Int64("shard-bytes", 1e9, "start a new shard once a shard holds this many bytes")
	seed := flag.Uint64("seed", 1, "random seed")
	untied := flag.Bool("untied", false, "write an untied lm_head (the official 0.8B ties it)")
	flag.Parse()
	if *out == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: synth -o DIR [-shard-bytes N] [-seed N] [-untied]")
		os.Exit(2)
	}
	start := time.Now()
	if err := write(*out, *shardBytes, *seed, *untied); err != nil {
		fmt.Fprintln(os.Stderr, "synth:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "synth: wrote %s in %.1fs\n", *out, time.Since(start).Seconds())
}

func write(dir string, shardBytes int64, seed uint64, untied bool) error {
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err == nil {
		return fmt.Errorf("%s already holds a checkpoint; choose an empty directory", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ts := plan(untied)
	var shards [][]tensor
	var cur []tensor
	var size, total int64
	for _, t := range ts {
		if len(cur) > 0 && size+t.bytes() > shardBytes {
			shards = append(shards, cur)
			cur, size = nil, 0
		}
		cur = append(cur, t)
		size += t.bytes()
		total += t.bytes()
	}
	shards = append(shards, cur)

	weightMap := map[string]string{}
	buf := make([]byte, 1<<20)
	for i, sh := range shards {
		name := fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(shards))
		for _, t := range sh {
			weightMap[t.name] = name
		}
		if err := writeShard(filepath.Join(dir, name), sh, seed, buf); err != nil {
			return err
		}
	}
	index := map[string]any{"metadata": map[string]any{"total_size": total}, "weight_map": weightMap}
	if err := writeJSON(filepath.Join(dir, "model.safetensors.index.json"), index); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(dir, "config.json"), config(untied)); err != nil {
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

func writeShard(path string, ts []tensor, seed uint64, buf []byte) error {
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
		if err := writeValues(w, t, seed, buf); err != nil {
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
func writeValues(w *bufio.Writer, t tensor, seed uint64, buf []byte) error {
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

func config(untied bool) map[string]any {
	var layerTypes []string
	for i := 0; i < layers; i++ {
		if (i+1)%4 == 0 {
			layerTypes = append(layerTypes, "full_attention")
		} else {
			layerTypes = append(layerTypes, "linear_attention")
		}
	}
	text := map[string]any{
		"model_type": "qwen3_5_text", "architectures": []string{"Qwen3_5ForCausalLM"},
		"vocab_size": vocab, "hidden_size": hidden, "intermediate_size": intermediate,
		"num_hidden_layers": layers, "layer_types": layerTypes,
		"num_attention_heads": heads, "num_key_value_heads": kvHeads, "head_dim": headDim,
		"linear_num_key_heads": keyHeads, "linear_num_value_heads": valueHeads,
		"linear_key_head_dim": keyDim, "linear_value_head_dim": valueDim, "linear_conv_kernel_dim": convKernel,
		"rope_parameters": map[string]any{"rope_type": "default", "rope_theta": 1e7, "partial_rotary_factor": 0.25,
			"mrope_section": []int{11, 11, 10}, "mrope_interleaved": true},
		"rms_norm_eps": 1e-6, "hidden_act": "silu", "tie_word_embeddings": !untied, "attention_bias": false,
		"max_position_embeddings": 262144, "full_attention_interval": 4, "attn_output_gate": true,
		"mamba_ssm_dtype": "float32", "mtp_num_hidden_layers": 1, "dtype": "bfloat16",
		"eos_token_id": specialBase,
	}
	return map[string]any{
		"model_type": "qwen3_5", "architectures": []string{"Qwen3_5ForConditionalGeneration"},
		"text_config": text, "tie_word_embeddings": !untied,
		"image_token_id": 248056, "video_token_id": 248057, "vision_start_token_id": 248053, "vision_end_token_id": 248054,
		"vision_config": map[string]any{"model_type": "qwen3_5_vision", "depth": 12, "hidden_size": 768, "num_heads": 12, "out_hidden_size": hidden},
		"dtype":         "bfloat16", "transformers_version": "5.17.0",
		"_qconv_synthetic": "random weights written by qconv's testdata/synth; outputs are meaningless",
	}
}

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
