package main

import (
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"qconv/bundle"
	"qconv/export"
	"qconv/gating"
	"qconv/hf"
	"qconv/internal/exitcode"
	"qconv/recipe"
)

func newInspectCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect <bundle> [--json]",
		Short: "Report what a bundle's bytes hold, and fail when its name or metadata disagree with them",
		Long: `Read a bundle's main.mlirb and report its functions, inputs, outputs, states and every stored
tensor (dtype, granularity, block size, scale shape, size), check main.hash, and fail (exit 2) when
the directory name, metadata.json or the recorded scheme table disagree with the bytes.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := bundle.Inspect(args[0])
			if in != nil {
				if asJSON {
					if jerr := writeJSON(in); jerr != nil {
						return jerr
					}
				} else {
					in.WriteText(stderr)
				}
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON document on stdout")
	return cmd
}

func newVerifyCmd() *cobra.Command {
	var (
		reference  string
		gate       gateFlags
		asJSON     bool
		trustBytes bool
	)
	cmd := &cobra.Command{
		Use:   "verify <bundle> --reference <checkpoint> [--gate-prompts FILE] [--json]",
		Short: "Re-run the gate on a bundle's shipped bytes against the checkpoint's fp32 reference",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if reference == "" {
				return exitcode.Badf("flag --reference: required (the checkpoint the bundle was exported from)")
			}
			gopt, err := gate.options()
			if err != nil {
				return err
			}
			b, err := bundle.OpenBundle(args[0])
			if err != nil {
				return err
			}
			defer b.Close()
			if !trustBytes {
				if err := b.CheckHash(); err != nil {
					return err
				}
			}
			// A bundle another tool wrote (no qconv block, e.g. Apple's exporter) is judged by its
			// bytes alone; qconv's own bundles must also agree with their metadata.
			if bundle.HasQConvBlock(args[0]) {
				if in, err := bundle.Inspect(args[0]); err != nil && !(trustBytes && in != nil && !in.HashOK) {
					return err
				}
			}
			ck, err := hf.Open(reference)
			if err != nil {
				return exitcode.Bad(err)
			}
			defer ck.Close()
			// Say so before any gate result when the reference is not the bundle's checkpoint.
			mismatch, err := bundle.ReferenceMismatch(b, ck)
			if err != nil {
				return err
			}
			if mismatch != "" {
				fmt.Fprintf(stderr, "reference: %s; the gate below compares the bundle with a different model\n", mismatch)
			}
			prompts, err := gate.loadPrompts(ck)
			if err != nil {
				return err
			}
			// By default the bundle is judged by the rule it was published under: the prompts and
			// thresholds its gate recorded (as card --reference does); flags override.
			recPrompts, recOpt, ok, err := bundle.RecordedGate(b)
			if err != nil {
				return err
			}
			if ok {
				if prompts == nil {
					prompts = recPrompts
				}
				fl := cmd.Flags()
				if !fl.Changed("gate-tokens") {
					gopt.Tokens = recOpt.Tokens
				}
				if !fl.Changed("gate-min-margin") {
					gopt.MinMargin = recOpt.MinMargin
				}
				if !fl.Changed("gate-min-cosine") {
					gopt.MinCosine = recOpt.MinCosine
				}
			}
			var recorded *bundle.GateSummary
			if q := b.Metadata.QConv; q != nil {
				recorded = q.Gate
			}
			fmt.Fprintf(stderr, "recorded at export: %s\n", bundle.GateVerdict(recorded))
			if w := bundle.WeakenedGate(gopt); w != "" {
				fmt.Fprintf(stderr, "gate thresholds: WEAKENED gate: %s\n", w)
			}
			if prompts == nil {
				if prompts, err = export.DefaultPrompts(ck); err != nil {
					return err
				}
			}
			rep, companion, err := gating.Verify(b, ck, prompts, gopt)
			if err != nil {
				return err
			}
			fmt.Fprintln(stderr, rep.Summary())
			passed := rep.Passed
			if companion != nil {
				fmt.Fprintln(stderr, gating.CompanionLine(companion))
				passed = passed && companion.Passed
			}
			if asJSON {
				doc := struct {
					Bundle            string                 `json:"bundle"`
					Passed            bool                   `json:"passed"`
					Recorded          string                 `json:"recorded_gate"` // "not gated", "passed", ...
					Weakened          string                 `json:"weakened,omitempty"`
					ReferenceMismatch string                 `json:"reference_mismatch,omitempty"`
					Report            any                    `json:"report"`
					Companion         *bundle.CompanionCheck `json:"companion,omitempty"`
				}{args[0], passed, bundle.GateVerdict(recorded), bundle.WeakenedGate(gopt), mismatch, rep, companion}
				if err := writeJSON(doc); err != nil {
					return err
				}
			}
			if !passed {
				return exitcode.Wrap(exitcode.GateFailed, fmt.Errorf("%s: the shipped bytes fail the gate", args[0]))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&reference, "reference", "", "the checkpoint to compare against (directory or cached repo id)")
	cmd.Flags().BoolVar(&trustBytes, "trust-bytes", false, "verify a bundle whose main.mlirb does not match its main.hash (refused by default)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON document on stdout")
	gate.register(cmd)
	return cmd
}

// targetJSON is one row of `qconv targets --json`.
type targetJSON struct {
	Name     string        `json:"name"`
	Device   string        `json:"device"`
	Contract string        `json:"contract"`
	Prefill  string        `json:"prefill_companion,omitempty"`
	Default  recipe.Recipe `json:"default_recipe"`
	About    string        `json:"about"`
	// SlowNotes are the known slow shapes the default recipe has on the target's delegate.
	SlowNotes []string `json:"slow_notes,omitempty"`
}

func newTargetsCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "targets [--json]",
		Short: "List the targets and each one's default recipe",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			var rows []targetJSON
			for _, t := range recipe.Targets {
				r, err := recipe.Flags{}.Apply(t)
				if err != nil {
					return err
				}
				row := targetJSON{Name: t.Name, Device: t.Device.String(), Contract: t.Contract.String(), Default: r, About: t.About, SlowNotes: t.SlowNotes(&r)}
				if t.Prefill != 0 {
					row.Prefill = t.Prefill.String()
				}
				rows = append(rows, row)
			}
			if asJSON {
				return writeJSON(rows)
			}
			tw := tabwriter.NewWriter(stderr, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "TARGET\tDEVICE\tCONTRACT\tWEIGHTS\tHEAD\tRECURRENCE\tCONTEXT\tABOUT")
			for _, r := range rows {
				contract := r.Contract
				if r.Prefill != "" {
					contract += " + " + r.Prefill
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", r.Name, r.Device, contract, r.Default.Weights, r.Default.Head, r.Default.StateDType, r.Default.Context, r.About)
			}
			tw.Flush()
			fmt.Fprintln(stderr, "\nknown slow shapes (exported with a warning and a note on the card):")
			for _, s := range recipe.SlowShapes {
				fmt.Fprintf(stderr, "  %s: %s, %s\n", s.Device, s.What, s.Why)
			}
			for _, r := range rows {
				for _, n := range r.SlowNotes {
					fmt.Fprintf(stderr, "  %s default: %s\n", r.Name, n)
				}
			}
			var names []string
			for _, t := range recipe.Targets {
				names = append(names, t.Name)
			}
			sort.Strings(names)
			fmt.Fprintf(stderr, "\n--target takes any of %s, or all (every target but macos-stock)\n", strings.Join(names, ", "))
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON document on stdout")
	return cmd
}
