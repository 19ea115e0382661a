package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"qconv/export"
	"qconv/internal/exitcode"
	"qconv/release"
)

type releaseFlags struct {
	out      string
	only     string
	date     string
	dryRun   bool
	check    bool
	matrix   bool
	cardOnly bool
	asJSON   bool
}

func newReleaseCmd() *cobra.Command {
	var f releaseFlags
	cmd := &cobra.Command{
		Use:   "release <manifest.toml> -o DIR [--dry-run | --check | --matrix | --card] [--only NAME]",
		Short: "Build, gate, publish and check a whole model repository from one manifest",
		Long: `Read a release manifest (TOML: the source checkpoint, the card's front matter, the gate settings
and every published bundle with its target, recipe, path and layout), then export every bundle in
one run (tensors the bundles share are quantized once), gate them all, publish them atomically
only when every gate passes, and write the model card DIR/README.md.

  --dry-run   print the plan (bundles, derived names, legacy paths, tensors, sizes); write nothing
  --check     regenerate and compare byte for byte with DIR; exit 4 listing every difference
              (drifted, missing, not declared); external artifacts are left alone
  --matrix    print one CI job per bundle as JSON, for a GitHub Actions strategy.matrix
  --only NAME run one bundle's job (no card; the join step writes it)
  --card      write DIR/README.md from the bundles already in DIR (the join step after --only jobs)`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runRelease(args[0], f) },
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.out, "out", "o", "", "the published tree (required except with --matrix)")
	fl.StringVar(&f.only, "only", "", "run only this bundle's job (a CI matrix entry)")
	fl.StringVar(&f.date, "date", "", "creation date of every bundle, RFC 3339 or Unix seconds (default: the manifest's, SOURCE_DATE_EPOCH, or now)")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print the plan and write nothing")
	fl.BoolVar(&f.check, "check", false, "regenerate and compare with DIR; exit 4 on any difference")
	fl.BoolVar(&f.matrix, "matrix", false, "print the CI matrix (one job per bundle) as JSON on stdout")
	fl.BoolVar(&f.cardOnly, "card", false, "write DIR/README.md from the bundles in DIR")
	fl.BoolVar(&f.asJSON, "json", false, "print one JSON document on stdout")
	return cmd
}

func runRelease(path string, f releaseFlags) error {
	modes := 0
	for _, b := range []bool{f.dryRun, f.check, f.matrix, f.cardOnly} {
		if b {
			modes++
		}
	}
	if modes > 1 {
		return exitcode.Badf("flags --dry-run, --check, --matrix and --card: choose one")
	}
	if f.cardOnly && f.only != "" {
		return exitcode.Badf("flags --card and --only: the card covers every bundle; run it once after the jobs")
	}
	var date time.Time
	if f.date != "" {
		var err error
		if date, err = release.ParseDate(f.date); err != nil {
			return err
		}
	}
	m, err := release.Load(path)
	if err != nil {
		return err
	}
	if f.matrix {
		mx, err := release.Matrix(m, date)
		if err != nil {
			return err
		}
		return writeJSONCompact(mx)
	}
	if f.out == "" {
		return exitcode.Badf("flag -o: required (the published tree)")
	}
	if f.only != "" {
		if _, err := m.Find(f.only); err != nil {
			return err
		}
	}
	ck, err := release.OpenSource(m)
	if err != nil {
		return err
	}
	defer ck.Close()
	ctx, sig, stop := signalContext()
	defer stop()
	res, err := release.Run(ctx, ck, release.Options{
		Manifest: m, OutDir: f.out, Only: f.only, Date: date, DryRun: f.dryRun, Check: f.check, CardOnly: f.cardOnly,
		Version: version, Progress: newProgress(f.asJSON), Log: stderr,
	})
	return finishRun(res, err, sig, f.asJSON, func(r *release.Result) { printRelease(r, f) })
}

func printRelease(res *release.Result, f releaseFlags) {
	w := stderr
	for _, b := range res.Bundles {
		if b.External != "" {
			fmt.Fprintf(w, "%-14s %s\n  external, left alone: %s\n", b.Name, b.Path, b.External)
			continue
		}
		fmt.Fprintf(w, "%-14s %s (%s)\n", b.Name, b.Path, b.Layout)
		if b.NamingNote != "" {
			fmt.Fprintf(w, "  %s\n", b.NamingNote)
		}
		e := b.Export
		if e == nil {
			continue
		}
		gate := "gate skipped"
		switch {
		case res.DryRun:
			gate = "planned"
		case !e.Gate.Skipped:
			gate = fmt.Sprintf("gate %s: teacher-forced %s, greedy %s, min cosine %.6f", map[bool]string{true: "passed", false: "FAILED"}[e.Gate.Passed], e.Gate.TeacherForced, e.Gate.Greedy, e.Gate.MinPrefillCosine)
		}
		fmt.Fprintf(w, "  weights %s, head %s; %d bytes; %s\n", e.Recipe.Weights, headWords(e), e.Bytes, gate)
		if e.Reused > 0 {
			fmt.Fprintf(w, "  %d resources copied from an earlier bundle of this run (quantized once)\n", e.Reused)
		}
		if e.Gate.FirstFailure != "" {
			fmt.Fprintf(w, "  first failure: %s\n", e.Gate.FirstFailure)
		}
		if res.DryRun && f.asJSON {
			continue
		}
		if res.DryRun {
			for _, t := range e.Tensors {
				g := t.Granularity
				if t.Note != "" {
					g += " (" + t.Note + ")"
				}
				fmt.Fprintf(w, "    %-46s %-5s %-10s %v %d bytes\n", t.Name, t.Format, g, t.Shape, t.Bytes)
			}
		}
	}
	for _, g := range res.GateOnly {
		fmt.Fprintf(w, "(built to gate a prefill companion against, not published: %s)\n", g)
	}
	for _, d := range res.Differences {
		fmt.Fprintln(w, d.String())
	}
	switch {
	case res.Checked && len(res.Differences) == 0:
		fmt.Fprintf(w, "check: %s is exactly what %s produces\n", res.Out, res.Manifest)
	case res.Card != "" && !res.Checked:
		fmt.Fprintf(w, "wrote %s\n", res.Card)
	}
}

func headWords(e *export.BundleResult) string {
	if e.Recipe.Head == "tied" {
		return "tied"
	}
	return e.Recipe.Head + " " + e.Recipe.HeadGranularity
}

// writeJSONCompact prints v on one line (a GitHub Actions step output must be one line).
func writeJSONCompact(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", b)
	return err
}
