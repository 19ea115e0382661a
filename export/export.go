// Package export orchestrates runs: for each target it plans the recipe (package recipe), serves
// the weights quantized on demand, lowers, writes the bundle atomically and deterministically,
// gates it (package gating) and publishes it; --check regenerates and compares.
package export

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"qconv/bundle"
	"qconv/gating"
	"qconv/graph"
	"qconv/graph/interp"
	"qconv/graph/mlir"
	"qconv/hf"
	"qconv/internal/atomicfile"
	"qconv/internal/exitcode"
	"qconv/lower"
	"qconv/oracle"
	"qconv/quant"
	"qconv/recipe"
)

// Options configure one export run.
type Options struct {
	Checkpoint  *hf.Checkpoint
	Targets     []*recipe.Target
	Flags       recipe.Flags
	OutDir      string
	GatePrompts []oracle.GatePrompt // nil: DefaultPrompts
	Gate        oracle.GateOptions
	NoGate      bool
	DryRun      bool
	Check       bool
	IgnoreStale bool // --check: do not count bundles this run did not produce as drift
	Version     string
	Progress    Progress   // nil: silent
	Stress      StressMode // the fp16-accumulation stress gate ("" = record; stress.go)
	// Specs, when set, replace Targets and Flags: one artifact each, with its own recipe and
	// published path (qconv release).
	Specs []Spec
	// Date, when set, is every bundle's creation date (else SOURCE_DATE_EPOCH or now; --check
	// then reuses the date the bundle on disk records).
	Date time.Time

	created *[]string // directories Run made (removed again if they stay empty)
}

// Progress receives phase updates (the command draws bars on stderr).
type Progress interface {
	Phase(name string, total int64, bytes bool) // start a phase of total units (bytes, or steps)
	Add(n int64)                                // units done
	Done()
}

type nopProgress struct{}

func (nopProgress) Phase(string, int64, bool) {}
func (nopProgress) Add(int64)                 {}
func (nopProgress) Done()                     {}

// Result is what an export produced.
type Result struct {
	Bundles []BundleResult `json:"bundles"`
	Passed  bool           `json:"passed"`
	Drift   []string       `json:"drift,omitempty"` // --check: what differs
	Stale   []string       `json:"stale,omitempty"` // --check --ignore-stale: bundles this run did not produce
	DryRun  bool           `json:"dry_run,omitempty"`
}

// BundleResult describes one bundle.
type BundleResult struct {
	Target   string              `json:"target"`
	Name     string              `json:"name"`
	Path     string              `json:"path,omitempty"` // absent when not published
	Recipe   recipe.Recipe       `json:"recipe"`
	Contract string              `json:"contract"`
	Gate     bundle.GateSummary  `json:"gate"`
	Stress   *bundle.StressGate  `json:"gate_stress,omitempty"` // the fp16-accumulation stress (stress.go)
	Warnings []string            `json:"warnings,omitempty"`    // known slow shapes (recipe/slowshapes.go)
	Bytes    int64               `json:"bytes"`
	Tensors  []bundle.TensorPlan `json:"tensors,omitempty"`
	Report   *oracle.GateReport  `json:"-"`
	Phases   map[string]float64  `json:"phase_seconds,omitempty"`
	// GateOnly marks the decode partner a lone prefill companion was gated against (Specs):
	// built and gated, not published.
	GateOnly bool `json:"gate_only,omitempty"`
	// Reused counts the resources copied from an earlier bundle of the run instead of quantized
	// again (identical tensor, scheme and storage).
	Reused int64 `json:"reused_resources"`

	// BytesEstimated marks a --dry-run size: the weights' bytes only (main.mlirb adds the graph
	// and alignment padding); a written bundle's Bytes is main.mlirb's exact size.
	BytesEstimated bool `json:"bytes_estimated,omitempty"`
}

// job is one bundle being built.
type job struct {
	target   *recipe.Target
	recipe   recipe.Recipe
	contract graph.Contract
	name     string
	dir      string // final path
	tmp      string // staging directory
	src      *weightSource
	module   *graph.Module // lowered
	shipped  *graph.Module // read back from the written bytes
	mapping  []byte
	sum      [32]byte
	size     int64
	report   *oracle.GateReport
	extra    *bundle.CompanionCheck // the companion (prefill) or entrypoint (stock) check
	partner  *job
	twin     *job              // an earlier job whose bundle bytes this one shares (ios-ane/macos)
	io       bundle.FunctionIO // @main's contract as read back from the bytes
	sigs     map[string]string // resource key -> signature of its bytes (weightSource.sigs)
	plans    []bundle.TensorPlan
	result   BundleResult
	derived  string              // the name the naming rule gives (Specs; "" = name)
	bare     bool                // publish the .aimodel asset alone (Specs)
	alias    *bundle.PublishedAs // the published name differs from derived (Specs)
	hidden   bool                // gate partner only: never published (Specs)
	reused   atomic.Int64        // resources copied from an earlier bundle
}

// Run exports every requested target. Nothing is published unless every bundle was written,
// read back, verified and gated; a failed gate returns an exitcode.GateFailed error with the
// result (Passed false, no paths), and --check returns exitcode.Drift when anything differs.
func Run(ctx context.Context, opt Options) (*Result, error) {
	if opt.Progress == nil {
		opt.Progress = nopProgress{}
	}
	if opt.Gate.Tokens == 0 {
		opt.Gate = oracle.DefaultGateOptions()
	}
	ck := opt.Checkpoint
	short := recipe.ShortName(ck)
	var jobs []*job
	if len(opt.Specs) > 0 {
		var err error
		if jobs, err = planSpecs(opt, short); err != nil {
			return nil, err
		}
	}
	for _, t := range opt.Targets {
		r, err := opt.Flags.Apply(t)
		if err != nil {
			return nil, err
		}
		if err := r.ForCheckpoint(ck.Config); err != nil {
			return nil, err
		}
		contracts := []graph.Contract{t.Contract}
		if t.Prefill != 0 {
			contracts = append(contracts, t.Prefill)
		}
		var dec *job
		for _, c := range contracts {
			j := &job{target: t, recipe: r, contract: c, name: recipe.BundleName(short, t, c, &r, recipe.PrefillTokens)}
			j.dir = filepath.Join(opt.OutDir, t.Name, j.name)
			for _, o := range jobs {
				sameBytes := o.target.SameBytesAs == t.Name || t.SameBytesAs == o.target.Name
				if sameBytes && o.contract == c && o.recipe == r && o.twin == nil {
					j.twin = o
				}
			}
			if c == graph.HostPrefill {
				j.partner = dec
			} else {
				dec = j
			}
			jobs = append(jobs, j)
		}
	}
	res := &Result{Passed: true, DryRun: opt.DryRun}
	for i, j := range jobs {
		if err := j.lower(ck); err != nil {
			return nil, err
		}
		earlier := jobs[:i]
		j.src.reuse = func(key, sig string, size int64) ([]byte, *quant.Metrics) {
			b, m := reuseWritten(earlier, key, sig, size)
			if b != nil {
				j.reused.Add(1)
			}
			return b, m
		}
		j.result = BundleResult{Target: j.target.Name, Name: j.name, Recipe: j.recipe, Contract: j.contract.String(), Phases: map[string]float64{}, GateOnly: j.hidden}
		j.result.Warnings = j.target.SlowNotes(&j.recipe)
	}
	if opt.DryRun {
		for _, j := range jobs {
			j.result.Tensors = j.src.Plans(ck.Config.ExpectedTensors())
			for _, p := range j.result.Tensors {
				j.result.Bytes += p.Bytes
			}
			j.result.Gate = bundle.GateSummary{Skipped: true}
			j.result.BytesEstimated = true
			res.Bundles = append(res.Bundles, j.result)
		}
		return res, nil
	}

	var digests []bundle.FileDigestJSON
	var srcBytes int64
	for _, f := range ck.Files {
		srcBytes += f.Size
	}
	opt.Progress.Phase("reading checkpoint", srcBytes, true)
	ds, err := ck.Digests(opt.Progress.Add)
	opt.Progress.Done()
	if err != nil {
		return nil, fmt.Errorf("hashing the checkpoint: %w", err)
	}
	for _, d := range ds {
		digests = append(digests, bundle.FileDigestJSON(d))
	}
	var ref *oracle.Model
	var prompts []oracle.GatePrompt
	if !opt.NoGate {
		var err error
		if ref, err = oracle.New(ck, oracle.Options{}); err != nil {
			return nil, fmt.Errorf("building the fp32 reference: %w", err)
		}
		prompts = opt.GatePrompts
		if prompts == nil {
			if prompts, err = DefaultPrompts(ck); err != nil {
				return nil, err
			}
		}
		for _, j := range jobs {
			if len(gating.FitPrompts(prompts, j.contract, j.recipe.Context, opt.Gate.Tokens)) == 0 {
				return nil, exitcode.Badf("--max-ctx %d: no gate prompt fits bundle %s's static context with %d generated tokens; give shorter --gate-prompts or a larger --max-ctx", j.recipe.Context, j.name, opt.Gate.Tokens)
			}
		}
	}
	date, err := creationTime()
	if err != nil {
		return nil, exitcode.Bad(err)
	}
	if !opt.Date.IsZero() {
		date = opt.Date.UTC()
	}

	// Stage everything; clean up whatever is not published, including directories this run
	// made that stayed empty (os.Remove leaves a directory that holds anything).
	var created []string
	opt.created = &created
	defer func() {
		for _, j := range jobs {
			j.release()
			if j.tmp != "" {
				os.RemoveAll(j.tmp)
			}
		}
		for i := len(created) - 1; i >= 0; i-- {
			os.Remove(created[i])
		}
	}()
	for _, j := range jobs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		d := date
		if opt.Check && opt.Date.IsZero() {
			if prev, ok := recordedDate(j.dir); ok {
				d = prev
			}
		}
		if j.twin != nil {
			err = j.copyTwin(opt)
		} else {
			err = j.write(ctx, opt, d)
		}
		if err != nil {
			return nil, err
		}
		dropStaged(jobs) // the next write faults back only what it copies (memory.go)
	}
	// Gate (pairs gate together: the prefill companion is judged against its decode graph).
	defer tightenGC(ck.NumParams())() // memory.go
	defer shareReference(ref, jobs)() // gate_share.go
	for _, j := range jobs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if opt.NoGate {
			j.result.Gate = bundle.NotGated()
			continue
		}
		if j.twin != nil {
			// Identical bytes were gated as the twin; its verdict is this bundle's.
			j.report, j.extra, j.result.Gate, j.result.Report = j.twin.report, j.twin.extra, j.twin.result.Gate, j.twin.result.Report
			j.result.Stress = j.twin.result.Stress
			j.result.Warnings = slices.Clone(j.twin.result.Warnings) // same device and recipe: same notes
			if !j.result.Gate.Passed {
				res.Passed = false
			}
			continue
		}
		start := time.Now()
		opt.Progress.Phase("gating "+j.name, 100, false)
		last := 0
		gopt := opt
		gopt.Gate.Progress = func(done, total int) {
			pct := 100 * done / max(total, 1)
			opt.Progress.Add(int64(pct - last))
			last = pct
		}
		residentForGate(opt, jobs, j) // the gate holds only what it reads (memory.go)
		err := j.gate(ctx, ref, prompts, gopt)
		opt.Progress.Done()
		if err != nil {
			return nil, err
		}
		j.result.Phases["gate"] = time.Since(start).Seconds()
		if !j.result.Gate.Passed {
			res.Passed = false
		}
		releaseUnneeded(jobs)
	}
	for _, j := range jobs {
		if err := j.finish(ck, opt, date, digests); err != nil {
			return nil, err
		}
	}
	if !res.Passed {
		for _, j := range jobs {
			res.Bundles = append(res.Bundles, j.result)
		}
		return res, exitcode.Wrap(exitcode.GateFailed, fmt.Errorf("gate failed; nothing was published"))
	}
	if opt.Check {
		produced := map[string]bool{}
		for _, j := range jobs {
			if j.hidden {
				res.Bundles = append(res.Bundles, j.result)
				continue
			}
			diffs, err := compareDirs(j.publishSource(), j.dir)
			if err != nil {
				return nil, err
			}
			res.Drift = append(res.Drift, diffs...)
			j.result.Path = j.dir
			res.Bundles = append(res.Bundles, j.result)
			produced[j.dir] = true
		}
		stale, err := staleBundles(opt.OutDir, produced)
		if err != nil {
			return nil, err
		}
		if opt.IgnoreStale {
			res.Stale = stale
		} else {
			res.Drift = append(res.Drift, stale...)
		}
		if len(res.Drift) > 0 {
			return res, exitcode.Wrap(exitcode.Drift, fmt.Errorf("--check: %d difference(s) from the bundles on disk", len(res.Drift)))
		}
		return res, nil
	}
	for _, j := range jobs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		j.release()
		if j.hidden {
			res.Bundles = append(res.Bundles, j.result)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(j.dir), atomicfile.DirPerm); err != nil {
			return nil, err
		}
		if err := publish(j.publishSource(), j.dir); err != nil {
			return nil, fmt.Errorf("publishing %s: %w", j.dir, err)
		}
		if !j.bare {
			j.tmp = ""
		}
		j.result.Path = j.dir
		res.Bundles = append(res.Bundles, j.result)
	}
	return res, nil
}

func (j *job) lowerOptions(src lower.WeightSource) lower.Options {
	t, r := j.target, &j.recipe
	return lower.Options{
		Contract: j.contract, Compute: r.Compute, StateDType: t.StateDType(r), NormDType: t.NormDType(r),
		Context: r.Context, PrefillTokens: recipe.PrefillTokens, GreedyHead: j.contract != graph.Pipelined,
		UntieHead: r.IntHead(), Weights: src,
	}
}

func (j *job) lower(ck *hf.Checkpoint) error {
	j.src = newWeightSource(ck, j.target, &j.recipe)
	m, err := lower.Lower(ck.Config, j.lowerOptions(j.src))
	if err != nil {
		return err
	}
	if err := graph.Verify(m, j.target.VerifyOptions(&j.recipe)); err != nil {
		return fmt.Errorf("bundle %s: %w", j.name, err)
	}
	j.module = m
	return nil
}

// ctxWriter fails writes once ctx is cancelled, so Ctrl-C stops a long write promptly.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
	p   Progress
}

func (c ctxWriter) Write(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.w.Write(b)
	c.p.Add(int64(n))
	return n, err
}

// write streams main.mlirb (quantizing on the way), its hash and the asset metadata into a
// staging directory beside the destination, then maps the file and reads the module back, so
// everything after this point (verify, gate, inspect) sees the shipped bytes.
func (j *job) write(ctx context.Context, opt Options, date time.Time) error {
	asset, err := j.stage(opt)
	if err != nil {
		return err
	}
	var total int64
	for _, r := range j.module.Resources {
		total += r.Size
	}
	start := time.Now()
	opt.Progress.Phase("quantize+write "+j.name, total, true)
	path := filepath.Join(asset, "main.mlirb")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, atomicfile.FilePerm)
	if err != nil {
		return err
	}
	sum, size, err := writeMLIRBTo(f, ctxWriter{ctx, f, opt.Progress}, j.module, "qconv "+opt.Version)
	opt.Progress.Done()
	if err != nil {
		return fmt.Errorf("writing %s: %w", j.dir, err) // names the destination; a full disk is exit 2
	}
	j.sum, j.size = sum, size
	j.result.Reused = j.reused.Load()
	j.result.Phases["quantize_write"] = time.Since(start).Seconds()
	j.plans = j.src.Plans(opt.Checkpoint.Config.ExpectedTensors())
	j.sigs = j.src.sigs
	j.src = nil // the lowered module's lazy resources are no longer needed
	if err := atomicfile.WriteNew(filepath.Join(asset, "main.hash"), sum[:]); err != nil {
		return err
	}
	am := bundle.AssetMetadata{
		Producer: "qconv " + opt.Version, AssetVersion: "2.0", CreationDate: date.Format(time.RFC3339),
		Description: fmt.Sprintf("%s: Qwen3.5 %s graph for the %s, exported by qconv from %s", j.name, j.contract, j.target.Device, recipe.ShortName(opt.Checkpoint)),
	}
	b, err := marshalJSON(am)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteNew(filepath.Join(asset, "metadata.json"), b); err != nil {
		return err
	}
	// Read the shipped bytes back.
	start = time.Now()
	shipped, mapping, err := bundle.ReadModule(path)
	if err != nil {
		return fmt.Errorf("reading back %s: %w", j.name, err)
	}
	j.shipped, j.mapping = shipped, mapping
	j.io = bundle.DescribeIO(shipped.Func("main"))
	if err := graph.Verify(shipped, j.target.VerifyOptions(&j.recipe)); err != nil {
		return fmt.Errorf("bundle %s as written: %w", j.name, err)
	}
	j.module = nil
	j.result.Phases["read_back"] = time.Since(start).Seconds()
	j.result.Bytes = size
	return nil
}

// stage makes the staging directory beside the destination (so publishing is a rename on one
// filesystem) and its empty asset directory, whose path it returns.
func (j *job) stage(opt Options) (string, error) {
	if opt.Check {
		// --check publishes nothing: stage under $TMPDIR, so it needs no write access to the tree.
		tmp, err := os.MkdirTemp("", ".qconv-check-"+j.name+"-")
		if err != nil {
			return "", exitcode.Badf("staging in %s: %w", os.TempDir(), err)
		}
		j.tmp = tmp
		asset := filepath.Join(tmp, j.name+".aimodel")
		return asset, os.Mkdir(asset, atomicfile.DirPerm)
	}
	parent := filepath.Join(opt.OutDir, j.target.Name)
	// Remember the directories this run creates, so a run that publishes nothing removes them.
	for _, d := range []string{opt.OutDir, parent} {
		if _, err := os.Stat(d); os.IsNotExist(err) && opt.created != nil {
			*opt.created = append(*opt.created, d)
		}
	}
	if err := os.MkdirAll(parent, atomicfile.DirPerm); err != nil {
		return "", exitcode.Badf("output directory %s: %w", parent, err)
	}
	tmp, err := os.MkdirTemp(parent, ".qconv-tmp-"+j.name+"-")
	if err != nil {
		return "", exitcode.Badf("output directory %s: %w", parent, err)
	}
	j.tmp = tmp
	// MkdirTemp makes 0700; the published bundle directory gets what mkdir would give it.
	if err := os.Chmod(tmp, atomicfile.DirMode()); err != nil {
		return "", exitcode.Badf("output directory %s: %w", parent, err)
	}
	asset := filepath.Join(tmp, j.name+".aimodel")
	return asset, os.Mkdir(asset, atomicfile.DirPerm)
}

// copyTwin stages a copy of the twin's asset (identical bytes) and reads it back.
func (j *job) copyTwin(opt Options) error {
	dst, err := j.stage(opt)
	if err != nil {
		return err
	}
	src := filepath.Join(j.twin.tmp, j.twin.name+".aimodel")
	for _, f := range []string{"main.mlirb", "main.hash", "metadata.json"} {
		if err := copyFileNew(filepath.Join(dst, f), filepath.Join(src, f)); err != nil { // file to file, not through the heap
			return err
		}
	}
	j.sum, j.size, j.plans = j.twin.sum, j.twin.size, j.twin.plans
	j.src, j.module = nil, nil
	shipped, mapping, err := bundle.ReadModule(filepath.Join(dst, "main.mlirb"))
	if err != nil {
		return err
	}
	j.shipped, j.mapping = shipped, mapping
	j.io = j.twin.io
	j.result.Bytes = j.size
	return nil
}

// writeMLIRBTo streams the bytecode through w (which also writes f), returning hash and size.
func writeMLIRBTo(f *os.File, w io.Writer, m *graph.Module, producer string) ([32]byte, int64, error) {
	var sum [32]byte
	h := newHashCounter(w)
	bw := bufioWriter(h)
	if err := mlir.WriteBytecode(bw, m, producer); err != nil {
		f.Close()
		return sum, 0, err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return sum, 0, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return sum, 0, err
	}
	if err := f.Close(); err != nil {
		return sum, 0, err
	}
	copy(sum[:], h.h.Sum(nil))
	return sum, h.n, nil
}

func (j *job) release() {
	if j.mapping != nil {
		unix.Munmap(j.mapping)
		j.mapping = nil
		j.shipped = nil
	}
}

func (j *job) gate(ctx context.Context, ref *oracle.Model, prompts []oracle.GatePrompt, opt Options) error {
	if j.contract == graph.Stock {
		return j.gateStock(ctx, ref, prompts, opt) // gate_stock.go
	}
	if j.contract != graph.HostPrefill {
		rep, err := oracle.Gate(ref, func() (oracle.Candidate, error) {
			s, err := interp.NewSession(j.shipped, nil)
			if err != nil {
				return nil, err
			}
			return gating.WithContext(ctx, gating.SessionCandidate(s)), nil
		}, gating.FitPrompts(prompts, j.contract, j.recipe.Context, opt.Gate.Tokens), opt.Gate)
		if err != nil {
			return gating.GateError(fmt.Errorf("gating %s: %w", j.name, err))
		}
		j.report = rep
		j.result.Gate = gating.Summarize(rep)
		j.result.Report = rep
		return j.stressGate(ctx, ref, gating.FitPrompts(prompts, j.contract, j.recipe.Context, opt.Gate.Tokens), opt.Gate, opt.Stress)
	}
	// A companion has no gate of its own: it is judged by its decode partner's report and the
	// companion check (gateSummaryOf).
	dec := j.partner
	cc, err := gating.CheckCompanion(dec.shipped, j.shipped, gating.FitPrompts(prompts, j.contract, j.recipe.Context, opt.Gate.Tokens), opt.Gate, dec.report)
	if err != nil {
		return fmt.Errorf("gating %s: %w", j.name, err)
	}
	j.extra = cc
	j.report = dec.report
	j.result.Gate = gating.SummaryOf(dec.report, cc)
	j.result.Report = dec.report
	return nil
}

// reuseWritten finds a resource an earlier bundle of the run wrote with the same key, size and
// signature, and returns its bytes (from that bundle's mapping) and its tensor's metrics.
func reuseWritten(earlier []*job, key, sig string, size int64) ([]byte, *quant.Metrics) {
	for _, o := range earlier {
		if o.shipped == nil || o.sigs[key] != sig {
			continue
		}
		r := o.shipped.Resource(key)
		if r == nil || r.Size != size || int64(len(r.Data)) != size {
			continue
		}
		var m *quant.Metrics
		for _, p := range o.plans {
			if sig == planSignature(&p, o.recipe.Compute) {
				m = p.Metrics
			}
		}
		return r.Data, m
	}
	return nil, nil
}

// releaseUnneeded unmaps the shipped bytes of gated jobs that no job still to be gated needs
// (as its decode partner or twin), so a multi-target run does not keep every bundle mapped.
func releaseUnneeded(jobs []*job) {
	for _, j := range jobs {
		if j.report == nil || j.mapping == nil {
			continue
		}
		needed := false
		for _, o := range jobs {
			if o.report == nil && (o.partner == j || o.twin == j) {
				needed = true
			}
		}
		if !needed {
			j.release()
		}
	}
}

// finish writes the bundle metadata and the tokenizer into the staging directory.
func (j *job) finish(ck *hf.Checkpoint, opt Options, date time.Time, digests []bundle.FileDigestJSON) error {
	cfg := ck.Config
	tokenizer := ck.RepoID
	if tokenizer == "" {
		tokenizer = recipe.ShortName(ck)
	}
	comp := j.recipe.Compression()
	md := bundle.BundleMetadata{
		MetadataVersion: "0.2", Kind: "llm", Name: j.name,
		Assets: map[string]string{"main": j.name + ".aimodel"},
		Language: bundle.LanguageMetadata{
			Tokenizer: tokenizer, VocabSize: cfg.VocabSize, MaxContextLength: j.recipe.Context,
			EmbeddedTokenizer: true, FunctionMap: map[string][]string{"main": {"main"}},
		},
		Source:      bundle.SourceMetadata{ModelDefinition: "qconv", HFModelID: ck.RepoID},
		Compression: comp,
		Compilation: bundle.CompilationInfo{Date: date.Format(time.RFC3339), Targets: []string{}},
	}
	md.Language.States = bundle.LanguageStates(j.contract)
	q := &bundle.QConvBlock{
		Version: opt.Version, Target: j.target.Name, Device: j.target.Device.String(), Contract: j.contract,
		Recipe: j.recipe, Tensors: j.plans,
		Checkpoint: sourceInfo(ck, digests),
		MainHash:   fmt.Sprintf("%x", j.sum), MainBytes: j.size,
	}
	q.Function = j.io
	if j.contract == graph.HostPrefill {
		q.PrefillTokens = recipe.PrefillTokens
		q.Companion = j.partner.name
	} else if j.partner == nil && j.target.Prefill != 0 {
		q.Companion = recipe.BundleName(recipe.ShortName(ck), j.target, j.target.Prefill, &j.recipe, recipe.PrefillTokens)
	}
	if j.report != nil {
		gs := j.result.Gate
		q.Gate = &gs
		q.GateStress = j.result.Stress
		q.GateReport = &bundle.GateReportRecord{Report: j.report, Companion: j.extra}
	} else if opt.NoGate {
		ng := bundle.NotGated()
		q.Gate = &ng
		q.Notes = append(q.Notes, "published with --no-gate: not checked against the fp32 reference")
	}
	q.PublishedAs = j.alias
	q.Notes = append(q.Notes, j.result.Warnings...)
	if j.recipe.AllowDelegate {
		q.Notes = append(q.Notes, "--allow-known-delegate-bugs: per-channel int8 on a GPU target is known to give garbage logits on the current delegate")
	}
	if j.bare {
		return j.finishBare(opt, date, q)
	}
	copied, err := copyTokenizer(ck.Dir, filepath.Join(j.tmp, "tokenizer"))
	if err != nil {
		return fmt.Errorf("copying the tokenizer: %w", err)
	}
	if !slices.Contains(copied, "tokenizer.json") {
		// The runtime would otherwise look for tokenizer/tokenizer.json; without one it fetches
		// the tokenizer by the id in language.tokenizer.
		md.Language.EmbeddedTokenizer = false
		q.Notes = append(q.Notes, "the checkpoint has no tokenizer.json: none is embedded")
	}
	md.QConv = q
	b, err := marshalJSON(md)
	if err != nil {
		return err
	}
	return atomicfile.WriteNew(filepath.Join(j.tmp, "metadata.json"), b)
}

// recordedDate is the creation date an existing bundle recorded (for --check).
func recordedDate(dir string) (time.Time, bool) {
	b, err := os.ReadFile(filepath.Join(dir, "metadata.json"))
	if err != nil {
		return time.Time{}, false
	}
	var md bundle.BundleMetadata
	if err := bundle.DecodeStrict(b, &md); err != nil {
		return time.Time{}, false
	}
	if bm, ok := bundle.BareMetadata(dir, b); ok && md.MetadataVersion == "" {
		md = *bm
	}
	t, err := time.Parse(time.RFC3339, md.Compilation.Date)
	return t, err == nil
}
