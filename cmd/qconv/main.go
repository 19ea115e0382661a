// Command qconv turns Hugging Face Qwen3.5 checkpoints into Core AI bundles. This package holds
// the cobra commands only: flag parsing, calling the packages, printing.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"qconv/internal/exitcode"
)

// version is stamped into every bundle's producer string.
var version = "0.1.0"

// stdout carries the one JSON document of --json, and --help and --version; everything else
// human goes to stderr.
var (
	stdout io.Writer = os.Stdout
	stderr io.Writer = os.Stderr
)

// jsonWritten is set once a command has printed its JSON document (so an error after it does not
// print a second one).
var jsonWritten bool

// exitCodesHelp is the exit-code contract as --help prints it (docs/cli.md, "Exit codes").
const exitCodesHelp = `Exit codes:
  0    ok
  1    internal error (a bug in qconv: please report it)
  2    bad input, usage or environment: unknown command or flag, a bad checkpoint or bundle,
       an unwritable, read-only or full output directory (the message names the file, flag or path)
  3    the gate failed (nothing was published)
  4    export --check found drift (or a stale bundle in the output tree)
  130  interrupted (SIGINT), 143 terminated (SIGTERM), after removing staged output

Output: --help and --version print on stdout; --json prints one JSON document on stdout (on an
error: {"error": {"code": N, "message": "..."}}); messages and progress go to stderr, every error
line prefixed "qconv:". Progress bars are drawn only on a terminal; with CI set, TERM=dumb or
stderr redirected, each phase is one line.`

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "qconv <command>",
		Short:         "Convert Hugging Face Qwen3.5 checkpoints into gated Apple Core AI bundles",
		Long:          "qconv converts Hugging Face Qwen3.5 checkpoints into gated Apple Core AI bundles.\n\n" + exitCodesHelp,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
		// A word that is no command is a usage error (exit 2), as is no command at all.
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return exitcode.Badf("unknown command %q (commands: %s; see qconv --help)", args[0], strings.Join(commandNames(c), ", "))
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			return exitcode.Badf("no command given (commands: %s; see qconv --help)", strings.Join(commandNames(c), ", "))
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	// Usage errors (unknown flag, wrong argument count) are bad input: exit code 2.
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return exitcode.Badf("%s: %w (see %s --help)", c.Name(), err, c.CommandPath())
	})
	root.AddCommand(newInfoCmd())
	root.AddCommand(newExportCmd())
	root.AddCommand(newInspectCmd())
	root.AddCommand(newVerifyCmd())
	root.AddCommand(newTargetsCmd())
	root.AddCommand(newRunCmd())
	root.AddCommand(newCardCmd())
	root.AddCommand(newReleaseCmd())
	for _, c := range root.Commands() {
		c.Long = strings.TrimSpace(c.Long+"\n\n") + "\n\n" + exitCodesHelp
	}
	return root
}

func main() {
	os.Exit(run(os.Args[1:]))
}

// run executes one command line and returns the process exit code. An error is printed on
// stderr, each line prefixed "qconv: " once, and with --json also as {"error": ...} on stdout
// unless the command already printed its document.
func run(args []string) int {
	jsonWritten = false
	root := newRoot()
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err == nil {
		return exitcode.OK
	}
	code := exitcode.Of(err)
	msg := strings.TrimRight(err.Error(), "\n")
	for _, line := range strings.Split(msg, "\n") {
		fmt.Fprintf(stderr, "qconv: %s\n", strings.TrimPrefix(line, "qconv: "))
	}
	if !jsonWritten && wantsJSON(cmd, args) {
		type errorDoc struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		}
		writeJSON(struct {
			Error errorDoc `json:"error"`
		}{errorDoc{code, msg}})
	}
	return code
}

// wantsJSON reports whether the command line asked for --json (also when its flags did not parse).
func wantsJSON(cmd *cobra.Command, args []string) bool {
	if cmd != nil {
		if f := cmd.Flags().Lookup("json"); f != nil && f.Changed {
			return f.Value.String() == "true"
		}
	}
	return slices.Contains(args, "--json") || slices.Contains(args, "--json=true")
}

// commandNames lists the subcommands a user can type.
func commandNames(root *cobra.Command) []string {
	var names []string
	for _, c := range root.Commands() {
		if c.IsAvailableCommand() && c.Name() != "help" && c.Name() != "completion" {
			names = append(names, c.Name())
		}
	}
	return names
}

// exactArgs is cobra.ExactArgs with a bad-input classification.
func exactArgs(n int) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(c, args); err != nil {
			return exitcode.Badf("%s: %w (see %s --help)", c.Name(), err, c.CommandPath())
		}
		return nil
	}
}

// writeJSON prints v as the command's single JSON document on stdout.
func writeJSON(v any) error {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	jsonWritten = true
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("writing JSON: %w", err)
	}
	return nil
}
