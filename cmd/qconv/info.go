package main

import (
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"qconv/hf"
	"qconv/internal/exitcode"
)

// infoJSON is the `qconv info --json` document. Scripts read its fields: add fields, never rename them.
type infoJSON struct {
	Checkpoint        string             `json:"checkpoint"`
	RepoID            string             `json:"repo_id,omitempty"`
	Revision          string             `json:"revision,omitempty"`
	ModelType         string             `json:"model_type"`
	Layout            string             `json:"layout"`
	HiddenSize        int                `json:"hidden_size"`
	IntermediateSize  int                `json:"intermediate_size"`
	NumHiddenLayers   int                `json:"num_hidden_layers"`
	LayerTypes        []hf.LayerType     `json:"layer_types"`
	VocabSize         int                `json:"vocab_size"`
	TieWordEmbeddings bool               `json:"tie_word_embeddings"`
	Attention         attentionJSON      `json:"full_attention"`
	Linear            linearJSON         `json:"linear_attention"`
	Rope              ropeJSON           `json:"rope"`
	RMSNormEps        float64            `json:"rms_norm_eps"`
	Params            int64              `json:"params"`
	DTypes            map[string]census  `json:"dtypes"`
	Files             []hf.FileInfo      `json:"files"`
	Sharded           bool               `json:"sharded"`
	Tensors           []tensorJSON       `json:"tensors"`
	Skipped           []string           `json:"skipped"`
	SkippedDetail     []hf.SkippedTensor `json:"skipped_detail"`
	Unexpected        []string           `json:"unexpected"`
}

type attentionJSON struct {
	Heads    int `json:"num_attention_heads"`
	KVHeads  int `json:"num_key_value_heads"`
	HeadDim  int `json:"head_dim"`
	RotaryDm int `json:"rotary_dim"`
}

type linearJSON struct {
	KeyHeads   int `json:"linear_num_key_heads"`
	ValueHeads int `json:"linear_num_value_heads"`
	KeyDim     int `json:"linear_key_head_dim"`
	ValueDim   int `json:"linear_value_head_dim"`
	ConvKernel int `json:"linear_conv_kernel_dim"`
	ConvDim    int `json:"conv_dim"`
}

type ropeJSON struct {
	Theta         float64 `json:"rope_theta"`
	PartialFactor float64 `json:"partial_rotary_factor"`
	MropeSection  []int   `json:"mrope_section,omitempty"`
}

type census struct {
	Tensors int   `json:"tensors"`
	Bytes   int64 `json:"bytes"`
}

type tensorJSON struct {
	Name  string `json:"name"`
	DType string `json:"dtype"`
	Shape []int  `json:"shape"`
	File  string `json:"file"`
	Use   string `json:"use"` // the canonical text-stack name, or "skipped" / "unexpected"
}

func newInfoCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "info <checkpoint>",
		Short: "Describe a checkpoint: config, tensor table, parameter count, skipped tensors",
		Long: `Describe a Hugging Face Qwen3.5 checkpoint (a directory, or a repo id in the local HF cache)
without reading tensor data: config summary, dtype census, tensor table, skipped tensors.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ck, err := hf.OpenWith(args[0], hf.Options{AllowUnexpected: true})
			if err != nil {
				return exitcode.Bad(err)
			}
			defer ck.Close()
			doc := describe(ck)
			if asJSON {
				return writeJSON(doc)
			}
			printInfo(doc)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON document on stdout")
	return cmd
}

func describe(ck *hf.Checkpoint) infoJSON {
	cfg := ck.Config
	layout := "text (model.*)"
	if cfg.Nested {
		layout = "multimodal (model.language_model.*, nested text_config)"
	}
	doc := infoJSON{
		Checkpoint: ck.Dir, RepoID: ck.RepoID, Revision: ck.Revision,
		ModelType: cfg.ModelType, Layout: layout,
		HiddenSize: cfg.HiddenSize, IntermediateSize: cfg.IntermediateSize,
		NumHiddenLayers: cfg.NumLayers, LayerTypes: cfg.LayerTypes, VocabSize: cfg.VocabSize,
		TieWordEmbeddings: cfg.TieWordEmbeddings,
		Attention:         attentionJSON{cfg.NumHeads, cfg.NumKVHeads, cfg.HeadDim, cfg.RotaryDim()},
		Linear: linearJSON{cfg.LinearNumKeyHeads, cfg.LinearNumValueHeads, cfg.LinearKeyHeadDim,
			cfg.LinearValueHeadDim, cfg.ConvKernel, cfg.ConvDim()},
		Rope:       ropeJSON{cfg.RopeTheta, cfg.PartialRotaryFactor, cfg.MropeSection},
		RMSNormEps: cfg.RMSNormEps, Params: ck.NumParams(), DTypes: map[string]census{},
		Files: ck.Files, Sharded: ck.Sharded,
		Skipped: []string{}, SkippedDetail: ck.Skipped, Unexpected: ck.Unexpected,
	}
	skipped := map[string]bool{}
	for _, s := range ck.Skipped {
		skipped[s.Name] = true
		doc.Skipped = append(doc.Skipped, s.Name)
	}
	unexpected := map[string]bool{}
	for _, u := range ck.Unexpected {
		unexpected[u] = true
	}
	if doc.Unexpected == nil {
		doc.Unexpected = []string{}
	}
	for _, t := range ck.Stored() {
		use := t.Name
		switch {
		case skipped[t.StoredName]:
			use = "skipped"
		case unexpected[t.StoredName]:
			use = "unexpected"
		}
		doc.Tensors = append(doc.Tensors, tensorJSON{t.StoredName, t.DType.String(), t.Shape, t.File, use})
		c := doc.DTypes[t.DType.String()]
		c.Tensors++
		c.Bytes += int64(len(t.Bytes()))
		doc.DTypes[t.DType.String()] = c
	}
	return doc
}

func printInfo(d infoJSON) {
	w := stderr
	fmt.Fprintf(w, "checkpoint   %s\n", d.Checkpoint)
	if d.RepoID != "" {
		fmt.Fprintf(w, "repo         %s @ %s (local HF cache)\n", d.RepoID, d.Revision)
	}
	fmt.Fprintf(w, "model_type   %s, %s\n", d.ModelType, d.Layout)
	var lt strings.Builder
	for _, t := range d.LayerTypes {
		if t == hf.FullAttention {
			lt.WriteByte('F')
		} else {
			lt.WriteByte('L')
		}
	}
	fmt.Fprintf(w, "layers       %d: %s (L = gated DeltaNet, F = gated full attention)\n", d.NumHiddenLayers, lt.String())
	fmt.Fprintf(w, "dims         hidden %d, intermediate %d, vocab %d\n", d.HiddenSize, d.IntermediateSize, d.VocabSize)
	fmt.Fprintf(w, "attention    %d query / %d KV heads x %d (rotary %d, theta %g)\n", d.Attention.Heads, d.Attention.KVHeads, d.Attention.HeadDim, d.Attention.RotaryDm, d.Rope.Theta)
	fmt.Fprintf(w, "delta        %d key / %d value heads, dk %d dv %d, conv %d x %d\n", d.Linear.KeyHeads, d.Linear.ValueHeads, d.Linear.KeyDim, d.Linear.ValueDim, d.Linear.ConvDim, d.Linear.ConvKernel)
	head := "untied lm_head"
	if d.TieWordEmbeddings {
		head = "tied to the embedding"
	}
	fmt.Fprintf(w, "head         %s\n", head)
	fmt.Fprintf(w, "parameters   %d (%.2fM)\n", d.Params, float64(d.Params)/1e6)
	var dts []string
	for k := range d.DTypes {
		dts = append(dts, k)
	}
	sort.Strings(dts)
	for _, k := range dts {
		fmt.Fprintf(w, "dtype        %-5s %4d tensors, %d bytes\n", k, d.DTypes[k].Tensors, d.DTypes[k].Bytes)
	}
	for _, f := range d.Files {
		fmt.Fprintf(w, "file         %s (%d bytes, %d tensors)\n", f.Name, f.Size, f.Tensors)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TENSOR\tDTYPE\tSHAPE\tUSE")
	for _, t := range d.Tensors {
		fmt.Fprintf(tw, "%s\t%s\t%v\t%s\n", t.Name, t.DType, t.Shape, t.Use)
	}
	tw.Flush()
	if len(d.SkippedDetail) > 0 {
		fmt.Fprintf(w, "\nskipped %d tensors:\n", len(d.SkippedDetail))
		for _, s := range d.SkippedDetail {
			fmt.Fprintf(w, "  %s: %s\n", s.Name, s.Reason)
		}
	}
	if len(d.Unexpected) > 0 {
		fmt.Fprintf(w, "\nunexpected %d tensors (export refuses this checkpoint until they are explained):\n  %s\n", len(d.Unexpected), strings.Join(d.Unexpected, "\n  "))
	}
}
