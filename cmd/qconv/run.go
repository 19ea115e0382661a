package main

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"qconv/hf"
	"qconv/hf/tokenizer"
	"qconv/internal/exitcode"
	"qconv/oracle"
)

// runJSON is the `qconv run --json` document (fields per design.md, plus more).
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
}

func newRunCmd() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run <checkpoint> (--ids 1,2,3 | --prompt TEXT) [-n 16] [--json]",
		Short: "Greedy-decode a prompt with the fp32 reference model",
		Long: `Greedy-decode a prompt with qconv's fp32 reference model of the checkpoint (the model every
exported graph is gated against) and print, per generated token, the top 5 logits and the top-1
minus top-2 probability margin. --prompt encodes the text with the checkpoint's tokenizer.json.`,
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

	ck, err := hf.Open(ref)
	if err != nil {
		return exitcode.Bad(err)
	}
	defer ck.Close()
	tok, tokErr := loadTokenizer(ck.Dir)
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

	m, err := oracle.New(ck, oracle.Options{})
	if err != nil {
		return exitcode.Bad(err)
	}
	dec := decoder(referenceDecoder{m})
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
	doc := runJSON{Checkpoint: ck.Dir, Engine: dec.engine(), PromptIDs: ids, GenIDs: gen.IDs(), Steps: []runStep{}}
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
