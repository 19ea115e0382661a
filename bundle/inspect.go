package bundle

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"qconv/graph"
	"qconv/internal/exitcode"
	"qconv/recipe"
)

// TensorInfo is what the bytes say about one stored tensor.
type TensorInfo struct {
	Name        string  `json:"name"`
	DType       string  `json:"dtype"`       // the stored element type: f16, f32, si8, si4, ui8, ui4
	Format      string  `json:"format"`      // f16, f32, int8, int4, lut8, lut4 (as in the scheme table)
	Granularity string  `json:"granularity"` // block32, perchan, pertensor, g32, dense
	BlockSize   int     `json:"block_size"`
	Shape       []int64 `json:"shape"`
	ScaleShape  []int64 `json:"scale_shape,omitempty"` // blockwise scales or LUT [groups,1,entries,1]
	Bytes       int64   `json:"bytes"`
	// OneBlock marks int weights whose rows are one block wide (at most 32 weights, one scale
	// each): block-32 and per-channel store them identically, and they are named block32.
	OneBlock bool `json:"one_block,omitempty"`
}

// Inspection is `qconv inspect`: what a bundle's bytes hold, checked against its name and metadata.
type Inspection struct {
	Path      string          `json:"path"`
	Name      string          `json:"name"`
	HashOK    bool            `json:"hash_ok"`
	MainBytes int64           `json:"main_mlirb_bytes"`
	SHA256    string          `json:"main_mlirb_sha256"`
	Functions []FunctionIO    `json:"functions"`
	Tensors   []TensorInfo    `json:"tensors"`
	Derived   DerivedRecipe   `json:"derived"`
	Metadata  *BundleMetadata `json:"metadata"`
	// Layout is "bundle", or "bare" for an .aimodel asset published alone (its metadata.json
	// carries the qconv block; Metadata is then the bundle metadata it stands for).
	Layout string `json:"layout"`
	// NamingNote explains a legacy name the metadata records (published_as).
	NamingNote string   `json:"naming_note,omitempty"`
	Problems   []string `json:"problems"`

	// GateVerdict is the recorded gate as every reader states it: "not gated", "passed",
	// "FAILED", with the weakened thresholds named (GateVerdict).
	GateVerdict string `json:"gate_verdict"`
}

// DerivedRecipe is the part of the recipe the bytes alone determine.
type DerivedRecipe struct {
	Weights         string         `json:"weights"`           // the decoder Linear weights' scheme
	Head            string         `json:"head"`              // tied, int8, int4, f16, f32
	HeadGranularity string         `json:"head_granularity"`  // for an int head
	Compute         graph.DType    `json:"compute,omitzero"`  // the logits' dtype
	Contract        graph.Contract `json:"contract,omitzero"` // the contract @main follows
	headOneBlock    bool           // the head's rows are one block: block32 and perchan store it alike
}

// Inspect reads a bundle directory. It returns an error (exit 2) listing every disagreement
// between the bytes, the main.hash, the directory name and the metadata, after filling in what
// it could read.
func Inspect(dir string) (*Inspection, error) {
	if err := AssetHint(dir); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	in := &Inspection{Path: abs, Name: filepath.Base(abs), Layout: "bundle", Problems: []string{}}
	mdPath := filepath.Join(abs, "metadata.json")
	b, err := os.ReadFile(mdPath)
	if err != nil {
		return nil, exitcode.Badf("%s: not a bundle (%v)", abs, err)
	}
	md := &BundleMetadata{}
	if err := DecodeStrict(b, md); err != nil {
		return nil, exitcode.Badf("%s: %v", mdPath, err)
	}
	if md.MetadataVersion == "" {
		if bm, ok := BareMetadata(abs, b); ok {
			md, in.Layout, in.Name = bm, "bare", bm.Name
		}
	}
	in.Metadata = md
	if md.QConv != nil {
		in.GateVerdict = GateVerdict(md.QConv.Gate)
	}
	asset := md.Assets["main"]
	if asset == "" {
		return in, exitcode.Badf("%s: assets.main is missing", mdPath)
	}
	assetDir := filepath.Join(abs, asset)
	if in.Layout == "bare" {
		assetDir = abs
	}
	mlirb := filepath.Join(assetDir, "main.mlirb")
	m, mapping, err := ReadModule(mlirb)
	if err != nil {
		return in, exitcode.Bad(err)
	}
	defer unix.Munmap(mapping)
	in.MainBytes = int64(len(mapping))
	sum := sha256.Sum256(mapping)
	in.SHA256 = fmt.Sprintf("%x", sum)
	hash, err := os.ReadFile(filepath.Join(assetDir, "main.hash"))
	in.HashOK = err == nil && bytes.Equal(hash, sum[:])
	if !in.HashOK {
		in.Problems = append(in.Problems, fmt.Sprintf("%s: does not hold the SHA-256 of main.mlirb (%s)", filepath.Join(assetDir, "main.hash"), in.SHA256))
	}
	for _, f := range m.Funcs {
		if !f.Private {
			in.Functions = append(in.Functions, DescribeIO(f))
		}
	}
	main := m.Func("main")
	if main == nil {
		return in, exitcode.Badf("%s: no @main function", mlirb)
	}
	in.Tensors, in.Derived = describeWeights(m, main)
	in.check()
	in.checkGraph(m)
	if len(in.Problems) > 0 {
		return in, exitcode.Badf("%s: the bundle disagrees with itself:\n  %s", abs, strings.Join(in.Problems, "\n  "))
	}
	return in, nil
}

// weightKeySuffixes are the suffixes qconv's resource keys add to a tensor's name.
var weightKeySuffixes = []string{".q", ".scale", ".idx", ".lut"}

func tensorName(key string) string {
	for _, s := range weightKeySuffixes {
		if strings.HasSuffix(key, s) {
			return strings.TrimSuffix(key, s)
		}
	}
	return key
}

// describeWeights reads every weight constant's storage from the IR, and derives the recipe.
func describeWeights(m *graph.Module, f *graph.Func) ([]TensorInfo, DerivedRecipe) {
	infos := map[string]*TensorInfo{}
	var order []string
	get := func(name string) *TensorInfo {
		if t, ok := infos[name]; ok {
			return t
		}
		t := &TensorInfo{Name: name}
		infos[name] = t
		order = append(order, name)
		return t
	}
	resOf := func(v *graph.Value) (*graph.Resource, graph.Type, bool) {
		if v.Def == nil || v.Def.Name != graph.OpConstant {
			return nil, graph.Type{}, false
		}
		ra, ok := v.Def.Attrs["value"].(graph.ResourceAttr)
		return ra.Res, ra.Type, ok
	}
	consumed := map[*graph.Resource]bool{}
	// stored reads a decompression op's two constant operands (the data, and its scales or
	// LUT) into the tensor they store.
	stored := func(op *graph.Op) (t *TensorInfo, data, aux graph.Type, ok bool) {
		dr, dt, ok1 := resOf(op.Operands[0])
		ar, at, ok2 := resOf(op.Operands[1])
		if !ok1 || !ok2 {
			return nil, dt, at, false
		}
		consumed[dr], consumed[ar] = true, true
		t = get(tensorName(dr.Key))
		t.DType, t.Shape, t.ScaleShape = dt.DType.String(), dt.Shape, at.Shape
		t.Bytes = dr.Size + ar.Size
		t.Format = recipe.FormatOf(dt.DType)
		return t, dt, at, true
	}
	for _, op := range f.Body {
		switch op.Name {
		case graph.OpBlockwise:
			t, dt, st, ok := stored(op)
			if !ok {
				continue
			}
			in := dt.Shape[len(dt.Shape)-1]
			sc := st.Shape[len(st.Shape)-1]
			switch {
			case st.NumElements() == 1:
				t.Granularity = "pertensor"
			case sc == 1 && graph.OneBlockRows(in):
				t.Granularity, t.BlockSize, t.OneBlock = "block32", int(in), true
			case sc == 1 && in > 1:
				t.Granularity = "perchan"
			default:
				t.BlockSize = int(in / sc)
				t.Granularity = fmt.Sprintf("block%d", t.BlockSize)
			}
		case graph.OpLUTToDense:
			t, it, lt, ok := stored(op)
			if !ok {
				continue
			}
			// Groups of 32 rows are the scheme; one LUT for a tensor of another height is the
			// per-tensor fallback (a 32-row tensor's single group is both: it is named g32).
			groupRows := it.Shape[0] / lt.Shape[0]
			switch {
			case groupRows == 32:
				t.Granularity = "g32"
			case lt.Shape[0] == 1:
				t.Granularity = "pertensor"
			default:
				t.Granularity = fmt.Sprintf("g%d", groupRows)
			}
		}
	}
	for _, op := range f.Body {
		if r, t, ok := resOf(opResult(op)); ok && !consumed[r] {
			ti := get(tensorName(r.Key))
			ti.DType, ti.Format, ti.Shape, ti.Granularity, ti.Bytes = t.DType.String(), t.DType.String(), t.Shape, "dense", r.Size
		}
	}
	var out []TensorInfo
	for _, n := range order {
		out = append(out, *infos[n])
	}
	sort.SliceStable(out, func(i, j int) bool { return modelOrder(out[i].Name) < modelOrder(out[j].Name) })

	d := DerivedRecipe{Contract: contractOf(f)}
	// The compute dtype is the logits' (f32 only in the validation form); the stock contract casts
	// its logits to fp16 whatever it computes in, so there it is the key cache's.
	if r := f.Result(graph.OutLogits); r != nil {
		d.Compute = r.Value.Type.DType
	}
	if a := f.Arg(graph.StateKey); d.Contract == graph.Stock && a != nil {
		d.Compute = a.Value.Type.DType
	}
	// Decoder weights: the scheme every Linear layer shares (a mix is reported as such).
	// Rows of one block are block-32 and per-channel at once: they decide the scheme only when
	// no wider row does.
	schemes, oneBlock := map[string]bool{}, map[string]bool{}
	for _, t := range out {
		if DecoderLinear(t.Name) {
			if t.OneBlock {
				oneBlock[LinearScheme(t)] = true
			} else {
				schemes[LinearScheme(t)] = true
			}
		}
	}
	if len(schemes) == 0 || (len(schemes) == 1 && (schemes[string(recipe.FP16)] || schemes["f32"])) {
		for k := range oneBlock {
			schemes[k] = true
		}
	}
	// A Linear kept float because its shape does not take the scheme is listed per tensor in the
	// scheme table; the recipe is what the quantized ones hold.
	if len(schemes) > 1 {
		delete(schemes, string(recipe.FP16))
		delete(schemes, "f32")
		delete(schemes, "bf16") // kept in the bf16 compute dtype (macos-stock)
	}
	d.Weights = joinKeys(schemes)
	d.Head = "tied"
	for _, t := range out {
		if t.Name == "lm_head.weight" {
			switch t.Format {
			case "int8", "int4":
				d.Head, d.HeadGranularity, d.headOneBlock = t.Format, t.Granularity, t.OneBlock
			default:
				d.Head = recipe.HeadUntied // the checkpoint's own head, stored float
			}
		}
	}
	return out, d
}

func opResult(op *graph.Op) *graph.Value {
	if len(op.Results) == 0 {
		return &graph.Value{}
	}
	return op.Results[0]
}

// LinearScheme names a Linear weight's storage as a --weights value (WeightSchemeTable), or,
// for storage no --weights value gives, as "<format>-<granularity>" or the format.
func LinearScheme(t TensorInfo) string {
	for _, r := range recipe.WeightSchemeTable {
		if r.Matches(t.Format, t.Granularity) {
			return string(r.Scheme)
		}
	}
	if t.Format == "int8" || t.Format == "int4" {
		return t.Format + "-" + t.Granularity
	}
	return t.Format
}

func joinKeys(m map[string]bool) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, "+")
}

func contractOf(f *graph.Func) graph.Contract {
	switch {
	case f.Arg(graph.StateConvStates) != nil:
		return graph.Stock
	case f.Arg(graph.StateKey) != nil:
		return graph.Pipelined
	case f.Arg(graph.InPastK) != nil && f.Arg(graph.InInputIDs) != nil && f.Arg(graph.InInputIDs).Value.Type.Shape[1] > 1:
		return graph.HostPrefill
	case f.Arg(graph.InPastK) != nil:
		return graph.HostDecode
	}
	return 0
}

// modelOrder sorts tensor names embedding, layers by index, norm, head.
func modelOrder(name string) string {
	switch {
	case name == "embed_tokens.weight":
		return "0"
	case strings.HasPrefix(name, "layers."):
		var i int
		fmt.Sscanf(name, "layers.%d.", &i)
		return fmt.Sprintf("1%06d%s", i, name)
	case name == "norm.weight":
		return "2"
	}
	return "3" + name
}

// check compares the bytes with the metadata and the directory name.
func (in *Inspection) check() {
	md, d := in.Metadata, in.Derived
	bad := func(format string, args ...any) { in.Problems = append(in.Problems, fmt.Sprintf(format, args...)) }
	if md.Name != in.Name {
		bad("directory is named %q but metadata.json says %q", in.Name, md.Name)
	}
	if md.MetadataVersion != "0.2" || md.Kind != "llm" {
		bad("metadata.json: metadata_version %q kind %q, want \"0.2\" and \"llm\"", md.MetadataVersion, md.Kind)
	}
	if md.Assets["main"] != md.Name+".aimodel" {
		bad("metadata.json: assets.main is %q, want %q", md.Assets["main"], md.Name+".aimodel")
	}
	q := md.QConv
	if q == nil {
		bad("metadata.json has no qconv block: cannot check the recipe against the bytes")
		return
	}
	r := q.Recipe
	if string(r.Weights) != d.Weights {
		bad("metadata says weights %s, the bytes hold %s", r.Weights, d.Weights)
	}
	if r.Head != d.Head {
		bad("metadata says head %s, the bytes hold a %s head", r.Head, d.Head)
	} else if r.IntHead() && r.HeadGranularity != d.HeadGranularity {
		if d.headOneBlock && r.HeadGranularity == "perchan" {
			d.HeadGranularity = r.HeadGranularity // one scale per row of one block: the same bytes
		} else {
			bad("metadata says head granularity %s, the bytes hold %s", r.HeadGranularity, d.HeadGranularity)
		}
	}
	if r.Compute != d.Compute {
		bad("metadata says compute %s, the bytes compute in %s", r.Compute, d.Compute)
	}
	if q.Contract != d.Contract {
		bad("metadata says contract %s, @main follows %s", q.Contract, d.Contract)
	}
	if q.MainHash != "" && q.MainHash != in.SHA256 {
		bad("metadata records main.mlirb sha256 %s, the file's is %s", q.MainHash, in.SHA256)
	}
	// The name must be the one the recipe in the bytes gives (docs/constraints.md, constraint 8).
	t, err := recipe.TargetByName(q.Target)
	if err != nil {
		bad("metadata names unknown target %q", q.Target)
		return
	}
	derived := r
	derived.Weights = recipe.WeightScheme(d.Weights)
	derived.Head, derived.HeadGranularity = d.Head, d.HeadGranularity
	contract := d.Contract
	named := in.Name
	if pa := q.PublishedAs; pa != nil {
		// A legacy name is accepted only as recorded: this name, for the bytes named so.
		if pa.Name != in.Name {
			bad("metadata records the published name %q, the directory is %q", pa.Name, in.Name)
		}
		named = pa.DerivedName
	}
	short := recipe.ShortFromName(named, t, contract)
	want := recipe.BundleName(short, t, contract, &derived, q.PrefillTokens)
	switch {
	case want != named && q.PublishedAs != nil:
		bad("the bytes (weights %s, head %s %s) make the name %q, not the %q metadata records for the legacy name %q", d.Weights, d.Head, d.HeadGranularity, want, named, in.Name)
	case want != named:
		bad("the bytes (weights %s, head %s %s) make the name %q, not %q", d.Weights, d.Head, d.HeadGranularity, want, in.Name)
	case q.PublishedAs != nil:
		in.NamingNote = q.PublishedAs.NamingNote()
	}
	// The scheme table must describe the bytes.
	byName := map[string]TensorInfo{}
	for _, ti := range in.Tensors {
		byName[ti.Name] = ti
	}
	for _, p := range q.Tensors {
		ti, ok := byName[graph.SanitizeKey(p.Name)]
		if !ok {
			bad("metadata lists tensor %s, the bytes do not hold it", p.Name)
			continue
		}
		sameGran := p.Granularity == "" || ti.Granularity == p.Granularity || (ti.OneBlock && p.Granularity == "perchan")
		if ti.Format != p.Format || !sameGran {
			bad("tensor %s: metadata says %s %s, the bytes hold %s %s", p.Name, p.Format, p.Granularity, ti.Format, ti.Granularity)
		}
	}
}

// checkGraph holds the bytes to their target's device rules (graph.Verify) and to the context
// and recurrence dtype the metadata states.
func (in *Inspection) checkGraph(m *graph.Module) {
	q := in.Metadata.QConv
	if q == nil {
		return
	}
	t, err := recipe.TargetByName(q.Target)
	if err != nil {
		return // check() reported it
	}
	r := q.Recipe
	if err := graph.Verify(m, t.VerifyOptions(&r)); err != nil {
		in.Problems = append(in.Problems, fmt.Sprintf("the bytes break a %s device rule: %v", t.Device, err))
	}
	f := m.Func("main")
	for _, a := range f.Args {
		tt := a.Value.Type
		switch a.Name {
		case graph.StateRec, graph.StateRecurrentStates, graph.InRecState:
			if q.Recipe.StateDType != 0 && tt.DType != q.Recipe.StateDType {
				in.Problems = append(in.Problems, fmt.Sprintf("metadata says recurrence dtype %s, the bytes' %s is %s", q.Recipe.StateDType, a.Name, tt.DType))
			}
		case graph.InPastK:
			if ctx := in.Metadata.Language.MaxContextLength; tt.Rank() == 5 && tt.Shape[3] != int64(ctx) {
				in.Problems = append(in.Problems, fmt.Sprintf("metadata.json says max_context_length %d, the bytes' past_k holds %d positions", ctx, tt.Shape[3]))
			}
		}
	}
}

// WriteText prints a human summary.
func (in *Inspection) WriteText(w io.Writer) {
	fmt.Fprintf(w, "bundle      %s\n", in.Path)
	fmt.Fprintf(w, "main.mlirb  %d bytes, sha256 %s (main.hash %s)\n", in.MainBytes, in.SHA256, map[bool]string{true: "ok", false: "MISMATCH"}[in.HashOK])
	d := in.Derived
	head := headWords(d, in.HeadFormat())
	if in.Layout == "bare" {
		fmt.Fprintf(w, "layout      bare .aimodel asset (its metadata.json carries the qconv block)\n")
	}
	if in.NamingNote != "" {
		fmt.Fprintf(w, "name        %s\n", in.NamingNote)
	}
	fmt.Fprintf(w, "recipe      weights %s, %s head, compute %s, contract %s (from the bytes)\n", d.Weights, head, d.Compute, d.Contract)
	if q := in.Metadata.QConv; q != nil {
		if g := q.Gate; g != nil && !g.Skipped {
			fmt.Fprintf(w, "gate        %s: teacher-forced %s, greedy %s, min prefill cosine %.6f (recorded)\n", GateVerdict(g), g.TeacherForced, g.Greedy, g.MinPrefillCosine)
		} else {
			fmt.Fprintf(w, "gate        not gated (published with --no-gate: not checked against the fp32 reference)\n")
		}
		if g := q.Gate; g != nil && g.Stats != nil {
			fmt.Fprintf(w, "            %s\n", g.Stats.StatsLine())
		}
		if q.GateStress != nil {
			fmt.Fprintf(w, "gate        %s\n", q.GateStress.StressLine())
		}
	}
	for _, f := range in.Functions {
		fmt.Fprintf(w, "function    @%s\n", f.Name)
		for _, x := range f.Inputs {
			fmt.Fprintf(w, "  input     %-14s %s\n", x.Name, x.Type)
		}
		for _, x := range f.States {
			fmt.Fprintf(w, "  state     %-14s %s\n", x.Name, x.Type)
		}
		for _, x := range f.Outputs {
			fmt.Fprintf(w, "  output    %-14s %s\n", x.Name, x.Type)
		}
	}
	fmt.Fprintf(w, "tensors     %d\n", len(in.Tensors))
	for _, t := range in.Tensors {
		extra := ""
		if t.ScaleShape != nil {
			extra = fmt.Sprintf(" scales %v", t.ScaleShape)
		}
		fmt.Fprintf(w, "  %-44s %-5s %-9s %v%s %d bytes\n", t.Name, t.Format, t.Granularity, t.Shape, extra, t.Bytes)
	}
	for _, p := range in.Problems {
		fmt.Fprintf(w, "PROBLEM     %s\n", p)
	}
}

// HeadFormat is the stored format of the head: lm_head.weight's, or the embedding's when tied.
func (in *Inspection) HeadFormat() string {
	name := "embed_tokens.weight"
	if in.Derived.Head != recipe.HeadTied {
		name = "lm_head.weight"
	}
	for _, t := range in.Tensors {
		if t.Name == name {
			return t.Format
		}
	}
	return ""
}

// headWords describes a derived head for people: "tied fp16", "untied fp16", "int8 block32".
func headWords(d DerivedRecipe, headFormat string) string {
	switch d.Head {
	case recipe.HeadTied, recipe.HeadUntied:
		if headFormat == "" {
			return d.Head
		}
		return d.Head + " " + recipe.DTypeWords(headFormat)
	}
	if d.HeadGranularity != "" {
		return d.Head + " " + d.HeadGranularity
	}
	return d.Head
}
