package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"qconv/bundle"
	"qconv/export"
	"qconv/hf"
	"qconv/internal/exitcode"
	"qconv/oracle"
	"qconv/recipe"
)

type gateFlags struct {
	prompts   string
	tokens    int
	minMargin float64
	minCosine float64
	stats     gateStatFlags
}

func (g *gateFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	d := oracle.DefaultGateOptions()
	fl.StringVar(&g.prompts, "gate-prompts", "", `gate prompts, JSONL: {"ids": [...]} or {"text": "..."} per line (default: a built-in set)`)
	fl.IntVar(&g.tokens, "gate-tokens", d.Tokens, "greedy tokens decoded per gate prompt")
	fl.Float64Var(&g.minMargin, "gate-min-margin", d.MinMargin, "reference top-2 probability margin below which a step is a tie")
	fl.Float64Var(&g.minCosine, "gate-min-cosine", d.MinCosine, "minimum prefill logit cosine")
	g.stats.register(cmd, d)
}

func (g *gateFlags) options() (oracle.GateOptions, error) {
	if g.tokens < 1 || g.tokens > 4096 {
		return oracle.GateOptions{}, exitcode.Badf("flag --gate-tokens: %d is out of range [1, 4096]", g.tokens)
	}
	if !(g.minMargin >= 0 && g.minMargin <= 1) {
		return oracle.GateOptions{}, exitcode.Badf("flag --gate-min-margin: %g is not a probability margin in [0, 1]", g.minMargin)
	}
	if !(g.minCosine >= -1 && g.minCosine <= 1) {
		return oracle.GateOptions{}, exitcode.Badf("flag --gate-min-cosine: %g is not a cosine in [-1, 1]", g.minCosine)
	}
	opt := oracle.GateOptions{Tokens: g.tokens, MinMargin: g.minMargin, MinCosine: g.minCosine}
	if err := g.stats.apply(&opt); err != nil {
		return oracle.GateOptions{}, err
	}
	return opt, nil
}

func (g *gateFlags) loadPrompts(ck *hf.Checkpoint) ([]oracle.GatePrompt, error) {
	if g.prompts == "" {
		return nil, nil
	}
	return export.LoadPrompts(g.prompts, ck)
}

func registerRecipeFlags(cmd *cobra.Command, f *recipe.Flags) {
	fl := cmd.Flags()
	fl.StringVar(&f.Weights, "weights", "", "decoder weights: fp16, int8-block32, int8-lut, int4-block32, int4-lut, int8-perchan (aliases int8lin, int8hu, int8, int4lin) (default: the target's)")
	fl.StringVar(&f.Head, "head", "", "head: tied (the checkpoint's float head: the embedding when tied, its own lm_head when untied) or int8/int4[-block32|-perchan...]")
	fl.BoolVar(&f.HeadSym, "head-sym", false, "plain absmax for the head; alone it means --head int8-block32 (the published ship configuration)")
	fl.StringVar(&f.HeadGranularity, "head-granularity", "", "int head granularity: block32, block16, block8, perchan")
	fl.StringVar(&f.Scheme, "scheme", "", "linear scale scheme: absmax (default) or clip")
	fl.StringVar(&f.Compute, "compute", "", "fp16 (device, default), bf16 (macos-stock only, its default) or fp32 (the validation form)")
	fl.IntVar(&f.MaxCtx, "max-ctx", 0, "max context length (ios-gpu: the static context; default: the target's)")
	fl.BoolVar(&f.AllowDelegate, "allow-known-delegate-bugs", false, "allow per-channel int8 on GPU targets (known to give garbage logits); recorded in metadata")
}

type exportFlags struct {
	recipe  recipe.Flags
	gate    gateFlags
	targets string
	out     string
	noGate  bool
	dryRun  bool
	check   bool
	stale   bool
	asJSON  bool
	stress  string
}

func newExportCmd() *cobra.Command {
	var f exportFlags
	cmd := &cobra.Command{
		Use:   "export <checkpoint> --target T[,T...] [-o DIR] [flags]",
		Short: "Quantize, lower, gate and write Core AI bundles",
		Long: `Export gated Core AI bundles for each target into <out>/<target>/<name>/. Every bundle is written
to a temporary directory, read back from its bytes, verified, gated against the fp32 reference and
only then moved into place; a failed gate exits 3 and publishes nothing.

  qconv export --head-sym --target gpu-pipelined <checkpoint>     the published ship bundle`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runExport(args[0], f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.targets, "target", "", "targets: gpu-pipelined, ios-gpu, ios-ane, macos, macos-stock, all (comma-separated; all leaves out macos-stock)")
	fl.StringVarP(&f.out, "out", "o", "out", "output directory")
	fl.BoolVar(&f.noGate, "no-gate", false, "publish without gating (recorded in metadata)")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print the plan (bundles, tensors, schemes, sizes) and write nothing")
	fl.BoolVar(&f.check, "check", false, "regenerate under $TMPDIR and compare with the bundles on disk by content (dates and the checkpoint's path do not count); exit 4 on any drift")
	fl.BoolVar(&f.stale, "ignore-stale", false, "with --check: list bundles in the output tree this recipe does not produce, without counting them as drift")
	fl.BoolVar(&f.asJSON, "json", false, "print one JSON document on stdout")
	fl.StringVar(&f.stress, "gate-stress", "auto", "gate dynamic fp16 graphs again with matmuls accumulated in fp16 (measured on device): auto (default: record up to 2^26 weight values, else a recorded note), record (always; the exact verdict decides), gate (both must pass), off")
	registerRecipeFlags(cmd, &f.recipe)
	f.gate.register(cmd)
	return cmd
}

func runExport(ref string, f exportFlags) error {
	if f.targets == "" {
		return exitcode.Badf("flag --target: required (gpu-pipelined, ios-gpu, ios-ane, macos, macos-stock, all)")
	}
	if f.dryRun && f.check {
		return exitcode.Badf("flags --dry-run and --check: choose one")
	}
	if f.stale && !f.check {
		return exitcode.Badf("flag --ignore-stale: only applies with --check")
	}
	targets, err := recipe.ParseTargets(f.targets)
	if err != nil {
		return err
	}
	gopt, err := f.gate.options()
	if err != nil {
		return err
	}
	stress, err := export.ParseStressMode(f.stress)
	if err != nil {
		return err
	}
	ck, err := hf.Open(ref)
	if err != nil {
		return exitcode.Bad(err)
	}
	defer ck.Close()
	prompts, err := f.gate.loadPrompts(ck)
	if err != nil {
		return err
	}
	// Ctrl-C (or SIGTERM) cancels the run; staged output is removed, existing bundles are
	// untouched, and the exit code is the shell's 128+signal.
	ctx, sig, stop := signalContext()
	defer stop()
	res, err := export.Run(ctx, export.Options{
		Checkpoint: ck, Targets: targets, Flags: f.recipe, OutDir: f.out, GatePrompts: prompts, Gate: gopt,
		NoGate: f.noGate, DryRun: f.dryRun, Check: f.check, IgnoreStale: f.stale, Version: version, Progress: newProgress(f.asJSON), Stress: stress,
	})
	return finishRun(res, err, sig, f.asJSON, func(r *export.Result) { printExport(r, f) })
}

func printExport(res *export.Result, f exportFlags) {
	w := stderr
	for _, b := range res.Bundles {
		where := b.Path
		if where == "" {
			where = "(not published)"
		}
		gate := "not gated"
		switch {
		case res.DryRun:
			gate = "not gated (dry run)"
		case !b.Gate.Skipped:
			gate = fmt.Sprintf("gate %s: teacher-forced %s, greedy %s, min cosine %.6f", bundle.GateVerdict(&b.Gate), b.Gate.TeacherForced, b.Gate.Greedy, b.Gate.MinPrefillCosine)
		}
		size := fmt.Sprintf("%d bytes", b.Bytes)
		if b.BytesEstimated {
			size = fmt.Sprintf("estimate: %d bytes of weights (main.mlirb adds the graph and alignment)", b.Bytes)
		}
		fmt.Fprintf(w, "%-14s %s\n  %s\n  %s; %s\n", b.Target, b.Name, where, size, gate)
		if b.Gate.Stats != nil {
			fmt.Fprintf(w, "  %s\n", b.Gate.Stats.StatsLine())
		}
		if b.Gate.FirstFailure != "" {
			fmt.Fprintf(w, "  first failure: %s\n", b.Gate.FirstFailure)
		}
		for _, n := range b.Warnings {
			fmt.Fprintf(w, "  qconv: warning: %s\n", n)
		}
		if b.Stress != nil {
			fmt.Fprintf(w, "  %s\n", b.Stress.StressLine())
		}
		if res.DryRun {
			for _, t := range b.Tensors {
				g := t.Granularity
				if t.Note != "" {
					g += " (" + t.Note + ")"
				}
				fmt.Fprintf(w, "    %-46s %-5s %-10s %v %d bytes\n", t.Name, t.Format, g, t.Shape, t.Bytes)
			}
		}
	}
	for _, d := range res.Drift {
		fmt.Fprintf(w, "drift: %s\n", d)
	}
	for _, d := range res.Stale {
		fmt.Fprintf(w, "stale (ignored): %s\n", d)
	}
	if f.check && len(res.Drift) == 0 && res.Passed {
		fmt.Fprintln(w, "check: the bundles on disk are exactly what this checkpoint and recipe produce")
	}
}
