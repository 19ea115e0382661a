package release

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"qconv/bundle"
	"qconv/card"
	"qconv/export"
	"qconv/hf"
	"qconv/internal/atomicfile"
	"qconv/internal/exitcode"
	"qconv/oracle"
	"qconv/recipe"
)

// CardFile is the model card's name in the published tree.
const CardFile = "README.md"

// Options configure one release run.
type Options struct {
	Manifest *Manifest
	OutDir   string
	Only     string    // run this bundle's job alone ("" = every bundle)
	Date     time.Time // overrides the manifest's date (the CI matrix passes the planned one)
	DryRun   bool
	Check    bool
	CardOnly bool // write the card from the bundles already in OutDir (the matrix's join step)
	Version  string
	Progress export.Progress
	Log      io.Writer // nil: silent
}

// Result is what a release run did or found.
type Result struct {
	Manifest string      `json:"manifest"`
	Out      string      `json:"out"`
	Source   string      `json:"source"`
	Date     string      `json:"date,omitempty"`
	Bundles  []BundleOut `json:"bundles"`
	Card     string      `json:"card,omitempty"` // the card's path when written or checked
	// GateOnly are decode graphs built only to gate a prefill companion (never published).
	GateOnly    []string     `json:"gate_only,omitempty"`
	Differences []Difference `json:"differences,omitempty"`
	DryRun      bool         `json:"dry_run,omitempty"`
	Checked     bool         `json:"checked,omitempty"`
}

// BundleOut is one manifest bundle's outcome.
type BundleOut struct {
	Name        string               `json:"name"`
	Target      string               `json:"target"`
	Path        string               `json:"path"` // <target>/<entry>, slash-separated
	Layout      string               `json:"layout"`
	DerivedName string               `json:"derived_name,omitempty"`
	NamingNote  string               `json:"naming_note,omitempty"`
	External    string               `json:"external,omitempty"`
	Export      *export.BundleResult `json:"export,omitempty"`
}

// Difference is one way the tree on disk differs from what the manifest produces.
type Difference struct {
	Kind   string `json:"kind"`             // drifted, missing, not declared
	Bundle string `json:"bundle,omitempty"` // the manifest bundle, when it is one's
	Path   string `json:"path"`             // relative to the output directory
	Detail string `json:"detail,omitempty"`
}

func (d Difference) String() string {
	s := d.Kind + ": "
	if d.Bundle != "" {
		s += "bundle " + d.Bundle + " "
	}
	s += d.Path
	if d.Detail != "" {
		s += ": " + d.Detail
	}
	return s
}

// Job is one entry of the CI matrix.
type Job struct {
	Name   string `json:"name"`
	Target string `json:"target"`
	Path   string `json:"path,omitempty"` // when the manifest declares it
	Date   string `json:"date"`
}

// Matrix is the GitHub Actions strategy.matrix: one job per produced bundle, all sharing one
// creation date so every job's bytes equal a single run's.
func Matrix(m *Manifest, date time.Time) (map[string][]Job, error) {
	d, err := resolveDate(m, date)
	if err != nil {
		return nil, err
	}
	if d.IsZero() {
		d = time.Now().UTC().Truncate(time.Second)
	}
	jobs := []Job{}
	for _, b := range m.Bundles {
		if b.External != "" {
			continue
		}
		jobs = append(jobs, Job{Name: b.Name, Target: b.Target, Path: b.Path, Date: d.Format(time.RFC3339)})
	}
	return map[string][]Job{"include": jobs}, nil
}

// resolveDate is the creation date a run uses: the flag's, the manifest's, SOURCE_DATE_EPOCH,
// or zero (export then takes the current time, and --check the dates on disk).
func resolveDate(m *Manifest, flag time.Time) (time.Time, error) {
	if !flag.IsZero() {
		return flag.UTC(), nil
	}
	if m.Date != "" {
		t, err := time.Parse(time.RFC3339, m.Date)
		return t.UTC(), err
	}
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil || sec < 0 {
			return time.Time{}, exitcode.Badf("SOURCE_DATE_EPOCH=%q is not a non-negative integer of seconds", s)
		}
		return time.Unix(sec, 0).UTC(), nil
	}
	return time.Time{}, nil
}

// ParseDate reads --date: RFC 3339 or Unix seconds.
func ParseDate(s string) (time.Time, error) {
	if sec, err := strconv.ParseInt(s, 10, 64); err == nil && sec >= 0 {
		return time.Unix(sec, 0).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, exitcode.Badf("flag --date: %q is neither RFC 3339 (2026-03-01T00:00:00Z) nor Unix seconds", s)
	}
	return t.UTC(), nil
}

// OpenSource opens the manifest's checkpoint. The reference recorded in every bundle is the
// manifest's own spelling, so the bytes do not depend on where the repository is cloned.
func OpenSource(m *Manifest) (*hf.Checkpoint, error) {
	ref, recorded := m.Source.Repo, m.Source.Repo
	if m.Source.Path != "" {
		ref, recorded = m.resolve(m.Source.Path), m.Source.Path
	}
	ck, err := hf.Open(ref)
	if err != nil {
		return nil, exitcode.Badf("%s: source: %v", m.path, err)
	}
	ck.Ref = recorded
	return ck, nil
}

// Run plans, builds, gates, publishes and writes the card, or (Check) compares the tree on disk
// with what the manifest produces: an exitcode.Drift error lists every difference.
func Run(ctx context.Context, ck *hf.Checkpoint, opt Options) (*Result, error) {
	m := opt.Manifest
	res := &Result{Manifest: m.path, Out: opt.OutDir, Source: ck.Ref, DryRun: opt.DryRun, Checked: opt.Check}
	if opt.CardOnly {
		for _, b := range m.Bundles {
			res.Bundles = append(res.Bundles, plannedBundle(ck, b))
		}
		md, err := buildCard(m, opt.OutDir)
		if err != nil {
			return res, err
		}
		res.Card = filepath.Join(opt.OutDir, CardFile)
		return res, atomicfile.WriteFile(res.Card, md)
	}
	date, err := resolveDate(m, opt.Date)
	if err != nil {
		return nil, err
	}
	if !date.IsZero() {
		res.Date = date.Format(time.RFC3339)
	} else if opt.Only != "" && !opt.Check && opt.Log != nil {
		fmt.Fprintf(opt.Log, "warning: no creation date pinned (manifest date, --date or SOURCE_DATE_EPOCH): this job records the current time, so its bytes will differ from the other jobs'; pass the matrix's --date\n")
	}
	var selected []Bundle
	for _, b := range m.Bundles {
		if opt.Only != "" && b.Name != opt.Only {
			continue
		}
		selected = append(selected, b)
	}
	if opt.Only != "" {
		b, err := m.Find(opt.Only)
		if err != nil {
			return nil, err
		}
		if b.External != "" {
			return nil, exitcode.Badf("flag --only: bundle %s is external (%s): qconv does not produce it", b.Name, b.External)
		}
	}
	var specs []export.Spec
	for _, b := range selected {
		res.Bundles = append(res.Bundles, plannedBundle(ck, b))
		if b.External == "" {
			specs = append(specs, b.Spec())
		}
	}
	gopt := oracle.DefaultGateOptions()
	if m.Gate.Tokens != 0 {
		gopt.Tokens = m.Gate.Tokens
	}
	if m.Gate.MinMargin != nil {
		gopt.MinMargin = *m.Gate.MinMargin
	}
	if m.Gate.MinCosine != nil {
		gopt.MinCosine = *m.Gate.MinCosine
	}
	var prompts []oracle.GatePrompt
	if m.Gate.Prompts != "" {
		if prompts, err = export.LoadPrompts(m.resolve(m.Gate.Prompts), ck); err != nil {
			return nil, fmt.Errorf("%s: gate.prompts: %w", m.path, err)
		}
	}
	er, err := export.Run(ctx, export.Options{
		Checkpoint: ck, Specs: specs, OutDir: opt.OutDir, GatePrompts: prompts, Gate: gopt,
		DryRun: opt.DryRun, Check: opt.Check, Version: opt.Version, Progress: opt.Progress, Date: date,
		IgnoreStale: true, // the manifest decides what belongs in the tree: check() reports what is not declared
	})
	if er != nil {
		attach(res, er, opt.OutDir)
	}
	if err != nil && !(opt.Check && exitcode.Of(err) == exitcode.Drift) {
		return res, err
	}
	if opt.DryRun {
		return res, nil
	}
	if opt.Check {
		return res, check(res, m, er, opt)
	}
	if opt.Only != "" {
		return res, nil // the join step writes the card once every job's bundle is in place
	}
	md, err := buildCard(m, opt.OutDir)
	if err != nil {
		return res, fmt.Errorf("the bundles are published; writing the card failed: %w", err)
	}
	res.Card = filepath.Join(opt.OutDir, CardFile)
	if err := atomicfile.WriteFile(res.Card, md); err != nil {
		return res, fmt.Errorf("writing the card %s: %w", res.Card, err)
	}
	return res, nil
}

// plannedBundle is a manifest bundle with the name its recipe derives.
func plannedBundle(ck *hf.Checkpoint, b Bundle) BundleOut {
	out := BundleOut{Name: b.Name, Target: b.Target, Path: b.Path, Layout: "bundle", External: b.External}
	if b.Layout == "bare" {
		out.Layout = "bare"
	}
	if b.External != "" {
		return out
	}
	s := b.Spec()
	r, err := s.Flags.Apply(s.Target)
	if err != nil {
		return out // export.Run reports it, naming the bundle
	}
	c := s.Target.Contract
	if s.Contract != 0 {
		c = s.Contract
	}
	out.DerivedName = recipe.BundleName(recipe.ShortName(ck), s.Target, c, &r, recipe.PrefillTokens)
	entry := out.DerivedName
	if s.Entry != "" {
		entry = strings.TrimSuffix(s.Entry, ".aimodel")
	}
	if out.Path == "" {
		out.Path = b.Target + "/" + entry
		if s.Bare {
			out.Path += ".aimodel"
		}
	}
	if entry != out.DerivedName && b.LegacyName != "" {
		out.NamingNote = (&bundle.PublishedAs{Name: entry, DerivedName: out.DerivedName, Reason: b.LegacyName}).NamingNote()
	}
	return out
}

// attach pairs export's results with the manifest's bundles by published path.
func attach(res *Result, er *export.Result, out string) {
	for i := range er.Bundles {
		eb := &er.Bundles[i]
		if eb.GateOnly {
			res.GateOnly = append(res.GateOnly, eb.Target+"/"+eb.Name)
			continue
		}
		for k := range res.Bundles {
			b := &res.Bundles[k]
			name := strings.TrimSuffix(b.Path[strings.IndexByte(b.Path, '/')+1:], ".aimodel")
			if b.External == "" && b.Target == eb.Target && name == eb.Name {
				b.Export = eb
			}
		}
	}
}

// check gathers every difference: the regenerated bundles against the disk (drifted, missing),
// entries the manifest does not declare, and the card.
func check(res *Result, m *Manifest, er *export.Result, opt Options) error {
	out := opt.OutDir
	declared := map[string]*BundleOut{}
	for i := range res.Bundles {
		declared[res.Bundles[i].Path] = &res.Bundles[i]
	}
	// Bundles that are missing altogether are one difference each, not one per file.
	missing := map[string]bool{}
	for _, b := range res.Bundles {
		if b.External != "" {
			continue
		}
		if _, err := os.Lstat(filepath.Join(out, filepath.FromSlash(b.Path))); err != nil {
			missing[b.Path] = true
			res.Differences = append(res.Differences, Difference{Kind: "missing", Bundle: b.Name, Path: b.Path + "/"})
		}
	}
	if er != nil {
		for _, d := range er.Drift {
			res.Differences = append(res.Differences, classify(d, res.Bundles, out, missing)...)
		}
	}
	if opt.Only == "" {
		res.Differences = append(res.Differences, undeclared(out, declared)...)
		res.Card = filepath.Join(out, CardFile)
		want, err := buildCard(m, out)
		have, rerr := os.ReadFile(res.Card)
		switch {
		case rerr != nil:
			res.Differences = append(res.Differences, Difference{Kind: "missing", Path: CardFile})
		case err != nil:
			first, _, _ := strings.Cut(err.Error(), "\n")
			res.Differences = append(res.Differences, Difference{Kind: "drifted", Path: CardFile, Detail: "cannot be regenerated from the bundles on disk: " + first})
		case !bytes.Equal(want, have):
			res.Differences = append(res.Differences, Difference{Kind: "drifted", Path: CardFile, Detail: firstDifference(want, have)})
		}
	}
	if len(res.Differences) > 0 {
		var names []string
		for _, d := range res.Differences {
			if d.Bundle != "" && !slices.Contains(names, d.Bundle) {
				names = append(names, d.Bundle)
			}
		}
		what := ""
		if len(names) > 0 {
			what = " (bundles " + strings.Join(names, ", ") + ")"
		}
		return exitcode.Wrap(exitcode.Drift, fmt.Errorf("--check: %d difference(s) between %s and %s%s", len(res.Differences), out, m.path, what))
	}
	return nil
}

// classify turns one of export's drift lines ("<path>: <what>") into differences.
func classify(line string, bundles []BundleOut, out string, missing map[string]bool) []Difference {
	for _, b := range bundles {
		if b.External != "" {
			continue
		}
		root := filepath.Join(out, filepath.FromSlash(b.Path))
		if !strings.HasPrefix(line, root+string(filepath.Separator)) {
			continue
		}
		if missing[b.Path] {
			return nil
		}
		rest := strings.TrimPrefix(line, root+string(filepath.Separator))
		file, detail, _ := strings.Cut(rest, ": ")
		d := Difference{Kind: "drifted", Bundle: b.Name, Path: b.Path + "/" + filepath.ToSlash(file), Detail: detail}
		switch {
		case strings.Contains(detail, "missing on disk"):
			d.Kind, d.Detail = "missing", ""
		case strings.Contains(detail, "no longer produced"):
			d.Kind, d.Detail = "not declared", "inside the bundle, but the recipe does not produce it"
		}
		return []Difference{d}
	}
	return []Difference{{Kind: "drifted", Detail: line}}
}

// undeclared lists what the tree holds that the manifest does not declare: unknown top-level
// directories, and entries under a target directory that no bundle names. Hidden entries and
// top-level files other than the card (.gitattributes, LICENSE) are the repository's own.
func undeclared(out string, declared map[string]*BundleOut) []Difference {
	var diffs []Difference
	entries, err := os.ReadDir(out)
	if err != nil {
		return []Difference{{Kind: "missing", Path: out, Detail: err.Error()}}
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") || !e.IsDir() {
			continue
		}
		if _, err := recipe.TargetByName(e.Name()); err != nil {
			diffs = append(diffs, Difference{Kind: "not declared", Path: e.Name() + "/", Detail: "not a target directory"})
			continue
		}
		sub, err := os.ReadDir(filepath.Join(out, e.Name()))
		if err != nil {
			diffs = append(diffs, Difference{Kind: "drifted", Path: e.Name() + "/", Detail: err.Error()})
			continue
		}
		for _, s := range sub {
			if strings.HasPrefix(s.Name(), ".") {
				continue
			}
			p := e.Name() + "/" + s.Name()
			if declared[p] == nil {
				diffs = append(diffs, Difference{Kind: "not declared", Path: p})
			}
		}
	}
	return diffs
}

func firstDifference(want, have []byte) string {
	n := min(len(want), len(have))
	for i := 0; i < n; i++ {
		if want[i] != have[i] {
			line := bytes.Count(want[:i], []byte("\n")) + 1
			return fmt.Sprintf("differs from the regenerated card at line %d", line)
		}
	}
	return fmt.Sprintf("regenerated %d bytes, on disk %d", len(want), len(have))
}

// buildCard writes the card from the bundles in out (externals skipped), with the manifest's
// front matter, title and sections, and a section naming the external artifacts.
func buildCard(m *Manifest, out string) ([]byte, error) {
	var skip []string
	for _, b := range m.Bundles {
		if b.External != "" {
			skip = append(skip, b.Path)
		}
	}
	c, err := card.BuildCard(out, card.CardOptions{Skip: skip})
	if err != nil {
		return nil, err
	}
	fm := &c.FrontMatter
	mc := m.Card
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	if mc.License != "" {
		// The manifest's base name only: the card must not depend on where it was run from.
		c.Source.LicenseSource = "release manifest " + filepath.Base(m.path)
	}
	set(&fm.License, mc.License)
	set(&fm.LicenseName, mc.LicenseName)
	set(&fm.LicenseLink, mc.LicenseLink)
	set(&fm.BaseModel, mc.BaseModel)
	set(&fm.PipelineTag, mc.PipelineTag)
	set(&c.Title, mc.Title)
	if mc.Tags != nil {
		fm.Tags = append([]string{}, mc.Tags...)
	}
	if mc.BaseModel != "" && fm.BaseModelRelation == "" {
		for _, b := range c.Bundles {
			if b.Derived.Weights != "fp16" {
				fm.BaseModelRelation = "quantized"
			}
		}
	}
	for _, s := range mc.Sections {
		c.Sections = append(c.Sections, card.CardSection{Title: s.Title, Body: s.Body})
	}
	var ext []string
	for _, b := range m.Bundles {
		if b.External != "" {
			ext = append(ext, fmt.Sprintf("- `%s`: %s", b.Path, b.External))
		}
	}
	if len(ext) > 0 {
		c.Sections = append(c.Sections, card.CardSection{Title: "Artifacts not produced by qconv",
			Body: "The release manifest declares these as external: qconv neither builds nor checks them, and nothing in the tables above describes them.\n\n" + strings.Join(ext, "\n")})
	}
	var buf bytes.Buffer
	if err := c.WriteMarkdown(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
