// Package recipe is the single owner of what a bundle applies and what it is called: the target
// table, recipes and the flags that make them, the weight-scheme table, known slow shapes, and
// bundle names derived from the applied recipe (docs/naming.md). Everything that writes, reads,
// inspects or describes a bundle consults it.
package recipe

import (
	"fmt"
	"sort"
	"strings"

	"qconv/graph"
	"qconv/hf"
	"qconv/internal/exitcode"
	"qconv/quant"
)

// WeightScheme is how the decoder's Linear weights are stored.
type WeightScheme string

const (
	FP16        WeightScheme = "fp16"
	Int8Block32 WeightScheme = "int8-block32"
	Int8LUT     WeightScheme = "int8-lut"
	Int4Block32 WeightScheme = "int4-block32"
	Int4LUT     WeightScheme = "int4-lut"
	Int8PerChan WeightScheme = "int8-perchan"
)

// WeightSchemes lists the --weights values, in WeightSchemeTable's order (community mode aliases
// are in weightAliases).
var WeightSchemes = func() []WeightScheme {
	var out []WeightScheme
	for _, r := range WeightSchemeTable {
		out = append(out, r.Scheme)
	}
	return out
}()

// Recipe is what a bundle applies. Every field shows in the bytes and in the bundle's name and
// metadata; nothing here is parsed without being applied. The typed fields are recorded as text
// (quant.Scheme, graph.DType marshal themselves), so metadata reads back into the same values.
type Recipe struct {
	Weights WeightScheme `json:"weights"`
	// Head: "tied" (float, shares the embedding), "untied" (the checkpoint's own float
	// lm_head), or an int width ("int8", "int4"); see naming.go.
	Head            string `json:"head"`
	HeadGranularity string `json:"head_granularity,omitempty"` // block32|block16|block8|perchan (int head)
	Context         int    `json:"max_context_length"`
	AllowDelegate   bool   `json:"allow_known_delegate_bugs,omitempty"`
	// HeadScheme is an int head's scale scheme; a float head has none (nil).
	HeadScheme *quant.Scheme `json:"head_scheme,omitempty"`
	BodyScheme quant.Scheme  `json:"scheme"`
	Compute    graph.DType   `json:"compute"` // f16 (device), bf16 (macos-stock, Apple's) or f32 (validation form)
	// StateDType is the recurrence dtype the target's rule gives this recipe (Target.StateDType),
	// recorded so inspect can hold the bytes to it.
	StateDType     graph.DType `json:"recurrence_dtype,omitzero"`
	headOverridden bool
	// headFlags names the flag that chose an int head (--head, --head-sym, --head-granularity
	// or a --weights alias); "" when the head is the target's default.
	headFlags string
}

// IntHeadScheme is the int head's scale scheme (absmax when a recipe read back does not say).
func (r *Recipe) IntHeadScheme() quant.Scheme {
	if r.HeadScheme == nil {
		return quant.Absmax
	}
	return *r.HeadScheme
}

// Target is one row of the target table.
type Target struct {
	Name     string
	Device   graph.Device
	Contract graph.Contract
	// Prefill is the companion contract exported beside the decode bundle (ios-gpu), or 0.
	Prefill graph.Contract
	// SameBytesAs names a target whose bundle bytes this one shares (macos = ios-ane).
	SameBytesAs string
	Default     Recipe
	About       string
	// ByNameOnly keeps the target out of "--target all": a different engine contract, asked for
	// by name, so that existing `--target all --check` trees do not drift when it is added.
	ByNameOnly bool
}

// Targets is the target table (docs/targets.md). Defaults follow the published bundles.
var Targets = []*Target{
	{
		Name: "gpu-pipelined", Device: graph.GPU, Contract: graph.Pipelined,
		Default: Recipe{Weights: Int8Block32, Head: "tied", BodyScheme: quant.Absmax, Compute: graph.F16, Context: 4096},
		About:   "decode-only loop-free step, [1,1] query, dynamic KV, 4 states; iOS + macOS GPU",
	},
	{
		Name: "ios-gpu", Device: graph.GPU, Contract: graph.HostDecode, Prefill: graph.HostPrefill,
		Default: Recipe{Weights: Int8LUT, Head: "tied", BodyScheme: quant.Absmax, Compute: graph.F16, Context: 2048},
		About:   "static monolith with host-managed caches and greedy argmax, plus a 16-token prefill companion",
	},
	{
		Name: "ios-ane", Device: graph.ANE, Contract: graph.Pipelined,
		Default: Recipe{Weights: Int8LUT, Head: "tied", BodyScheme: quant.Absmax, Compute: graph.F16, Context: 4096},
		About:   "one dynamic graph, 4 states, fp16 recurrence; iPhone Neural Engine",
	},
	{
		Name: "macos", Device: graph.ANE, Contract: graph.Pipelined, SameBytesAs: "ios-ane",
		Default: Recipe{Weights: Int8LUT, Head: "tied", BodyScheme: quant.Absmax, Compute: graph.F16, Context: 4096},
		About:   "the ios-ane bundle for macOS (identical bytes)",
	},
	{
		// Apple's own Qwen3.5 contract (docs/apple-qwen35-contract.md): the stock llm-runner and
		// Foundation Models load it unpatched. int8 per-block-32 with the untied int8 per-block-32
		// absmax head, the published ship configuration the gate passes (Apple's default, uint4
		// per-block-32, fails the gate on Qwen3.5: constraint 5). bf16 compute and states as
		// Apple's, fp16 logits.
		Name: "macos-stock", Device: graph.GPU, Contract: graph.Stock, ByNameOnly: true,
		Default: Recipe{Weights: Int8Block32, Head: "int8", HeadGranularity: "block32", BodyScheme: quant.Absmax, Compute: graph.BF16, Context: 4096},
		About:   "Apple's stock Qwen3.5 contract: main + prefill entrypoints, dynamic query, keyCache/valueCache/convStates/recurrentStates; macOS",
	},
}

// TargetByName looks a target up.
func TargetByName(name string) (*Target, error) {
	for _, t := range Targets {
		if t.Name == name {
			return t, nil
		}
	}
	var names []string
	for _, t := range Targets {
		names = append(names, t.Name)
	}
	return nil, exitcode.Badf("flag --target: unknown target %q (one of: %s)", name, strings.Join(names, ", "))
}

// ParseTargets reads a --target list ("all" expands to every target, in table order).
func ParseTargets(list string) ([]*Target, error) {
	var out []*Target
	seen := map[string]bool{}
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		var ts []*Target
		if name == "all" {
			for _, t := range Targets {
				if !t.ByNameOnly {
					ts = append(ts, t)
				}
			}
		} else {
			t, err := TargetByName(name)
			if err != nil {
				return nil, exitcode.Badf("flag --target: unknown target %q (targets: %s, or all)", name, strings.Join(TargetNames(), ", "))
			}
			ts = []*Target{t}
		}
		for _, t := range ts {
			if !seen[t.Name] {
				seen[t.Name] = true
				out = append(out, t)
			}
		}
	}
	if len(out) == 0 {
		return nil, exitcode.Badf("flag --target: no target given (targets: gpu-pipelined, ios-gpu, ios-ane, macos, macos-stock, all)")
	}
	return out, nil
}

// StateDType is the recurrence dtype a target's graphs use (the rule is graph.RecurrenceDType,
// which the verifier consults too).
func (t *Target) StateDType(r *Recipe) graph.DType {
	return graph.RecurrenceDType(t.Device, r.Compute)
}

// NormDType is the dtype RMSNorm statistics run in (graph.NormDType).
func (t *Target) NormDType(r *Recipe) graph.DType {
	return graph.NormDType(t.Device, r.Compute)
}

// VerifyOptions are the device rules a bundle of this target and recipe is held to.
func (t *Target) VerifyOptions(r *Recipe) graph.VerifyOptions {
	return graph.VerifyOptions{Device: t.Device, AllowPerChannelGPU: r.AllowDelegate, Compute: r.Compute}
}

// Flags are the recipe-related command-line flags as typed ("" = not given).
type Flags struct {
	Weights         string
	Head            string
	HeadSym         bool
	HeadGranularity string
	Scheme          string
	Compute         string
	MaxCtx          int
	AllowDelegate   bool
}

// weightAliases maps the community exporter's mode names onto recipes: weights, and the head
// they imply ("" = leave the head alone).
var weightAliases = map[string]struct {
	weights WeightScheme
	head    string
}{
	"int8lin": {Int8Block32, "tied"},
	"int8hu":  {Int8Block32, "int8"},
	"int8":    {Int8LUT, ""},
	"int4lin": {Int4Block32, ""},
}

// Apply overrides t's default recipe with flags. Errors name the flag.
func (f Flags) Apply(t *Target) (Recipe, error) {
	r := t.Default
	if f.Weights != "" {
		if a, ok := weightAliases[f.Weights]; ok {
			r.Weights = a.weights
			if a.head != "" && f.Head == "" {
				r.Head, r.headOverridden = a.head, a.head != "tied"
				r.headFlags = "--weights " + f.Weights
			}
		} else {
			row, ok := WeightSchemeOf(WeightScheme(f.Weights))
			if !ok {
				return r, exitcode.Badf("flag --weights: unknown scheme %q (%s; aliases int8lin, int8hu, int8, int4lin)", f.Weights, joinSchemes())
			}
			r.Weights = row.Scheme
		}
	}
	head := f.Head
	if head == "" && f.HeadSym && !r.headOverridden {
		head = "int8-block32" // --head-sym alone is the published ship configuration
	}
	if head != "" {
		h, gran, err := parseHead(head)
		if err != nil {
			return r, err
		}
		r.Head = h
		r.headFlags = "--head"
		if f.Head == "" {
			r.headFlags = "--head-sym"
		}
		if gran != "" {
			r.HeadGranularity = gran
		}
	}
	if r.IntHead() && r.HeadGranularity == "" {
		r.HeadGranularity = "block32"
	}
	if f.HeadGranularity != "" {
		if r.Head == "tied" {
			return r, exitcode.Badf("flag --head-granularity: the head is tied (fp16, shared with the embedding); give --head int8 (or --head-sym) to quantize it")
		}
		if _, err := ParseGranularity(f.HeadGranularity); err != nil {
			return r, err
		}
		if f.Head != "" && r.HeadGranularity != f.HeadGranularity && strings.Contains(f.Head, "-") {
			return r, exitcode.Badf("flag --head-granularity: %s contradicts --head %s", f.HeadGranularity, head)
		}
		r.HeadGranularity = f.HeadGranularity
		r.headFlags = "--head-granularity"
	}
	switch f.Scheme {
	case "":
	case "absmax":
		r.BodyScheme = quant.Absmax
	case "clip":
		r.BodyScheme = quant.Clip
	default:
		return r, exitcode.Badf("flag --scheme: unknown scheme %q (absmax, clip)", f.Scheme)
	}
	r.HeadScheme = nil
	if r.IntHead() {
		// An int head follows --scheme; --head-sym makes it plain absmax whatever --scheme says
		// (docs/constraints.md, constraint 4: clipping corrupts top-1s on a big-vocabulary head).
		hs := r.BodyScheme
		if f.HeadSym {
			hs = quant.Absmax
		}
		r.HeadScheme = &hs
	} else if f.HeadSym && f.Head == "tied" {
		return r, exitcode.Badf("flag --head-sym: the head is tied (fp16); --head-sym quantizes it (omit --head tied)")
	}
	switch f.Compute {
	case "":
	case "fp16":
		r.Compute = graph.F16
	case "bf16":
		if t.Contract != graph.Stock {
			return r, exitcode.Badf("flag --compute: bf16 is the compute dtype of Apple's stock contract (--target macos-stock); target %s computes in fp16 (or fp32, the validation form)", t.Name)
		}
		r.Compute = graph.BF16
	case "fp32":
		r.Compute = graph.F32
	default:
		return r, exitcode.Badf("flag --compute: unknown dtype %q (fp16, bf16 on macos-stock, fp32)", f.Compute)
	}
	if r.Compute == graph.BF16 && r.Weights == FP16 {
		return r, exitcode.Badf("flag --weights: fp16 stores the Linear weights in fp16, but target %s computes in bf16; add --compute fp16 for an fp16 bundle", t.Name)
	}
	if f.MaxCtx != 0 {
		if f.MaxCtx < 16 || f.MaxCtx > 1<<20 {
			return r, exitcode.Badf("flag --max-ctx: %d is out of range [16, 1048576]", f.MaxCtx)
		}
		r.Context = f.MaxCtx
	}
	r.AllowDelegate = f.AllowDelegate
	if t.Device == graph.GPU && !r.AllowDelegate {
		if r.Weights == Int8PerChan || (r.IntHead() && r.HeadGranularity == "perchan") {
			what := "--weights int8-perchan"
			if r.Weights != Int8PerChan {
				what = "--head-granularity perchan"
			}
			return r, exitcode.Badf("%s on target %s: per-channel (axis-0) int8 gives garbage logits on the current GPU delegate (constraint 3); use per-block-32, or pass --allow-known-delegate-bugs to export it anyway", what, t.Name)
		}
	}
	r.StateDType = t.StateDType(&r)
	return r, nil
}

func joinSchemes() string {
	var s []string
	for _, w := range WeightSchemes {
		s = append(s, string(w))
	}
	return strings.Join(s, ", ")
}

// parseHead reads --head: tied, int8, int4, or int8-block32 / int4-perchan style.
func parseHead(h string) (head, gran string, err error) {
	if h == "tied" {
		return "tied", "", nil
	}
	width, g, _ := strings.Cut(h, "-")
	if width != "int8" && width != "int4" {
		return "", "", exitcode.Badf("flag --head: unknown head %q (tied, int8, int4, or e.g. int8-block32, int8-perchan)", h)
	}
	if g != "" {
		if _, err := ParseGranularity(g); err != nil {
			return "", "", exitcode.Badf("flag --head: %q: %v", h, err)
		}
	}
	return width, g, nil
}

// ParseGranularity maps a --head-granularity value to the quantizer's.
func ParseGranularity(s string) (quant.Granularity, error) {
	switch s {
	case "block32":
		return quant.Block32, nil
	case "block16":
		return quant.Block16, nil
	case "block8":
		return quant.Block8, nil
	case "perchan":
		return quant.PerChannel, nil
	}
	return 0, exitcode.Badf("flag --head-granularity: unknown granularity %q (block32, block16, block8, perchan)", s)
}

// mode is the community-style mode name of the applied recipe.
func (r *Recipe) mode() string {
	row, _ := WeightSchemeOf(r.Weights)
	base := row.Mode
	if !r.IntHead() {
		return base // the checkpoint's own float head, tied or not
	}
	if r.Weights == Int8Block32 && r.Head == "int8" {
		return "int8hu"
	}
	return base + "_head" + r.Head
}

// BundleName derives a bundle's name from the applied recipe (never from flags as typed):
// {short}_decode_{mode}[_{headgran}[_sym]] for pipelined targets, {short}_ios_hc0_{mode} and
// {short}_ios_hc_prefill_q16_b{ctx}_{mode} for ios-gpu. Departures from the defaults the
// published names leave implicit are spelled out: _clip for a clipped body, and a compute dtype
// other than the target's (_fp32 for the fp32 validation form, _fp16 for an fp16 macos-stock).
func BundleName(short string, t *Target, contract graph.Contract, r *Recipe, prefillTokens int) string {
	mode := r.mode()
	if r.IntHead() {
		mode += "_" + r.HeadGranularity
		if r.IntHeadScheme() == quant.Absmax {
			mode += "_sym"
		}
	}
	if r.Weights != FP16 && r.BodyScheme == quant.Clip && !strings.HasSuffix(string(r.Weights), "lut") {
		mode += "_clip"
	}
	if r.Compute != t.Default.Compute {
		// A compute dtype other than the target's own: _fp32 (the validation form), or _fp16 for
		// a macos-stock bundle that does not compute in Apple's bf16.
		mode += "_" + DTypeWords(r.Compute.String())
	}
	switch contract {
	case graph.HostDecode:
		return fmt.Sprintf("%s_ios_hc0_%s", short, mode)
	case graph.HostPrefill:
		return fmt.Sprintf("%s_ios_hc_prefill_q%d_b%d_%s", short, prefillTokens, r.Context, mode)
	case graph.Stock:
		return fmt.Sprintf("%s_stock_%s", short, mode)
	}
	return fmt.Sprintf("%s_decode_%s", short, mode)
}

// ShortName is the repo name lowercased with '.' and '-' turned into '_'.
func ShortName(ck *hf.Checkpoint) string {
	name := ck.RepoID
	if name == "" {
		name = CheckpointName(ck) // symlinks resolved: another spelling of the path names the same bundle
	}
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.ToLower(name)
	return strings.NewReplacer(".", "_", "-", "_").Replace(name)
}

// TargetNames lists the table's target names.
func TargetNames() []string {
	var out []string
	for _, t := range Targets {
		out = append(out, t.Name)
	}
	sort.Strings(out)
	return out
}

// Compression is the bundle metadata's compression string (null for fp16).
func (r *Recipe) Compression() *string {
	if r.Weights == FP16 && !r.IntHead() {
		return nil
	}
	s := string(r.Weights)
	if r.IntHead() {
		s += "+head-" + r.Head + "-" + r.HeadGranularity
	}
	return &s
}
