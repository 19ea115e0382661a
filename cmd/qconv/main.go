// Command qconv turns Hugging Face Qwen3.5 checkpoints into Core AI bundles. This package holds
// the cobra commands only: flag parsing, calling the packages, printing.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"qconv/internal/exitcode"
)

// version is stamped into every bundle's producer string.
var version = "0.1.0"

// stdout carries the one JSON document of --json; everything human goes to stderr.
var (
	stdout io.Writer = os.Stdout
	stderr io.Writer = os.Stderr
)

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "qconv",
		Short:         "Convert Hugging Face Qwen3.5 checkpoints into gated Apple Core AI bundles",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stderr)
	root.SetErr(stderr)
	// Usage errors (unknown flag, wrong argument count) are bad input: exit code 2.
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return exitcode.Badf("%s: %w", c.CommandPath(), err)
	})
	root.AddCommand(newInfoCmd())
	root.AddCommand(newExportCmd())
	root.AddCommand(newInspectCmd())
	root.AddCommand(newVerifyCmd())
	root.AddCommand(newTargetsCmd())
	root.AddCommand(newRunCmd())
	root.AddCommand(newCardCmd())
	root.AddCommand(newReleaseCmd())
	return root
}

func main() {
	os.Exit(run(os.Args[1:]))
}

// run executes one command line and returns the process exit code.
func run(args []string) int {
	root := newRoot()
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitcode.OK
	}
	fmt.Fprintf(stderr, "qconv: %v\n", err)
	return exitcode.Of(err)
}

// exactArgs is cobra.ExactArgs with a bad-input classification.
func exactArgs(n int) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(c, args); err != nil {
			return exitcode.Badf("%s: %w", c.CommandPath(), err)
		}
		return nil
	}
}

// writeJSON prints v as the command's single JSON document on stdout.
func writeJSON(v any) error {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return errors.Join(errors.New("writing JSON"), err)
	}
	return nil
}
