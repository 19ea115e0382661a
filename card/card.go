// Package card writes the model card of an export tree: it reads every bundle through the same
// reader as inspect (package bundle), checks each recorded gate against its own prompts
// (oracle.GateReport.CheckTotals), optionally re-gates the bytes (package gating), and renders
// the platform table, run contracts and snippets, device constraints and parity (docs/card.md).
package card

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"qconv/bundle"
	"qconv/gating"
	"qconv/graph"
	"qconv/hf"
	"qconv/internal/exitcode"
	"qconv/oracle"
	"qconv/quant"
	"qconv/recipe"
)

// CardOptions configure BuildCard.
type CardOptions struct {
	// Reference, when set, is the checkpoint the bundles were exported from: the gate is re-run
	// on every bundle's bytes (Verify) with the recorded prompts and thresholds, and the fresh
	// results replace the embedded reports. Its README.md front matter supplies the license.
	Reference *hf.Checkpoint
	// Log receives progress lines (nil: silent).
	Log io.Writer
	// Skip lists <target>/<entry> paths the card leaves alone (artifacts not produced by qconv).
	Skip []string
	// Speed, when set, is a file of measured speeds per bundle (ReadSpeedFile; docs/card.md).
	Speed string
	// DefaultPrompts are the prompts a bundle published with --no-gate is re-gated with under
	// Reference (export.DefaultPrompts of the reference); a gated bundle uses its recorded ones.
	DefaultPrompts func(*hf.Checkpoint) ([]oracle.GatePrompt, error)
}

// Card is `qconv card`: every bundle of an export tree as its bytes and gate reports state it.
// WriteMarkdown renders it as a Hugging Face model card; its JSON form is the same table as data.
type Card struct {
	Title       string          `json:"title"`
	FrontMatter CardFrontMatter `json:"front_matter"`
	Source      CardSource      `json:"source"`
	// Reverified is true when parity was re-run against Reference while building the card.
	Reverified bool         `json:"reverified"`
	Reference  string       `json:"reference,omitempty"`
	NotGated   []string     `json:"not_gated"` // paths of bundles without a gate verdict
	Bundles    []CardBundle `json:"bundles"`
	// Sections are free-text sections written after the naming notes (qconv release's manifest).
	Sections []CardSection `json:"sections,omitempty"`
	// Stale lists what the tree holds that looks left over (see staleInTree); logged as warnings.
	Stale []string `json:"stale,omitempty"`
}

// CardSection is a free-text Markdown section of the card.
type CardSection struct {
	Title string `json:"title"`
	Body  string `json:"body"`
}

// CardFrontMatter is the model card's YAML header. Empty fields are left out: a license is never
// guessed.
type CardFrontMatter struct {
	License           string   `json:"license,omitempty"`
	LicenseName       string   `json:"license_name,omitempty"`
	LicenseLink       string   `json:"license_link,omitempty"`
	BaseModel         string   `json:"base_model,omitempty"`
	BaseModelRelation string   `json:"base_model_relation,omitempty"`
	PipelineTag       string   `json:"pipeline_tag"`
	LibraryName       string   `json:"library_name"`
	Tags              []string `json:"tags"`
}

// CardSource is the checkpoint every bundle records (they must agree) and who made the bundles.
type CardSource struct {
	Ref              string                  `json:"ref,omitempty"`  // never a local path: see Name
	Name             string                  `json:"name,omitempty"` // the checkpoint's name (CheckpointName)
	Identity         string                  `json:"source_sha256,omitempty"`
	RepoID           string                  `json:"repo_id,omitempty"`
	Revision         string                  `json:"revision,omitempty"`
	Files            []bundle.FileDigestJSON `json:"files"`
	VocabSize        int                     `json:"vocab_size"`
	ModelType        string                  `json:"model_type,omitempty"` // from --reference's config
	QConvVersions    []string                `json:"qconv_versions"`
	CompilationDates []string                `json:"compilation_dates"`
	LicenseSource    string                  `json:"license_source,omitempty"`
}

// CardBundle is one row of the card's table, with its contract, constraints and parity.
type CardBundle struct {
	Target   string         `json:"target"`
	Name     string         `json:"name"`
	Path     string         `json:"path"` // relative to the output directory, slash-separated, ending in '/'
	Device   string         `json:"device"`
	Contract graph.Contract `json:"contract"` // from the bytes
	// Weights and Head describe the storage read from the bytes (the head's absmax/clip scale
	// rule is the recorded recipe's, which inspect checked against the name).
	Weights       string               `json:"weights"`
	Head          string               `json:"head"`
	Derived       bundle.DerivedRecipe `json:"derived"`
	Recurrence    string               `json:"recurrence_dtype"` // the recurrent state's dtype in the bytes
	Context       int                  `json:"max_context_length"`
	ContextStatic bool                 `json:"context_static"` // the bytes fix it (host-cache past_k length)
	Bytes         int64                `json:"bytes"`          // every file of the bundle directory
	MainBytes     int64                `json:"main_mlirb_bytes"`
	SHA256        string               `json:"main_mlirb_sha256"`
	SameBytesAs   string               `json:"same_bytes_as,omitempty"` // an earlier row with identical main.mlirb
	Companion     string               `json:"companion,omitempty"`     // the other bundle of an ios-gpu pair
	CompanionPath string               `json:"companion_path,omitempty"`
	Functions     []bundle.FunctionIO  `json:"functions"`
	StateKinds    map[string]string    `json:"state_kinds,omitempty"`
	Departures    []string             `json:"departures,omitempty"` // from the target's default recipe
	Notes         []string             `json:"notes,omitempty"`
	NamingNote    string               `json:"naming_note,omitempty"` // a legacy name the metadata records
	Constraints   []CardConstraint     `json:"constraints"`
	Gate          CardGate             `json:"gate"`
	Run           *CardRun             `json:"run,omitempty"` // how to run it (card_run.go)
}

// CardConstraint is how one device constraint (docs/constraints.md) shows in a bundle's bytes.
type CardConstraint struct {
	Number    int    `json:"number"`
	Rule      string `json:"rule"`
	Evidence  string `json:"evidence"`
	Departure bool   `json:"departure,omitempty"` // the bundle departs from what the rule recommends
}

// CardGate is a bundle's parity as its gate report states it.
type CardGate struct {
	Status string `json:"status"` // "passed" or "not gated" (a failed gate fails the card)
	Rerun  bool   `json:"rerun"`
	// Summary has the counts the table shows (for a prefill companion: its decode graph's gate,
	// passed only when the companion check passed too).
	Summary            bundle.GateSummary     `json:"summary"`
	TeacherForcedSteps int                    `json:"teacher_forced_steps,omitempty"`
	LowMarginSteps     int                    `json:"low_margin_steps,omitempty"`
	Options            *oracle.GateOptions    `json:"options,omitempty"`
	Prompts            []CardPrompt           `json:"prompts,omitempty"`
	Companion          *bundle.CompanionCheck `json:"companion_check,omitempty"`
	// MatchesEmbedded says, after a re-run, whether the fresh summary equals the embedded one
	// (nil when there was none).
	MatchesEmbedded *bool `json:"matches_embedded,omitempty"`
	// Stress is the recorded fp16-accumulation stress verdict (export/stress.go), when one was run.
	Stress *bundle.StressGate `json:"stress,omitempty"`
}

// CardPrompt is one gate prompt's result.
type CardPrompt struct {
	Name          string  `json:"name"`
	Tokens        int     `json:"tokens"`
	TeacherForced string  `json:"teacher_forced"` // matched / confident steps
	Greedy        string  `json:"greedy"`         // matched / generated tokens
	PrefillCosine float64 `json:"prefill_cosine"`
	Passed        bool    `json:"passed"`
	// FirstDivergence is the first generated token that differs from the reference (-1: none),
	// with the reference's top-2 margin there and the gate's verdict (tie or mismatch).
	FirstDivergence   int      `json:"first_divergence"`
	DivergenceMargin  float64  `json:"divergence_margin,omitempty"`
	DivergenceVerdict string   `json:"divergence_verdict,omitempty"`
	Failures          []string `json:"failures,omitempty"`
	// Stats are the prompt's distribution figures (nil in reports made before they existed).
	Stats *oracle.GateStats `json:"stats,omitempty"`
}

const (
	gateStatusPassed   = "passed"
	gateStatusNotGated = "not gated"
)

// BuildCard reads every bundle of an export tree <outDir>/<target>/<bundle>/ through Inspect
// and the graph verifier, and gathers what the card states. Any disagreement between a bundle's
// bytes, name and metadata (Inspect's, a bundle under the wrong target directory, a gate summary
// that is not its report's, bundles from different checkpoints) is an exitcode.BadInput error
// naming the bundle; a failed gate (embedded, or re-run with opt.Reference) is an
// exitcode.GateFailed error.
func BuildCard(outDir string, opt CardOptions) (*Card, error) {
	if err := treeHint(outDir); err != nil {
		return nil, err
	}
	dirs, err := listBundles(outDir, opt.Skip)
	if err != nil {
		return nil, err
	}
	var bundles []CardBundle
	var problems []string
	mds := map[string]*bundle.BundleMetadata{}
	for _, d := range dirs {
		in, err := bundle.Inspect(filepath.Join(outDir, filepath.FromSlash(d.rel)))
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", d.rel, err))
			continue
		}
		cb, err := cardBundle(d, in)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", d.rel, err))
			continue
		}
		mds[cb.Path] = in.Metadata
		bundles = append(bundles, cb)
	}
	if len(problems) > 0 {
		return nil, exitcode.Badf("%s: %d bundle(s) disagree with their bytes; the card states only what the bytes show:\n%s", outDir, len(problems), strings.Join(problems, "\n"))
	}
	c := &Card{Bundles: bundles, NotGated: []string{}}
	if err := c.fillSource(mds); err != nil {
		return nil, err
	}
	c.linkBundles()
	if err := c.fillRun(outDir, mds, opt.Speed); err != nil {
		return nil, err
	}
	c.Stale = staleInTree(outDir, c.Bundles)
	for _, st := range c.Stale {
		if opt.Log != nil {
			fmt.Fprintf(opt.Log, "card: warning: %s\n", st)
		}
	}
	if opt.Reference != nil {
		if err := c.reverify(outDir, opt.Reference, opt.DefaultPrompts, opt.Log); err != nil {
			return nil, err
		}
	}
	var failed []string
	for i := range c.Bundles {
		b := &c.Bundles[i]
		switch {
		case b.Gate.Status == gateStatusNotGated:
			c.NotGated = append(c.NotGated, b.Path)
		case !b.Gate.Summary.Passed:
			failed = append(failed, fmt.Sprintf("%s: %s", b.Path, b.Gate.Summary.FirstFailure))
		}
		b.Constraints = append(b.Constraints, CardConstraint{Number: 9, Rule: constraintRules[8].label, Evidence: gateEvidence(b), Departure: b.Gate.Status == gateStatusNotGated})
	}
	if len(failed) > 0 {
		what := "the embedded gate report"
		if c.Reverified {
			what = "the re-run gate"
		}
		return nil, exitcode.Wrap(exitcode.GateFailed, fmt.Errorf("%s: %s fails for %d bundle(s); no card:\n%s", outDir, what, len(failed), strings.Join(failed, "\n")))
	}
	c.fillFrontMatter(opt.Reference)
	return c, nil
}

// bundleDir is one bundle directory found in the tree.
type bundleDir struct {
	target string
	rel    string // target/name
}

// listBundles finds <out>/<target>/<bundle>/ directories, sorted by target then name. Hidden
// entries (staging directories of an interrupted export) and plain files (a README.md) are
// skipped; any other directory must be a target.
func listBundles(outDir string, skip []string) ([]bundleDir, error) {
	entries, err := os.ReadDir(outDir)
	if err != nil {
		return nil, exitcode.Badf("output directory %s: %v", outDir, err)
	}
	known := map[string]bool{}
	for _, t := range recipe.Targets {
		known[t.Name] = true
	}
	var out []bundleDir
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") || !isDir(outDir, e) {
			continue
		}
		if !known[e.Name()] {
			return nil, exitcode.Badf("%s: not a target directory (an export tree holds %s)", filepath.Join(outDir, e.Name()), strings.Join(recipe.TargetNames(), ", "))
		}
		sub, err := os.ReadDir(filepath.Join(outDir, e.Name()))
		if err != nil {
			return nil, exitcode.Badf("%s: %v", filepath.Join(outDir, e.Name()), err)
		}
		for _, s := range sub {
			if strings.HasPrefix(s.Name(), ".") || !isDir(filepath.Join(outDir, e.Name()), s) || slices.Contains(skip, e.Name()+"/"+s.Name()) {
				continue
			}
			out = append(out, bundleDir{target: e.Name(), rel: e.Name() + "/" + s.Name()})
		}
	}
	if len(out) == 0 {
		return nil, exitcode.Badf("%s: no bundles (expected <target>/<bundle>/ directories written by qconv export)", outDir)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].rel < out[j].rel })
	return out, nil
}

// isDir follows a symlinked entry, so a tree assembled from links reads like a copied one.
func isDir(parent string, e os.DirEntry) bool {
	if e.IsDir() {
		return true
	}
	if e.Type()&os.ModeSymlink == 0 {
		return false
	}
	st, err := os.Stat(filepath.Join(parent, e.Name()))
	return err == nil && st.IsDir()
}

// cardBundle gathers one bundle's row from its inspection, its files and its bytes.
func cardBundle(d bundleDir, in *bundle.Inspection) (CardBundle, error) {
	md, q := in.Metadata, in.Metadata.QConv // Inspect fails without a qconv block
	if q.Target != d.target {
		return CardBundle{}, fmt.Errorf("sits under target directory %s but its metadata says target %s", d.target, q.Target)
	}
	t, err := recipe.TargetByName(q.Target)
	if err != nil {
		return CardBundle{}, err
	}
	size, err := dirBytes(in.Path)
	if err != nil {
		return CardBundle{}, err
	}
	r := q.Recipe
	cb := CardBundle{
		Target: d.target, Name: in.Name, Path: d.rel + "/", Device: t.Device.String(), Contract: in.Derived.Contract,
		Derived: in.Derived, Context: md.Language.MaxContextLength,
		Bytes: size, MainBytes: in.MainBytes, SHA256: in.SHA256, Functions: in.Functions,
		StateKinds: md.Language.States, Notes: q.Notes, Companion: q.Companion, NamingNote: in.NamingNote,
	}
	cb.Weights = weightsText(in)
	headScheme := ""
	if r.HeadScheme != nil {
		headScheme = r.HeadScheme.String()
	}
	cb.Head = headText(in, headScheme)
	main := findMain(in.Functions)
	if main == nil {
		return CardBundle{}, fmt.Errorf("no @main function")
	}
	for _, s := range append(append([]bundle.IOSpec{}, main.States...), main.Inputs...) {
		if s.Name == graph.StateRec || s.Name == graph.StateRecurrentStates || s.Name == graph.InRecState {
			cb.Recurrence = s.DType
		}
		if s.Name == graph.InPastK && len(s.Shape) == 5 {
			cb.Context, cb.ContextStatic = int(s.Shape[3]), true
		}
	}
	// Inspect has already held the bytes to the device rules, the context and the recurrence dtype.
	if def, err := (recipe.Flags{}).Apply(t); err == nil {
		cb.Departures = departures(in.Derived, r, def)
	}
	cb.Constraints = constraintEvidence(&cb, in, t, r)
	g, err := embeddedGate(q)
	if err != nil {
		return CardBundle{}, err
	}
	cb.Gate = g
	return cb, nil
}

// findMain is @main's contract among fs.
func findMain(fs []bundle.FunctionIO) *bundle.FunctionIO {
	for i := range fs {
		if fs[i].Name == "main" {
			return &fs[i]
		}
	}
	return nil
}

// dirBytes sums the sizes of every regular file under dir (symlinks are not followed).
func dirBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.Type().IsRegular() {
			info, err := e.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	return n, err
}

// schemeWords spells a --weights value the way the card's table does.
func schemeWords(s string) string {
	if row, ok := recipe.WeightSchemeOf(recipe.WeightScheme(s)); ok {
		return row.Words
	}
	width, gran, ok := strings.Cut(s, "-")
	if !ok {
		return s
	}
	if n, found := strings.CutPrefix(gran, "block"); found {
		gran = "block-" + n
	}
	return width + " " + gran
}

// weightsText describes the decoder Linear weights from the bytes: "int8 block-32",
// "int8 LUT (256-entry, g32)".
func weightsText(in *bundle.Inspection) string {
	var parts []string
	for _, s := range strings.Split(in.Derived.Weights, "+") {
		text := schemeWords(s)
		if row, ok := recipe.WeightSchemeOf(recipe.WeightScheme(s)); ok && row.LUT {
			format := row.Format()
			entries, grans := map[int64]bool{}, map[string]bool{}
			for _, t := range in.Tensors {
				if bundle.DecoderLinear(t.Name) && t.Format == format && len(t.ScaleShape) == 4 {
					entries[t.ScaleShape[2]] = true
					grans[t.Granularity] = true
				}
			}
			// A Linear with too few rows for the groups (in_proj_a/b have one row per value
			// head) holds one LUT for the whole tensor; the per-tensor table says so, and the
			// recipe is the grouping the others take.
			if len(grans) > 1 {
				delete(grans, "pertensor")
			}
			var es []string
			for e := range entries {
				es = append(es, fmt.Sprintf("%d-entry", e))
			}
			sort.Strings(es)
			text += " (" + strings.Join(append(es, sortedKeys(grans)...), ", ") + ")"
		}
		parts = append(parts, text)
	}
	return strings.Join(parts, " + ")
}

// headText describes the output head: "fp16 tied" (the embedding's storage), "int8 block-32
// absmax (untied)".
func headText(in *bundle.Inspection, scheme string) string {
	d := in.Derived
	switch d.Head {
	case "tied":
		for _, t := range in.Tensors {
			if t.Name == "embed_tokens.weight" {
				return recipe.DTypeWords(t.Format) + " tied"
			}
		}
		return "tied"
	case recipe.HeadUntied:
		return "untied " + recipe.DTypeWords(in.HeadFormat())
	case "int8", "int4":
		text := schemeWords(d.Head + "-" + d.HeadGranularity)
		if d.HeadGranularity == "perchan" {
			text = d.Head + " per-channel"
		}
		if scheme != "" {
			text += " " + scheme
		}
		return text + " (untied)"
	}
	return recipe.DTypeWords(d.Head) + " (untied)"
}

func sortedKeys(m map[string]bool) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// departures lists where a bundle's recipe differs from its target's default.
func departures(d bundle.DerivedRecipe, r, def recipe.Recipe) []string {
	var out []string
	if d.Weights != string(def.Weights) {
		out = append(out, fmt.Sprintf("weights %s (default %s)", d.Weights, def.Weights))
	}
	if d.Head != def.Head && !(recipe.FloatHead(d.Head) && recipe.FloatHead(def.Head)) {
		out = append(out, fmt.Sprintf("head %s %s (default %s)", d.Head, d.HeadGranularity, def.Head))
	}
	if r.BodyScheme != def.BodyScheme && d.Weights != string(recipe.FP16) {
		out = append(out, fmt.Sprintf("scale scheme %s (default %s)", r.BodyScheme, def.BodyScheme))
	}
	if d.Compute != def.Compute {
		out = append(out, fmt.Sprintf("compute %s (default %s)", d.Compute, def.Compute))
	}
	if r.Context != def.Context {
		out = append(out, fmt.Sprintf("context %d (default %d)", r.Context, def.Context))
	}
	return out
}

// constraintRules are docs/constraints.md's constraints, in its order: a short label for the table and the
// rule with where it applies.
var constraintRules = []struct{ label, rule, applies string }{
	{"no loops", "The recurrence is one explicit step (or a fixed unrolled count); `coreai.while` does not lower on the GPU or ANE delegates.", "every target"},
	{"shape-derived KV index", "A `slice_update` whose begin comes from an input value crashes the GPU and ANE backends: pipelined graphs derive the write index from `position_ids.shape[-1] - 1`; ios-gpu leaves the write to the host.", "every target"},
	{"no per-channel int8 on GPU", "Per-channel (axis-0) int8 gives garbage logits on the current GPU delegate; per-block-32 is the GPU shape.", "GPU targets: gpu-pipelined, ios-gpu"},
	{"absmax head", "A big-vocabulary head is quantized with plain absmax, never clipped (clipping outlier rows corrupts top-1s); an untied int8 head cuts the per-token weight read.", "bundles with a quantized (untied) head"},
	{"int8 floor", "int4 (linear or LUT) does not survive this model; int8 is the narrowest shipped width.", "every target"},
	{"linear int8 on GPU, LUTs for ANE/static", "256-entry LUTs are slow on the GPU delegate, so linear int8 is the GPU default; k-means LUTs are for the ANE and the static ios-gpu path.", "gpu-pipelined: linear; ios-gpu, ios-ane, macos: LUT"},
	{"recurrence precision", "GPU graphs keep the gated-delta state in fp32; the fp32 form is wrong on the ANE, which keeps it in fp16.", "GPU: fp32; ANE: fp16; macos-stock (bf16): bf16 state, fp32 update"},
	{"names describe the bytes", "Every name and metadata field comes from the applied recipe, and `qconv inspect` reads the scheme back from the bytes.", "every bundle"},
	{"gate before publishing", "Greedy decode equals the fp32 reference token for token (a divergence only at a tie), teacher-forced top-1 matches at every confident step, prefill cosine ≥ 0.9999.", "every bundle"},
}

// constraintEvidence says how constraints 1-8 show in the bundle's bytes (9 is the gate's, added
// once the gate is final). Rules 1, 2, 3 and 7 passed the graph verifier on these bytes.
func constraintEvidence(cb *CardBundle, in *bundle.Inspection, t *recipe.Target, r recipe.Recipe) []CardConstraint {
	add := func(out []CardConstraint, n int, evidence string, departure bool) []CardConstraint {
		return append(out, CardConstraint{Number: n, Rule: constraintRules[n-1].label, Evidence: evidence, Departure: departure})
	}
	var out []CardConstraint
	out = add(out, 1, "verified: no loop op", false)
	if cb.Contract == graph.Pipelined {
		out = add(out, 2, "verified: in-graph KV write, index from shapes", false)
	} else {
		out = add(out, 2, "verified: no in-graph KV write; the host writes k_cur/v_cur", false)
	}
	perChan := 0
	for _, ti := range in.Tensors {
		if (ti.Format == "int8" || ti.Format == "int4") && ti.Granularity == "perchan" {
			perChan++
		}
	}
	switch {
	case t.Device != graph.GPU:
		out = add(out, 3, "n/a (ANE)", false)
	case perChan > 0:
		out = add(out, 3, fmt.Sprintf("%d per-channel int tensor(s), exported with --allow-known-delegate-bugs", perChan), true)
	default:
		out = add(out, 3, cb.Weights+"; no per-channel int tensor", false)
	}
	switch cb.Derived.Head {
	case "int8", "int4":
		out = add(out, 4, cb.Head, r.IntHeadScheme() != quant.Absmax)
	default:
		out = add(out, 4, "n/a: "+cb.Head+" head", false)
	}
	narrow := 16
	for _, ti := range in.Tensors {
		switch ti.Format {
		case "int8", "lut8":
			narrow = min(narrow, 8)
		case "int4", "lut4":
			narrow = min(narrow, 4)
		}
	}
	if narrow == 16 {
		out = add(out, 5, "no quantized tensor (fp16/fp32 only)", false)
	} else {
		out = add(out, 5, fmt.Sprintf("narrowest stored weight: %d-bit", narrow), narrow < 8)
	}
	lut := strings.Contains(cb.Derived.Weights, "lut")
	wantLUT := t.Name != "gpu-pipelined"
	ev := cb.Weights
	if lut != wantLUT {
		ev += " (departs from this rule)"
	}
	out = add(out, 6, ev, lut != wantLUT)
	if cb.Recurrence == graph.BF16.String() {
		// Apple's stock contract stores the state in bf16 and updates it in fp32 inside the
		// composite (graph.RecurrenceMathDType).
		out = add(out, 7, "verified: recurrent state bf16 (Apple's stock contract; the composite body updates it in fp32)", false)
	} else if cb.Recurrence != "" {
		out = add(out, 7, "verified: recurrent state "+cb.Recurrence, false)
	} else {
		out = add(out, 7, "no recurrent state", false)
	}
	out = add(out, 8, "inspect: name and metadata match the bytes", false)
	return out
}

func gateEvidence(b *CardBundle) string {
	if b.Gate.Status == gateStatusNotGated {
		return "NOT GATED"
	}
	s := "passed"
	if b.Gate.Rerun {
		s += " (re-run)"
	}
	return s
}

// embeddedGate reads the gate the bundle's metadata records and checks that its summary is its
// report's.
func embeddedGate(q *bundle.QConvBlock) (CardGate, error) {
	if q.Gate == nil || q.Gate.Skipped {
		if q.GateReport != nil {
			return CardGate{}, fmt.Errorf("metadata.json records the gate as skipped but embeds a gate report")
		}
		return CardGate{Status: gateStatusNotGated}, nil
	}
	if q.GateReport == nil {
		return CardGate{}, fmt.Errorf("metadata.json records a gate verdict but embeds no gate report")
	}
	rep, cc := q.GateReport.Report, q.GateReport.Companion
	if q.Contract == graph.HostPrefill && cc == nil {
		return CardGate{}, fmt.Errorf("metadata.json: a prefill companion's gate report has no companion check")
	}
	if err := rep.CheckTotals(); err != nil {
		return CardGate{}, fmt.Errorf("metadata.json: the embedded gate report's totals disagree with its prompts: %v", err)
	}
	want := gating.SummaryOf(rep, cc)
	if !q.Gate.Equal(want) {
		return CardGate{}, fmt.Errorf("metadata.json: the gate summary (passed %v, %d prompts, teacher-forced %s, greedy %s, min cosine %v) is not the embedded report's (passed %v, %d prompts, teacher-forced %s, greedy %s, min cosine %v)",
			q.Gate.Passed, q.Gate.Prompts, q.Gate.TeacherForced, q.Gate.Greedy, q.Gate.MinPrefillCosine,
			want.Passed, want.Prompts, want.TeacherForced, want.Greedy, want.MinPrefillCosine)
	}
	g := cardGate(rep, cc, false)
	g.Stress = q.GateStress
	return g, nil
}

// cardGate is the card's account of a gate report.
func cardGate(rep *oracle.GateReport, cc *bundle.CompanionCheck, rerun bool) CardGate {
	opt := rep.Options
	g := CardGate{
		Status: gateStatusPassed, Rerun: rerun, Summary: gating.SummaryOf(rep, cc),
		TeacherForcedSteps: rep.Totals.TeacherForcedSteps, LowMarginSteps: rep.Totals.LowMarginSteps,
		Options: &opt, Companion: cc,
	}
	for _, p := range rep.Prompts {
		cp := CardPrompt{
			Name: p.Prompt.Name, Tokens: len(p.Prompt.IDs),
			TeacherForced:   fmt.Sprintf("%d/%d", p.TeacherForcedMatched, p.TeacherForcedConfident),
			Greedy:          fmt.Sprintf("%d/%d", p.GreedyMatch, len(p.CandGen)),
			PrefillCosine:   p.PrefillCosine,
			Passed:          p.Passed,
			FirstDivergence: p.FirstDivergence,
			Failures:        p.Failures,
			Stats:           p.Stats,
		}
		if p.FirstDivergence >= 0 {
			pos := len(p.Prompt.IDs) - 1 + p.FirstDivergence
			for _, st := range p.Steps {
				if st.Phase == "greedy" && st.Pos == pos {
					cp.DivergenceMargin, cp.DivergenceVerdict = st.RefMargin, st.Verdict
				}
			}
		}
		g.Prompts = append(g.Prompts, cp)
	}
	return g
}

// fillSource checks that every bundle records the same checkpoint and gathers the provenance.
func (c *Card) fillSource(mds map[string]*bundle.BundleMetadata) error {
	versions, dates := map[string]bool{}, map[string]bool{}
	var first *CardBundle
	for i := range c.Bundles {
		b := &c.Bundles[i]
		md := mds[b.Path]
		ck := md.QConv.Checkpoint
		if first == nil {
			first = b
			c.Source = CardSource{Name: recordedName(ck), Identity: bundle.SourceIdentity(ck.Files), RepoID: ck.RepoID, Revision: ck.Revision, Files: ck.Files, VocabSize: md.Language.VocabSize}
		} else if !slices.Equal(ck.Files, c.Source.Files) || md.Language.VocabSize != c.Source.VocabSize {
			return exitcode.Badf("%s and %s were exported from different checkpoints (%s vs %s): one card describes one model", first.Path, b.Path, describeFiles(c.Source.Files), describeFiles(ck.Files))
		}
		versions[md.QConv.Version] = true
		dates[md.Compilation.Date] = true
	}
	c.Source.QConvVersions, c.Source.CompilationDates = sortedKeys(versions), sortedKeys(dates)
	return nil
}

func describeFiles(fs []bundle.FileDigestJSON) string {
	var s []string
	for _, f := range fs {
		if strings.HasSuffix(f.Name, ".safetensors") || f.Name == "config.json" {
			short := f.SHA256
			if len(short) > 12 {
				short = short[:12]
			}
			s = append(s, f.Name+" "+short)
		}
	}
	if len(s) == 0 {
		return "no file digests"
	}
	return strings.Join(s, ", ")
}

// linkBundles notes rows with identical bytes and resolves ios-gpu companions in the tree.
func (c *Card) linkBundles() {
	firstBySHA := map[string]string{}
	paths := map[string]string{}
	for _, b := range c.Bundles {
		paths[b.Target+"/"+b.Name] = b.Path
	}
	for i := range c.Bundles {
		b := &c.Bundles[i]
		if p, ok := firstBySHA[b.SHA256]; ok {
			b.SameBytesAs = p
		} else {
			firstBySHA[b.SHA256] = b.Path
		}
		if b.Companion != "" {
			b.CompanionPath = paths[b.Target+"/"+b.Companion]
		}
	}
}

// reverify re-runs the gate on every bundle's bytes against ck, with the prompts and thresholds
// of its embedded report (the defaults for a bundle that was not gated). Bundles with identical
// bytes, partner and prompts are gated once.
func (c *Card) reverify(outDir string, ck *hf.Checkpoint, defaults func(*hf.Checkpoint) ([]oracle.GatePrompt, error), log io.Writer) error {
	if log == nil {
		log = io.Discard
	}
	if ck.Config.VocabSize != c.Source.VocabSize {
		return exitcode.Badf("--reference %s: vocabulary %d, the bundles' is %d: not the checkpoint they were exported from", ck.Ref, ck.Config.VocabSize, c.Source.VocabSize)
	}
	ds, err := ck.Digests(nil)
	if err != nil {
		return fmt.Errorf("hashing --reference %s: %w", ck.Ref, err)
	}
	var got []bundle.FileDigestJSON
	for _, d := range ds {
		got = append(got, bundle.FileDigestJSON(d))
	}
	if !slices.Equal(got, c.Source.Files) {
		return exitcode.Badf("--reference %s: its files (%s) are not the ones the bundles were exported from (%s)", ck.Ref, describeFiles(got), describeFiles(c.Source.Files))
	}
	type result struct {
		rep *oracle.GateReport
		cc  *bundle.CompanionCheck
	}
	done := map[string]result{}
	for i := range c.Bundles {
		b := &c.Bundles[i]
		var prompts []oracle.GatePrompt
		opt := oracle.DefaultGateOptions()
		var embedded *bundle.GateSummary
		if b.Gate.Status != gateStatusNotGated {
			s := b.Gate.Summary
			embedded = &s
			opt = *b.Gate.Options
		}
		dir := filepath.Join(outDir, filepath.FromSlash(b.Path))
		bd, err := bundle.OpenBundle(dir)
		if err != nil {
			return fmt.Errorf("%s: %w", b.Path, err)
		}
		if embedded != nil {
			for _, p := range bd.Metadata.QConv.GateReport.Report.Prompts {
				prompts = append(prompts, p.Prompt)
			}
		}
		if prompts == nil {
			if defaults == nil {
				bd.Close()
				return fmt.Errorf("%s: not gated at export, and no default prompts to re-gate it with", b.Path)
			}
			if prompts, err = defaults(ck); err != nil {
				bd.Close()
				return err
			}
		}
		key, _ := json.Marshal([]any{b.SHA256, companionSHA(bd), prompts, opt})
		res, ok := done[string(key)]
		if !ok {
			fmt.Fprintf(log, "card: re-running the gate on %s\n", b.Path)
			res.rep, res.cc, err = gating.Verify(bd, ck, prompts, opt)
			if err != nil {
				bd.Close()
				return fmt.Errorf("%s: %w", b.Path, err)
			}
			done[string(key)] = res
		}
		bd.Close()
		stress := b.Gate.Stress
		b.Gate = cardGate(res.rep, res.cc, true)
		b.Gate.Stress = stress
		if embedded != nil {
			same := embedded.Equal(b.Gate.Summary)
			b.Gate.MatchesEmbedded = &same
		}
	}
	c.Reverified = true
	c.Reference = recipe.CheckpointName(ck)
	if ck.RepoID != "" {
		c.Reference = ck.RepoID
		if ck.Revision != "" {
			c.Reference += "@" + ck.Revision
		}
	}
	return nil
}

func companionSHA(b *bundle.Bundle) string {
	if b.Companion == nil || b.Companion.Metadata.QConv == nil {
		return ""
	}
	return b.Companion.Metadata.QConv.MainHash
}

// fillFrontMatter fills the model-card header from the reference checkpoint when given, else
// from what the bundles record; the title follows the base model or the bundles' short name.
func (c *Card) fillFrontMatter(ref *hf.Checkpoint) {
	fm := CardFrontMatter{PipelineTag: "text-generation", LibraryName: "coreai"}
	fm.BaseModel = c.Source.RepoID
	if ref != nil {
		if ref.RepoID != "" {
			fm.BaseModel = ref.RepoID
		}
		c.Source.ModelType = ref.Config.ModelType
		fm.License, fm.LicenseName, fm.LicenseLink = readmeLicense(filepath.Join(ref.Dir, "README.md"))
		if fm.License != "" {
			c.Source.LicenseSource = "README.md of " + c.Reference
		}
	}
	quantized := false
	tags := []string{"coreai", "apple", "qconv", "qwen3_5"}
	if c.Source.ModelType != "" && c.Source.ModelType != "qwen3_5" {
		tags = append(tags, c.Source.ModelType)
	}
	seen := map[string]bool{}
	for _, b := range c.Bundles {
		for _, s := range strings.Split(b.Derived.Weights, "+") {
			if s != string(recipe.FP16) {
				quantized = true
			}
			width, _, _ := strings.Cut(s, "-")
			seen[width] = true
		}
	}
	tags = append(tags, sortedKeys(seen)...)
	fm.Tags = tags
	if quantized && fm.BaseModel != "" {
		fm.BaseModelRelation = "quantized"
	}
	c.FrontMatter = fm
	switch {
	case fm.BaseModel != "":
		c.Title = path.Base(fm.BaseModel) + " for Apple Core AI"
	default:
		shorts := map[string]bool{}
		for _, b := range c.Bundles {
			t, _ := recipe.TargetByName(b.Target)
			shorts[recipe.ShortFromName(b.Name, t, b.Contract)] = true
		}
		c.Title = strings.Join(sortedKeys(shorts), ", ") + " for Apple Core AI"
	}
}

// readmeLicense reads license, license_name and license_link from a model card's YAML front
// matter (top-level scalar keys only); all empty when the file or the keys are absent.
func readmeLicense(path string) (license, name, link string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", ""
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	if !sc.Scan() || strings.TrimSpace(sc.Text()) != "---" {
		return "", "", ""
	}
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "---" {
			break
		}
		if line == "" || line[0] == ' ' || line[0] == '\t' || line[0] == '#' {
			continue
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		if i := strings.Index(val, " #"); i >= 0 {
			val = strings.TrimSpace(val[:i])
		}
		if len(val) >= 2 && (val[0] == '"' || val[0] == '\'') && val[len(val)-1] == val[0] {
			val = val[1 : len(val)-1]
		}
		switch strings.TrimSpace(key) {
		case "license":
			license = val
		case "license_name":
			name = val
		case "license_link":
			link = val
		}
	}
	return license, name, link
}

// WriteMarkdown renders the card: front matter, the pick-your-platform table, the source, how to
// run each bundle (card_run.go), the run contract per target, the device constraints and the
// parity per bundle.
func (c *Card) WriteMarkdown(w io.Writer) error {
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }
	c.writeFrontMatter(bw)
	p("# %s\n\n", c.Title)
	p("Core AI bundles exported by qconv, one per platform and compute unit. This card was generated by `qconv card` from the bundles themselves: every scheme, shape and size below was read from `main.mlirb` and the bundle directories (through the same reader as `qconv inspect`, which also found each directory name and `metadata.json` in agreement with the bytes), ")
	if c.Reverified {
		p("and every parity figure comes from the gate **re-run against `%s` while generating this card**, with the prompts and thresholds recorded in each bundle.\n\n", c.Reference)
	} else {
		p("and every parity figure from the gate report embedded in the bundle's `metadata.json` at export.\n\n")
	}
	if len(c.NotGated) > 0 {
		are := "bundles are"
		if len(c.Bundles) == 1 {
			are = "bundle is"
		}
		p("> **Warning: %d of %d %s NOT GATED.** Published with `--no-gate`, their output has never been compared with the fp32 reference. Do not ship them before `qconv verify <bundle> --reference <checkpoint>` (or `qconv card --reference`) passes:\n", len(c.NotGated), len(c.Bundles), are)
		for _, n := range c.NotGated {
			p("> - `%s`\n", n)
		}
		p("\n")
	}
	c.writeTable(bw)
	c.writeNaming(bw)
	for _, sec := range c.Sections {
		p("## %s\n\n%s\n\n", sec.Title, strings.TrimSpace(sec.Body))
	}
	c.writeSource(bw)
	c.writeRun(bw)
	c.writeContracts(bw)
	c.writeConstraints(bw)
	c.writeParity(bw)
	return bw.Flush()
}

// writeNaming lists the legacy names the bundles' metadata records (published_as).
func (c *Card) writeNaming(w io.Writer) {
	var notes []string
	for _, b := range c.Bundles {
		if b.NamingNote != "" {
			notes = append(notes, fmt.Sprintf("- `%s`: %s.\n", b.Path, b.NamingNote))
		}
	}
	if len(notes) == 0 {
		return
	}
	fmt.Fprint(w, "## Naming notes\n\nEvery other path is the name the bytes derive. These keep an earlier name on purpose; each bundle's metadata records the alias (`qconv.published_as`), and `qconv inspect` accepts the name only because it does:\n\n")
	for _, n := range notes {
		fmt.Fprint(w, n)
	}
	fmt.Fprintln(w)
}

// plainYAML matches scalars that need no quoting.
var plainYAML = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/+-]*$`)

func yamlScalar(s string) string {
	if plainYAML.MatchString(s) && s != "true" && s != "false" && s != "null" && s != "yes" && s != "no" {
		return s
	}
	b, _ := json.Marshal(s) // a JSON string is a YAML double-quoted scalar
	return string(b)
}

func (c *Card) writeFrontMatter(w io.Writer) {
	fm := c.FrontMatter
	fmt.Fprintln(w, "---")
	kv := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "%s: %s\n", k, yamlScalar(v))
		}
	}
	kv("license", fm.License)
	kv("license_name", fm.LicenseName)
	kv("license_link", fm.LicenseLink)
	kv("base_model", fm.BaseModel)
	kv("base_model_relation", fm.BaseModelRelation)
	kv("pipeline_tag", fm.PipelineTag)
	kv("library_name", fm.LibraryName)
	fmt.Fprintln(w, "tags:")
	for _, t := range fm.Tags {
		fmt.Fprintf(w, "- %s\n", yamlScalar(t))
	}
	fmt.Fprint(w, "---\n\n")
}

// CardTableHeader is the pick-your-platform table's header.
var CardTableHeader = []string{"target", "path", "weights", "head", "size", "main.mlirb", "gate", "teacher-forced top-1", "greedy", "prompts", "min prefill cosine", "contract"}

// TableRow is a bundle's row of the pick-your-platform table, cell by cell (unescaped).
func (b *CardBundle) TableRow() []string {
	g := b.Gate
	gate, tf, greedy, prompts, cos := "**not gated**", "—", "—", "—", "—"
	if g.Status != gateStatusNotGated {
		gate = g.Status
		if g.Rerun {
			gate += " (re-run)"
		}
		if g.Summary.Weakened != "" {
			gate += "; **WEAKENED gate**: " + g.Summary.Weakened
		}
		if cc := g.Companion; cc != nil {
			gate += fmt.Sprintf("; companion identical on %d/%d prompts", countIdentical(cc), len(cc.Prompts))
		}
		tf, greedy = g.Summary.TeacherForced, g.Summary.Greedy
		prompts = strconv.Itoa(g.Summary.Prompts)
		cos = fmt.Sprintf("%.6f", g.Summary.MinPrefillCosine)
	}
	return []string{b.Target, "`" + b.Path + "`", b.Weights, b.Head, FormatSize(b.Bytes), FormatSize(b.MainBytes), gate, tf, greedy, prompts, cos, b.Contract.String()}
}

func countIdentical(cc *bundle.CompanionCheck) int {
	n := 0
	for _, p := range cc.Prompts {
		if p.Identical {
			n++
		}
	}
	return n
}

// FormatSize spells a byte count for the card: decimal units and the exact count,
// "2.71 MB (2,706,591 B)".
func FormatSize(n int64) string {
	exact := groupThousands(n) + " B"
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2f GB (%s)", float64(n)/1e9, exact)
	case n >= 1e6:
		return fmt.Sprintf("%.2f MB (%s)", float64(n)/1e6, exact)
	case n >= 1e3:
		return fmt.Sprintf("%.2f kB (%s)", float64(n)/1e3, exact)
	}
	return exact
}

func groupThousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// mdCell escapes a table cell: pipes would end it, newlines would end the row.
func mdCell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.NewReplacer("\r\n", " ", "\n", " ").Replace(s)
}

func writeMDTable(w io.Writer, header []string, rows [][]string) {
	line := func(cells []string) {
		var esc []string
		for _, c := range cells {
			esc = append(esc, mdCell(c))
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(esc, " | "))
	}
	line(header)
	sep := make([]string, len(header))
	for i := range sep {
		sep[i] = "---"
	}
	fmt.Fprintf(w, "|%s|\n", strings.Join(sep, "|"))
	for _, r := range rows {
		line(r)
	}
	fmt.Fprintln(w)
}

func (c *Card) writeTable(w io.Writer) {
	fmt.Fprint(w, "## Pick your platform\n\n")
	var rows [][]string
	for i := range c.Bundles {
		rows = append(rows, c.Bundles[i].TableRow())
	}
	writeMDTable(w, CardTableHeader, rows)
	fmt.Fprint(w, "- **weights** is the decoder's Linear layers, **head** the output projection, both as stored in `main.mlirb` (the head's absmax/clip scale rule is the recorded recipe's, which the bundle name must match). Embeddings, norms, conv1d, `A_log` and `dt_bias` stay float; the per-tensor table is `qconv inspect <path>`.\n")
	fmt.Fprint(w, "- **size** is every file of the bundle directory (asset, metadata, tokenizer); **main.mlirb** is the graph with all its weights.\n")
	fmt.Fprint(w, "- **teacher-forced top-1** counts matches over the steps where the reference's top-2 probability margin is at least the tie threshold; **greedy** counts generated tokens equal to the reference's, over all prompts (after a divergence at a tie the rollouts differ, which the gate allows); **min prefill cosine** is the lowest prompt-logit cosine against the fp32 reference.\n\n")
}

func (c *Card) writeSource(w io.Writer) {
	s := c.Source
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("## Source\n\n")
	ref := "`" + s.Name + "`"
	if s.RepoID != "" {
		ref += " (Hugging Face `" + s.RepoID + "`"
		if s.Revision != "" {
			ref += " at revision `" + s.Revision + "`"
		}
		ref += ")"
	} else {
		ref += " (a local directory: no Hugging Face repo id recorded)"
	}
	ref += ", source sha256 `" + s.Identity + "`"
	p("- Checkpoint, as every bundle records it: %s; vocabulary %d.\n", ref, s.VocabSize)
	if s.ModelType != "" {
		p("- `model_type` (from the reference's config.json): `%s`.\n", s.ModelType)
	}
	if c.FrontMatter.License != "" {
		p("- License: `%s` (from the %s).\n", c.FrontMatter.License, s.LicenseSource)
	} else {
		p("- License: not stated. The bundles record none%s; see the base checkpoint's terms.\n", map[bool]string{true: " and the reference checkpoint's README.md front matter has no `license`", false: " (run `qconv card --reference <checkpoint>` to read it from the checkpoint's README.md)"}[c.Reverified])
	}
	p("- Exported by qconv %s; compilation date %s (from metadata.json).\n\n", strings.Join(s.QConvVersions, ", "), strings.Join(s.CompilationDates, ", "))
	if len(s.Files) > 0 {
		var rows [][]string
		for _, f := range s.Files {
			rows = append(rows, []string{"`" + f.Name + "`", groupThousands(f.Size), "`" + f.SHA256 + "`"})
		}
		writeMDTable(w, []string{"checkpoint file", "bytes", "sha256"}, rows)
	}
}

func shapeText(s []int64) string {
	var parts []string
	for _, d := range s {
		if d == graph.Dyn {
			parts = append(parts, "?")
		} else {
			parts = append(parts, strconv.FormatInt(d, 10))
		}
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func ioSpec(f *bundle.FunctionIO, name string) *bundle.IOSpec {
	for _, l := range [][]bundle.IOSpec{f.Inputs, f.Outputs, f.States} {
		for i := range l {
			if l[i].Name == name {
				return &l[i]
			}
		}
	}
	return nil
}

func (c *Card) writeContracts(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("## Run contract\n\nInputs, states and outputs as `@main` declares them in the bytes (`?` is a dynamic dimension).\n\n")
	target := ""
	for i := range c.Bundles {
		b := &c.Bundles[i]
		if b.Target != target {
			target = b.Target
			t, _ := recipe.TargetByName(target)
			p("### %s\n\n%s.\n\n", target, t.About)
		}
		ctx := fmt.Sprintf("context %d (metadata; the KV length is dynamic)", b.Context)
		if b.ContextStatic {
			ctx = fmt.Sprintf("static context %d (the `past_k` length in the bytes)", b.Context)
		}
		p("#### `%s`\n\n", b.Path)
		p("%s contract on the %s; recurrent state %s; %s.", b.Contract, b.Device, b.Recurrence, ctx)
		if b.SameBytesAs != "" {
			p(" Its `main.mlirb` is byte-identical to `%s`'s.", b.SameBytesAs)
		}
		if len(b.Departures) > 0 {
			p(" Departs from the %s default recipe: %s.", b.Target, strings.Join(b.Departures, "; "))
		}
		p("\n\n")
		main := findMain(b.Functions)
		if main == nil {
			continue
		}
		var rows [][]string
		for _, l := range []struct {
			kind  string
			specs []bundle.IOSpec
		}{{"input", main.Inputs}, {"state", main.States}, {"output", main.Outputs}} {
			for _, s := range l.specs {
				kind := l.kind
				if k := b.StateKinds[s.Name]; k != "" && l.kind == "state" {
					kind += " (" + k + ")"
				}
				rows = append(rows, []string{kind, "`" + s.Name + "`", s.DType, shapeText(s.Shape)})
			}
		}
		writeMDTable(w, []string{"", "name", "dtype", "shape"}, rows)
		for _, rule := range contractRules(b, main) {
			p("- %s\n", rule)
		}
		for _, n := range b.Notes {
			p("- Note recorded at export: %s.\n", n)
		}
		p("\n")
	}
}

// contractRules are the rules an app must follow to run the bundle, with sizes from the bytes.
func contractRules(b *CardBundle, f *bundle.FunctionIO) []string {
	switch b.Contract {
	case graph.Pipelined:
		return []string{
			"Run with `COREAI_CHUNK_THRESHOLD=1`.",
			"Warm up with a 1-token generate, never `warmup()` (it warms length 256).",
			"Each step feeds one token: `input_ids` [1, 1], and `position_ids` [1, P] with P the number of tokens so far including this one; the graph writes K/V at `position_ids.shape[-1] - 1`, so the shape, not the values, sets the position.",
			"`keyCache`/`valueCache` grow along their dynamic dimension; `convState`/`recState` keep their shape. The engine carries all four between steps.",
		}
	case graph.HostDecode:
		ctx, cols := b.Context, "ctx+1"
		if m := ioSpec(f, graph.InCausalMask); m != nil && len(m.Shape) == 4 {
			cols = strconv.FormatInt(m.Shape[3], 10)
		}
		rules := []string{
			fmt.Sprintf("The host owns the caches: it passes `past_k`/`past_v` (context %d) and `conv_state`/`rec_state` every step, and nothing persists inside the graph.", ctx),
			"`position_ids` [1, 1] holds the token's 0-based position. After each step the host writes `k_cur`/`v_cur` (one column) into `past_k`/`past_v` at that position, and replaces `conv_state`/`rec_state` with `conv_cur`/`rec_cur`.",
			fmt.Sprintf("`causal_mask` is fp16 [1, 1, 1, %s]: 0 for the past columns below the token's position and for the last column (the token itself), -1e4 for every other column.", cols),
			fmt.Sprintf("`next_token` is the greedy argmax computed in the graph; `logits` are returned too. At most %d tokens fit.", ctx),
		}
		if b.Companion != "" {
			where := "not in this tree"
			if b.CompanionPath != "" {
				where = "`" + b.CompanionPath + "`"
			}
			rules = append(rules, fmt.Sprintf("Its prefill companion is `%s` (%s); without it, feed the prompt token by token through this graph.", b.Companion, where))
		}
		return rules
	case graph.Stock:
		// Apple's own contract (docs/apple-qwen35-contract.md, "How to run with Apple's stock tools").
		return []string{
			"Apple's stock runtime loads it as is (macOS 27.2+): `swift run -c release llm-runner --model <bundle dir> --prompt \"Hello\"` or `llm-benchmark --model <bundle dir>` in an `apple/coreai-models` checkout, or `CoreAILanguageModel(resourcesAt:)` from Foundation Models. No environment variables, no warm-up rule.",
			"`@prefill` takes the prompt but its last token in one call (`input_ids` [1, q], `position_ids` [1, P] = 0..P-1) and only fills the states; `@main` takes the last prompt token, then one token per step, and returns `logits` [1, q, V].",
			"States `keyCache`/`valueCache` grow along their dynamic dimension; `convStates` (the last conv-kernel tokens, channels-last) and `recurrentStates` keep their shape. The runtime carries all four between calls.",
		}
	case graph.HostPrefill:
		q, cols := "16", "ctx+16"
		if s := ioSpec(f, graph.InInputIDs); s != nil && len(s.Shape) == 2 {
			q = strconv.FormatInt(s.Shape[1], 10)
		}
		if m := ioSpec(f, graph.InCausalMask); m != nil && len(m.Shape) == 4 {
			cols = strconv.FormatInt(m.Shape[3], 10)
		}
		return []string{
			fmt.Sprintf("Runs whole %s-token blocks of the prompt only: `input_ids` [1, %s] and their 0-based positions in `position_ids`; the remainder (fewer than %s tokens) goes through the decode graph `%s`, token by token.", q, q, q, b.Companion),
			fmt.Sprintf("`causal_mask` [1, 1, %s, %s]: row i is 0 for the past columns below the block's first position and for block columns 0..i, -1e4 elsewhere.", q, cols),
			fmt.Sprintf("The host writes the %s returned `k_cur`/`v_cur` columns into `past_k`/`past_v` at the block's positions and carries `conv_cur`/`rec_cur`, exactly as for the decode graph (the same caches, shared with it).", q),
			"Decoding after the companion must give the same tokens as decoding the whole prompt through the decode graph; the parity section shows that check.",
		}
	}
	return nil
}

func (c *Card) writeConstraints(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("## Device constraints\n\nThe hard-won rules that set each target's defaults, and how each shows in these bundles. Rules 1, 2, 3 and 7 were checked on the bytes by qconv's graph verifier for the target's device while generating this card.\n\n")
	for i, r := range constraintRules {
		p("%d. **%s** (%s). %s\n", i+1, r.label, r.applies, r.rule)
	}
	p("\n")
	var targets []string
	byTarget := map[string][]*CardBundle{}
	for i := range c.Bundles {
		b := &c.Bundles[i]
		if len(byTarget[b.Target]) == 0 {
			targets = append(targets, b.Target)
		}
		byTarget[b.Target] = append(byTarget[b.Target], b)
	}
	var rows [][]string
	for n := range constraintRules {
		row := []string{fmt.Sprintf("%d. %s", n+1, constraintRules[n].label)}
		for _, t := range targets {
			var parts []string
			same := true
			for _, b := range byTarget[t] {
				parts = append(parts, b.evidence(n+1))
				same = same && parts[len(parts)-1] == parts[0]
			}
			if same {
				row = append(row, parts[0])
				continue
			}
			for k, b := range byTarget[t] {
				parts[k] = "`" + b.Name + "`: " + parts[k]
			}
			row = append(row, strings.Join(parts, "; "))
		}
		rows = append(rows, row)
	}
	writeMDTable(w, append([]string{"rule"}, targets...), rows)
}

func (b *CardBundle) evidence(n int) string {
	for _, c := range b.Constraints {
		if c.Number == n {
			if c.Departure {
				return "**" + c.Evidence + "**"
			}
			return c.Evidence
		}
	}
	return ""
}

func (c *Card) writeParity(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("## Parity\n\n")
	if c.Reverified {
		p("The gate was **re-run against `%s` while generating this card**, on each bundle's shipped bytes through qconv's interpreter, with the prompts and thresholds its embedded report recorded (the defaults for a bundle that had none).\n\n", c.Reference)
	} else {
		p("From the gate report embedded in each bundle's metadata.json at export: the fp32 reference against the bundle's shipped bytes run through qconv's interpreter. `qconv verify <bundle> --reference <checkpoint>` re-runs it.\n\n")
	}
	shown := map[string]string{} // sha256+gate -> path with the full table
	for i := range c.Bundles {
		b := &c.Bundles[i]
		g := b.Gate
		p("### `%s`\n\n", b.Path)
		if g.Status == gateStatusNotGated {
			p("**Not gated**: published with `--no-gate`; nothing here has been compared with the fp32 reference.\n\n")
			continue
		}
		o := g.Options
		p("**%s**", g.Status)
		if g.Rerun {
			p(" (re-run")
			if g.MatchesEmbedded != nil {
				p("; %s", map[bool]string{true: "identical to the embedded report", false: "**differs from the embedded report**"}[*g.MatchesEmbedded])
			}
			p(")")
		}
		s := g.Summary
		p(": %d prompts, %d greedy tokens each; teacher-forced top-1 %s confident steps (margin ≥ %g; %d of %d steps were low-margin ties); greedy %s; min prefill cosine %.6f (floor %g).\n\n",
			s.Prompts, o.Tokens, s.TeacherForced, o.MinMargin, g.LowMarginSteps, g.TeacherForcedSteps, s.Greedy, s.MinPrefillCosine, o.MinCosine)
		writeCardStats(w, s.Stats)
		if st := g.Stress; st != nil {
			p("Delegate-numerics stress (matmuls accumulated in fp16, as the dynamic-shape graph's delegate was measured to do): %s.\n\n", st.StressLine())
		}
		if b.Contract == graph.HostPrefill {
			p("A prefill companion has no gate of its own: the figures are its decode graph `%s`'s, and it passes only if decoding after it equals decoding without it (a first divergence passes only at a tie, as in the gate):\n\n", b.Companion)
			var rows [][]string
			for _, cp := range g.Companion.Prompts {
				verdict := "identical"
				switch {
				case cp.Identical:
				case cp.Passed:
					verdict = fmt.Sprintf("tie at step %d (margin %.3f)", cp.FirstDivergence, cp.DivergenceMargin)
				default:
					verdict = fmt.Sprintf("**differ at step %d (margin %.3f)**", cp.FirstDivergence, cp.DivergenceMargin)
				}
				diff := fmt.Sprintf("%g", cp.MaxLogitDiff)
				if cp.DecodeOnlyFrom != "" {
					diff = "not measured (decode-only ids from the decode gate)"
				}
				rows = append(rows, []string{cp.Name, strconv.Itoa(cp.Blocks), verdict, diff})
			}
			writeMDTable(w, []string{"prompt", "prefill blocks", "greedy tokens with vs without the companion", "max logit difference"}, rows)
			continue
		}
		key, _ := json.Marshal([]any{b.SHA256, g})
		if prev, ok := shown[string(key)]; ok {
			p("Same bytes and same results as `%s` above.\n\n", prev)
			continue
		}
		shown[string(key)] = b.Path
		var rows [][]string
		for _, cp := range g.Prompts {
			div := "none"
			if cp.FirstDivergence >= 0 {
				div = fmt.Sprintf("token %d (%s, reference margin %.3f)", cp.FirstDivergence, cp.DivergenceVerdict, cp.DivergenceMargin)
			}
			verdict := "passed"
			if !cp.Passed {
				verdict = "**failed**: " + strings.Join(cp.Failures, "; ")
			}
			rows = append(rows, append([]string{cp.Name, strconv.Itoa(cp.Tokens), cp.TeacherForced, cp.Greedy, div, fmt.Sprintf("%.6f", cp.PrefillCosine)}, append(cardStatsCells(cp.Stats), verdict)...))
		}
		writeMDTable(w, append([]string{"prompt", "tokens", "teacher-forced top-1", "greedy", "first divergence", "prefill cosine"}, append(cardStatsHeader, "verdict")...), rows)
	}
}

// treeHint is the error for a card path that is a bundle, its asset, or a target directory
// rather than the export tree: it names the tree to give instead.
func treeHint(outDir string) error {
	if err := bundle.AssetHint(outDir); err != nil {
		return err
	}
	clean := filepath.Clean(outDir)
	if bundle.IsBundle(clean) {
		return exitcode.Badf("%s is one bundle; card takes the export tree holding <target>/<bundle>/: %s", outDir, filepath.Dir(filepath.Dir(clean)))
	}
	for _, t := range recipe.TargetNames() {
		if filepath.Base(clean) == t {
			if _, err := os.Stat(filepath.Join(clean, t)); err != nil {
				return exitcode.Badf("%s is a target directory; card takes the export tree above it: %s", outDir, filepath.Dir(clean))
			}
		}
	}
	return nil
}

// recordedName is the checkpoint name a bundle records; for bundles from before names were
// recorded, the last element of the path they recorded (the rest of a local path is not shown).
func recordedName(s bundle.SourceInfo) string {
	switch {
	case s.RepoID != "":
		return s.RepoID
	case s.Name != "":
		return s.Name
	}
	return filepath.Base(filepath.Clean(s.Ref))
}

// staleInTree is what `card` can tell is left over without knowing the recipe: staging
// directories of an interrupted export, and several bundles of one target with the same
// contract (one recipe makes one per contract; the others are from an earlier recipe or name,
// which `export --check` names exactly).
func staleInTree(outDir string, bundles []CardBundle) []string {
	var out []string
	for _, t := range recipe.TargetNames() {
		entries, _ := os.ReadDir(filepath.Join(outDir, t))
		for _, e := range entries {
			if e.IsDir() && strings.HasPrefix(e.Name(), ".qconv-tmp-") {
				out = append(out, fmt.Sprintf("%s/%s: a staging directory left by an interrupted export (safe to delete)", t, e.Name()))
			}
		}
	}
	groups := map[string][]string{}
	var keys []string
	for _, b := range bundles {
		k := b.Target + " " + b.Contract.String()
		if groups[k] == nil {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], b.Path)
	}
	for _, k := range keys {
		if g := groups[k]; len(g) > 1 {
			out = append(out, fmt.Sprintf("%d %s bundles (%s): one recipe makes one, so all but one are probably stale; `qconv export --check` with the current recipe names them", len(g), k, strings.Join(g, ", ")))
		}
	}
	return out
}
