package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"qconv/card"
	"qconv/export"
	"qconv/hf"
	"qconv/internal/atomicfile"
	"qconv/internal/exitcode"
)

func newCardCmd() *cobra.Command {
	var (
		reference string
		out       string
		speed     string
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "card <out-dir> [--reference <checkpoint>] [--speed FILE] [-o README.md] [--json]",
		Short: "Write a Hugging Face model card for every bundle of an export tree, from the bytes",
		Long: `Read every bundle of <out-dir>/<target>/<bundle>/ (as written by qconv export) through the
same reader as inspect, and write a Markdown model card: front matter, a pick-your-platform table
(weights and head schemes as stored, sizes, gate verdict and counts, contract), the run contract
of each target, how to run each bundle (commands, Swift and Python from its contract, what a
stock runtime needs), the device constraints and the parity of each bundle.

--speed FILE adds speeds you measured, shown with their device, OS and date; the format is
{"measurements": [{"bundle": "<target>/<name>/", "device": ..., "os": ..., "date": "YYYY-MM-DD",
"decode_tok_s": N, "prompt_tok_s": N (optional), "command": ... (optional)}]} (docs/card.md).
A bad file is exit 2 naming the file and the field.

A bundle whose name or metadata disagrees with its bytes makes card fail (exit 2) naming it; a
bundle published with --no-gate is shown as NOT GATED, with a warning above the table. With
--reference the gate is re-run on every bundle against the checkpoint, the card says so, and a
failing bundle fails the card (exit 3).

The Markdown goes to stdout, or atomically to -o FILE. --json prints the same table as one JSON
document on stdout (then only -o gets the Markdown).`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out != "" {
				// Fail before a long re-run, not after it.
				if st, err := os.Stat(filepath.Dir(out)); err != nil || !st.IsDir() {
					return exitcode.Badf("flag -o %s: directory %s does not exist", out, filepath.Dir(out))
				}
			}
			opt := card.CardOptions{Log: stderr, Speed: speed}
			if reference != "" {
				ck, err := hf.Open(reference)
				if err != nil {
					return exitcode.Bad(err)
				}
				defer ck.Close()
				opt.Reference, opt.DefaultPrompts = ck, export.DefaultPrompts
			}
			c, err := card.BuildCard(args[0], opt)
			if err != nil {
				return err
			}
			var md bytes.Buffer
			if err := c.WriteMarkdown(&md); err != nil {
				return err
			}
			if out != "" {
				if err := atomicfile.WriteFile(out, md.Bytes()); err != nil {
					return fmt.Errorf("writing the card to %s: %w", out, err)
				}
				fmt.Fprintf(stderr, "wrote %s: %d bundles\n", out, len(c.Bundles))
			}
			if asJSON {
				return writeJSON(c)
			}
			if out == "" {
				if _, err := stdout.Write(md.Bytes()); err != nil {
					return fmt.Errorf("writing the card: %w", err)
				}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&reference, "reference", "", "re-run the gate on every bundle against this checkpoint (directory or cached repo id)")
	fl.StringVar(&speed, "speed", "", "add measured speeds per bundle from this JSON file (device, OS, date, tok/s; docs/card.md)")
	fl.StringVarP(&out, "out", "o", "", "write the Markdown to this file (atomically) instead of stdout")
	fl.BoolVar(&asJSON, "json", false, "print the card's table as one JSON document on stdout")
	return cmd
}
