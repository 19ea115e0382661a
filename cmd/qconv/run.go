package main

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"qconv/bundle"
	"qconv/export"
	"qconv/graph/interp"
	"qconv/hf"
	"qconv/hf/tokenizer"
	"qconv/internal/exitcode"
	"qconv/oracle"
	"qconv/recipe"
)

// runJSON is the `qconv run --json` document. Scripts read its fields: add fields, never rename them.
type runJSON struct {
	Checkpoint string    `json:"checkpoint"`
	Engine     string    `json:"engine"` // what decoded: "fp32-reference"
	PromptIDs  []int     `json:"prompt_ids"`
	PromptText *string   `json:"prompt_text,omitempty"` // with --prompt
	GenIDs     []int     `json:"gen_ids"`
	GenText    *string   `json:"gen_text,omitempty"` // when the checkpoint has a tokenizer
	Steps      []runStep `json:"steps"`
}

// runStep is one generated token: the top 5 of the logits it was chosen from, and the top-1
// minus top-2 softmax probability.
type runStep struct {
	Top5IDs    []int     `json:"top5_ids"`
	Top5Logits []float32 `json:"top5_logits"`
	Margin     float64   `json:"margin"`
}

// decoder is what `qconv run` decodes with: today the fp32 reference; a lowered graph or a
// bundle's bytes plug in here.
type decoder interface {
	engine() string
	vocabSize() int
	generate(prompt []int, tokens int) (*oracle.Generation, error)
}

// referenceDecoder is the fp32 oracle on a checkpoint.
type referenceDecoder struct{ m *oracle.Model }

func (d referenceDecoder) engine() string { return "fp32-reference" }
func (d referenceDecoder) vocabSize() int { return d.m.VocabSize() }
func (d referenceDecoder) generate(prompt []int, tokens int) (*oracle.Generation, error) {
	return d.m.Generate(d.m.NewState(), prompt, oracle.GenerateOptions{Tokens: tokens})
}

type runFlags struct {
	ids    string
	prompt string
	tokens int
	asJSON bool
	target string
	recipe recipe.Flags
	// trustBytes runs a bundle whose main.mlirb does not match its main.hash.
	trustBytes bool
}

// graphDecoder runs a lowered graph (from a checkpoint and recipe, or a bundle's bytes) under its
// engine contract.
type graphDecoder struct {
	name       string
	vocab      int
	newSession func() (*interp.Session, error)
}

func (d graphDecoder) engine() string { return d.name }
func (d graphDecoder) vocabSize() int { return d.vocab }
func (d graphDecoder) generate(prompt []int, tokens int) (*oracle.Generation, error) {
	s, err := d.newSession()
	if err != nil {
		return nil, err
	}
	logits, err := s.Prefill(prompt)
	if err != nil {
		return nil, err
	}
	g := &oracle.Generation{PromptIDs: append([]int(nil), prompt...)}
	for i := 0; i < tokens; i++ {
		st, err := oracle.NewStep(logits)
		if err != nil {
			return nil, fmt.Errorf("step %d: %w", i, err)
		}
		g.Steps = append(g.Steps, st)
		if i == tokens-1 {
			break
		}
		if logits, err = s.Step(st.ID); err != nil {
			return nil, err
		}
	}
	return g, nil
}

func newRunCmd() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run <checkpoint|bundle> (--ids 1,2,3 | --prompt TEXT) [-n 16] [--target T --weights W ...] [--json]",
		Short: "Greedy-decode a prompt: the fp32 reference, a target's lowered graph, or a bundle's bytes",
		Long: `Greedy-decode a prompt and print, per generated token, the top 5 logits and the top-1 minus
top-2 probability margin. On a checkpoint it runs qconv's fp32 reference model (the model every
exported graph is gated against), or with --target the target's lowered graph under the recipe
flags, quantized in memory exactly as export would write it. On a bundle directory it runs the
bundle's shipped bytes. Graphs run on the CPU interpreter under their engine's I/O contract.
--prompt encodes the text with the checkpoint's (or bundle's) tokenizer.json.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRun(cmd, args[0], f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.ids, "ids", "", "prompt token ids, comma-separated")
	fl.StringVar(&f.prompt, "prompt", "", "prompt text, encoded with the checkpoint's tokenizer.json")
	fl.IntVarP(&f.tokens, "tokens", "n", 16, "number of tokens to generate")
	fl.BoolVar(&f.asJSON, "json", false, "print one JSON document on stdout")
	fl.BoolVar(&f.trustBytes, "trust-bytes", false, "run a bundle whose main.mlirb does not match its main.hash (refused by default)")
	fl.StringVar(&f.target, "target", "", "run this target's lowered graph (gpu-pipelined, ios-gpu, ios-ane, macos) instead of the reference")
	registerRecipeFlags(cmd, &f.recipe)
	return cmd
}

func runRun(cmd *cobra.Command, ref string, f runFlags) error {
	hasIDs, hasPrompt := cmd.Flags().Changed("ids"), cmd.Flags().Changed("prompt")
	switch {
	case hasIDs && hasPrompt:
		return exitcode.Badf("--ids and --prompt: give one prompt, not both")
	case !hasIDs && !hasPrompt:
		return exitcode.Badf("no prompt: give --ids 1,2,3 or --prompt TEXT")
	case hasPrompt && f.prompt == "":
		return exitcode.Badf("--prompt: empty text")
	case f.tokens < 1:
		return exitcode.Badf("-n/--tokens: %d, need at least 1 token to generate", f.tokens)
	}
	var ids []int
	if hasIDs {
		var err error
		if ids, err = parseIDs(f.ids); err != nil {
			return exitcode.Bad(err)
		}
	}

	recipeFlags := []string{"weights", "head", "head-sym", "head-granularity", "scheme", "compute", "max-ctx", "allow-known-delegate-bugs"}
	if f.target == "" {
		for _, name := range recipeFlags {
			if cmd.Flags().Changed(name) {
				return exitcode.Badf("flag --%s: only applies with --target (the reference runs the checkpoint's own weights)", name)
			}
		}
	}
	var dec decoder
	var tokDir, source string
	if err := bundle.AssetHint(ref); err != nil {
		return err
	}
	if bundle.IsBundle(ref) {
		if f.target != "" {
			return exitcode.Badf("flag --target: %s is a bundle; it runs its own bytes", ref)
		}
		for _, name := range recipeFlags {
			if cmd.Flags().Changed(name) {
				return exitcode.Badf("flag --%s: %s is a bundle; its recipe is in its bytes", name, ref)
			}
		}
		b, err := bundle.OpenBundle(ref)
		if err != nil {
			return err
		}
		defer b.Close()
		if !f.trustBytes {
			if err := b.CheckHash(); err != nil {
				return err
			}
		}
		tokDir, source = filepath.Join(ref, "tokenizer"), b.Dir
		dec = graphDecoder{name: "bundle " + b.Metadata.Name, vocab: b.Metadata.Language.VocabSize, newSession: b.Session}
	}
	var ck *hf.Checkpoint
	var err error
	if dec == nil {
		if ck, err = hf.Open(ref); err != nil {
			return exitcode.Bad(err)
		}
		defer ck.Close()
		tokDir, source = ck.Dir, ck.Dir
	}
	tok, tokErr := loadTokenizer(tokDir)
	if hasPrompt {
		if tokErr != nil {
			return exitcode.Badf("--prompt: %w", tokErr)
		}
		if ids, err = tok.Encode(f.prompt); err != nil {
			return exitcode.Badf("--prompt: %w", err)
		}
		if len(ids) == 0 {
			return exitcode.Badf("--prompt: the text encodes to no tokens")
		}
	}

	switch {
	case dec != nil:
	case f.target != "":
		t, err := recipe.TargetByName(f.target)
		if err != nil {
			return err
		}
		built, err := export.Build(ck, t, f.recipe)
		if err != nil {
			return err
		}
		dec = graphDecoder{name: fmt.Sprintf("%s graph %s (%s)", t.Name, built.Name, built.Recipe.Compute), vocab: ck.Config.VocabSize,
			newSession: func() (*interp.Session, error) { return interp.NewSession(built.Decode, built.Prefill) }}
	default:
		m, err := oracle.New(ck, oracle.Options{})
		if err != nil {
			return exitcode.Bad(err)
		}
		dec = referenceDecoder{m}
	}
	for i, id := range ids {
		if id < 0 || id >= dec.vocabSize() {
			flag := "--ids"
			if hasPrompt {
				flag = "--prompt" // a tokenizer with more tokens than the model's vocabulary
			}
			return exitcode.Badf("%s: token id %d (position %d) is outside the model's vocabulary [0, %d)", flag, id, i, dec.vocabSize())
		}
	}

	gen, err := dec.generate(ids, f.tokens)
	if err != nil {
		return err
	}
	doc := runJSON{Checkpoint: source, Engine: dec.engine(), PromptIDs: ids, GenIDs: gen.IDs(), Steps: []runStep{}}
	if hasPrompt {
		doc.PromptText = &f.prompt
	}
	for _, s := range gen.Steps {
		doc.Steps = append(doc.Steps, runStep{Top5IDs: s.Top5IDs, Top5Logits: s.Top5Logits, Margin: s.Margin})
	}
	switch {
	case tok != nil:
		if text, err := tok.Decode(doc.GenIDs); err == nil {
			doc.GenText = &text
		} else {
			fmt.Fprintf(stderr, "qconv: warning: cannot decode the generated ids: %v\n", err)
		}
	case !errors.Is(tokErr, fs.ErrNotExist):
		fmt.Fprintf(stderr, "qconv: warning: no gen_text: %v\n", tokErr)
	}
	if f.asJSON {
		return writeJSON(doc)
	}
	printRun(doc)
	return nil
}

// loadTokenizer loads dir/tokenizer.json; a missing file is an error wrapping fs.ErrNotExist.
func loadTokenizer(dir string) (*tokenizer.Tokenizer, error) {
	path := filepath.Join(dir, "tokenizer.json")
	tok, err := tokenizer.Load(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no tokenizer.json in the checkpoint to encode the text with (%w)", err)
	}
	return tok, err
}

// parseIDs parses "1,2, 3" into token ids.
func parseIDs(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("--ids: empty list, want comma-separated token ids such as 1,2,3")
	}
	var ids []int
	for i, field := range strings.Split(s, ",") {
		field = strings.TrimSpace(field)
		id, err := strconv.Atoi(field)
		if err != nil {
			return nil, fmt.Errorf("--ids: item %d %q is not a token id", i, field)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func printRun(d runJSON) {
	w := stderr
	fmt.Fprintf(w, "checkpoint  %s\n", d.Checkpoint)
	fmt.Fprintf(w, "engine      %s\n", d.Engine)
	if d.PromptText != nil {
		fmt.Fprintf(w, "prompt      %q\n", *d.PromptText)
	}
	fmt.Fprintf(w, "prompt ids  %v\n", d.PromptIDs)
	fmt.Fprintf(w, "gen ids     %v\n", d.GenIDs)
	if d.GenText != nil {
		fmt.Fprintf(w, "gen text    %q\n", *d.GenText)
	}
	fmt.Fprintf(w, "\nstep  token  margin  top 5 (id:logit)\n")
	for i, s := range d.Steps {
		var top strings.Builder
		for k, id := range s.Top5IDs {
			fmt.Fprintf(&top, " %d:%.3f", id, s.Top5Logits[k])
		}
		fmt.Fprintf(w, "%4d  %5d  %6.4f %s\n", i, d.GenIDs[i], s.Margin, top.String())
	}
}
