package export

import (
	"qconv/hf"
	"qconv/internal/exitcode"
	"qconv/quant"
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

// floatHead reports whether head is a float head (tied or the checkpoint's own).
func floatHead(head string) bool { return head == HeadTied || head == HeadUntied }

// forCheckpoint resolves a float head against the checkpoint: an untied checkpoint keeps its
// own lm_head, so the recipe says "untied" (metadata, inspect and card then say what the bytes
// hold). It is applied wherever a recipe meets a checkpoint.
//
// An int head whose rows do not take its granularity is refused (exit 2) rather than kept
// float under a name that says int: the head alone decides the name's head part.
func (r *Recipe) forCheckpoint(cfg *hf.Config) error {
	if floatHead(r.Head) {
		r.Head = HeadTied
		if !cfg.TieWordEmbeddings {
			r.Head = HeadUntied
		}
		return nil
	}
	g, err := granularity(r.HeadGranularity)
	if err != nil {
		return err
	}
	if why := (quant.Linear{Bits: 8, Granularity: g}).Check(cfg.VocabSize, cfg.HiddenSize); why != "" {
		return exitcode.Badf("flag --head or --head-sym: an %s %s head cannot be stored for this checkpoint (lm_head.weight [%d, %d]: %s); choose another --head-granularity or keep the float head (omit --head and --head-sym)", r.Head, r.HeadGranularity, cfg.VocabSize, cfg.HiddenSize, why)
	}
	return nil
}

// headWords describes a derived head for people: "tied fp16", "untied fp16", "int8 block32".
func headWords(d DerivedRecipe, headFormat string) string {
	switch d.Head {
	case HeadTied, HeadUntied:
		if headFormat == "" {
			return d.Head
		}
		return d.Head + " " + dtypeWords(headFormat)
	}
	if d.HeadGranularity != "" {
		return d.Head + " " + d.HeadGranularity
	}
	return d.Head
}
