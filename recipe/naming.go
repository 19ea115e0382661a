package recipe

import (
	"path/filepath"
	"qconv/graph"
	"qconv/hf"
	"qconv/internal/exitcode"
	"qconv/quant"
	"strings"
)

// The output head of a recipe, as metadata records it and bundle names derive it. One place
// decides these values; the recipe, the weight table, the lowering options, inspect and the
// card consult it (docs/naming.md).
const (
	// HeadTied: the checkpoint ties its head to the embedding; the graph projects with the
	// embedding table, stored float in the compute dtype. No lm_head tensor in the bytes.
	HeadTied = "tied"
	// HeadUntied: the checkpoint has its own lm_head.weight and the recipe keeps it float in
	// the compute dtype (fp16 on the device forms), as published. Bundle names treat it like a
	// tied head: `int8lin` is the int8 body plus the checkpoint's own float head, tied or not.
	HeadUntied = "untied"
	// "int8" and "int4" are quantized heads (a tied checkpoint's is a quantized copy of the
	// embedding); they add _{granularity}[_sym] to the name.
)

// IntHead reports whether the recipe quantizes the head.
func (r *Recipe) IntHead() bool { return r.Head == "int8" || r.Head == "int4" }

// FloatHead reports whether head is a float head (tied or the checkpoint's own).
func FloatHead(head string) bool { return head == HeadTied || head == HeadUntied }

// ForCheckpoint resolves a float head against the checkpoint: an untied checkpoint keeps its
// own lm_head, so the recipe says "untied" (metadata, inspect and card then say what the bytes
// hold). It is applied wherever a recipe meets a checkpoint.
//
// An int head whose rows do not take its granularity is refused (exit 2) rather than kept
// float under a name that says int: the head alone decides the name's head part.
func (r *Recipe) ForCheckpoint(cfg *hf.Config) error {
	if FloatHead(r.Head) {
		r.Head = HeadTied
		if !cfg.TieWordEmbeddings {
			r.Head = HeadUntied
		}
		return nil
	}
	g, err := ParseGranularity(r.HeadGranularity)
	if err != nil {
		return err
	}
	if why := (quant.Linear{Bits: 8, Granularity: g}).Check(cfg.VocabSize, cfg.HiddenSize); why != "" {
		if r.headFlags == "" { // the target's default recipe chose the int head
			return exitcode.Badf("the target's default head (%s %s) cannot be stored for this checkpoint (lm_head.weight [%d, %d]: %s); keep the checkpoint's float head with --head tied, or choose another --head-granularity", r.Head, r.HeadGranularity, cfg.VocabSize, cfg.HiddenSize, why)
		}
		return exitcode.Badf("flag %s: an %s %s head cannot be stored for this checkpoint (lm_head.weight [%d, %d]: %s); choose another --head-granularity or keep the float head (omit %s)", r.headFlags, r.Head, r.HeadGranularity, cfg.VocabSize, cfg.HiddenSize, why, r.headFlags)
	}
	return nil
}

// ShortFromName recovers the {short} prefix of a bundle name (its marker is the contract's).
func ShortFromName(name string, t *Target, c graph.Contract) string {
	marker := "_decode_"
	switch c {
	case graph.HostDecode:
		marker = "_ios_hc0_"
	case graph.HostPrefill:
		marker = "_ios_hc_prefill_"
	case graph.Stock:
		marker = "_stock_"
	}
	if i := strings.Index(name, marker); i > 0 {
		return name[:i]
	}
	return name
}

// CheckpointName is the checkpoint's name as a card or metadata shows it: the repo id when read
// from the Hugging Face cache, else the base name of its directory (symlinks resolved), never
// the rest of a local path.
func CheckpointName(ck *hf.Checkpoint) string {
	if ck.RepoID != "" {
		return ck.RepoID
	}
	dir := ck.Dir
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	return filepath.Base(filepath.Clean(dir))
}

// PrefillTokens is the block size of the ios-gpu prefill companion.
const PrefillTokens = 16

// DTypeWords spells a stored float dtype as the flags and bundle names do (f16 is fp16).
func DTypeWords(f string) string {
	switch f {
	case "f16":
		return "fp16"
	case "f32":
		return "fp32"
	}
	return f
}
