package export

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"qconv/graph"
	"qconv/internal/exitcode"
)

// The card's "Run it" section: for every bundle, the commands and code a user copies to run it,
// and what a stock runtime needs for it. Everything is generated from the bundle's contract as
// the bytes declare it (function, inputs, states, outputs and their shapes), its metadata
// (tokenizer, context) and the run table below; docs/card.md describes the section and the
// --speed file.

// CardRun is how to run one bundle.
type CardRun struct {
	Function  string        `json:"function"`  // the function the snippets load
	Functions []string      `json:"functions"` // every function in the bytes
	Bundle    string        `json:"bundle"`    // the bundle directory, relative to the card
	Asset     string        `json:"asset"`     // its .aimodel, relative to the card
	Driver    string        `json:"driver"`    // what drives the graph
	Platforms string        `json:"platforms"` // the OS versions the contract needs
	Position  string        `json:"position_rule"`
	Tokenizer string        `json:"tokenizer"`
	Needs     []CardRunNeed `json:"needs"` // what a stock runtime needs, with public references
	Snippets  []CardSnippet `json:"snippets"`
	// Speed is what the user measured and supplied with --speed; never estimated.
	Speed []SpeedMeasurement `json:"speed,omitempty"`
}

// CardRunNeed is one requirement a stock runtime must meet for the bundle, or one known runtime
// issue it hits, with the public references that establish it.
type CardRunNeed struct {
	Need string   `json:"need"`
	Refs []string `json:"refs,omitempty"`
}

// CardSnippet is one block a user copies: a shell command, Swift or Python.
type CardSnippet struct {
	Title string `json:"title"`
	Lang  string `json:"lang"` // sh, swift, python
	Code  string `json:"code"`
}

// runDriver says what drives a contract's graph.
type runDriver int

const (
	// driverEngine: a LanguageBundle driven by apple/coreai-models' EngineFactory (llm-benchmark,
	// apps); the engine carries the states and feeds input_ids/position_ids.
	driverEngine runDriver = iota + 1
	// driverHost: the host owns every cache and passes it as an input each call (no engine of
	// apple/coreai-models takes this contract; it is driven through AIModel directly).
	driverHost
)

// runContract is one row of the run table: what the card says about running a contract. A new
// contract (a target added to the target table) plugs in with one entry here; a contract without
// an entry still gets a one-call Python snippet made from the bytes, and says it has no recipe.
type runContract struct {
	driver runDriver
	// platforms are the OS versions the contract needs.
	platforms string
	// position is the position rule in words; pyPositions the Python expression for
	// position_ids given p = tokens so far including this one (driverEngine) or pos = the first
	// position of the block (driverHost).
	position    string
	pyPositions string
	// prefill marks a host-cache prefill companion: its snippet runs whole blocks through it
	// and the rest through its decode graph.
	prefill bool
	// stock marks Apple's own contract: Apple's runner and Foundation Models load it unpatched.
	stock bool
}

// coreAIFloor is what the Core AI runtime and apple/coreai-models' Swift package need.
const coreAIFloor = "macOS 27.0+ / iOS 27.0+ with Xcode 27.0+ (the Core AI runtime's floor, apple/coreai-models README)"

// runContracts is the run table, keyed by graph.Contract.String() (the contract in the bytes).
var runContracts = map[string]runContract{
	graph.Pipelined.String(): {
		driver:      driverEngine,
		platforms:   coreAIFloor,
		position:    "one token per step: `position_ids` holds P positions 0..P-1, P the number of tokens so far including this one (the graph writes K/V at `position_ids.shape[-1] - 1`, so the length, not the values, sets the position)",
		pyPositions: "np.arange(p, dtype=np.int32)[None]",
	},
	graph.HostDecode.String(): {
		driver:      driverHost,
		platforms:   coreAIFloor,
		position:    "`position_ids` holds the token's 0-based position; the host writes `k_cur`/`v_cur` into `past_k`/`past_v` at that position and replaces `conv_state`/`rec_state` with `conv_cur`/`rec_cur`",
		pyPositions: "np.arange(pos, pos + q, dtype=np.int32)[None]",
	},
	graph.Stock.String(): {
		driver:      driverEngine,
		platforms:   "macOS 27.2+ (Apple's Qwen3.5 export contract, apple/coreai-models models/qwen3_5/README.md; iOS is not supported there)",
		position:    "`input_ids` holds the q new tokens (q dynamic: Apple's runner sends the prompt through `@prefill`, then one token per `@main` call); `position_ids` holds P positions 0..P-1, P the number of tokens so far including these q (the graph writes K/V at `P - q`, from the shapes)",
		pyPositions: "np.arange(p, dtype=np.int32)[None]",
		stock:       true,
	},
	graph.HostPrefill.String(): {
		driver:      driverHost,
		platforms:   coreAIFloor,
		position:    "whole blocks only: `position_ids` holds the block's 0-based positions; the remainder of the prompt and the generation run through the decode graph, on the same caches",
		pyPositions: "np.arange(pos, pos + q, dtype=np.int32)[None]",
		prefill:     true,
	},
}

// targetPlatforms narrow the platforms where the target table says where a target runs; iPhone
// says whether the section shows the copy into an app's sandbox on a device.
var targetPlatforms = map[string]struct {
	text   string
	iPhone bool
}{
	"gpu-pipelined": {"iOS 27.0+ and macOS 27.0+, GPU", true},
	"ios-gpu":       {"iOS 27.0+, GPU (the Python snippet runs it on a Mac)", true},
	"ios-ane":       {"iOS 27.0+, Neural Engine (the Python snippet runs it on a Mac)", true},
	"macos":         {"macOS 27.0+, Neural Engine", false},
	"macos-stock":   {"macOS 27.2+, GPU (Apple's stock `llm-runner`, `llm-benchmark` and Foundation Models' `CoreAILanguageModel`)", false},
}

// Public references the needs cite.
const (
	refStaticLogits    = "apple/coreai-models#212"
	refStaticLogitsFix = "apple/coreai-models#227"
	refForkGuard       = "john-rocky/coreai-models@9e5b605"
	refStates          = "apple/coreai-models#132"
	refStatesPatch     = "john-rocky/coreai-model-zoo apps/coreai-pipelined-extra-states.patch"
	refChunkThreshold  = "apple/coreai-models swift/Sources/CoreAILanguageModels/InferenceEngines/ModelConfig.swift (COREAI_CHUNK_THRESHOLD)"
	refStockContract   = "apple/coreai-models models/qwen3_5/README.md and python/src/coreai_models/models/macos/qwen3_5.py"
	refEngineInputs    = "apple/coreai-models swift/Sources/CoreAILanguageModels/InferenceEngines/CoreAIPipelinedEngine.swift (2 inputs, 2-4 states)"
)

// runFacts are what the bytes and metadata say that the run section depends on.
type runFacts struct {
	b          *CardBundle
	main       *FunctionIO
	asset      string // .aimodel path relative to the card
	maxCtx     int
	tokenizer  string // language.tokenizer
	embedded   bool   // tokenizer/tokenizer.json is in the bundle
	staticS1   bool   // input_ids is a static [1, 1]
	staticLgts bool   // logits has a static sequence dim of 1
	// companionAsset is the .aimodel of the other bundle of a host-cache pair, relative to the
	// card, from its metadata ("" when it is not in the tree).
	companionAsset string
}

// fillRun computes every bundle's Run from its contract and metadata, and attaches the measured
// speeds of speedFile (empty: none).
func (c *Card) fillRun(outDir string, mds map[string]*BundleMetadata, speedFile string) error {
	for i := range c.Bundles {
		b := &c.Bundles[i]
		md := mds[b.Path]
		if md == nil {
			return fmt.Errorf("%s: no metadata", b.Path)
		}
		companion := ""
		if cm := mds[b.CompanionPath]; b.CompanionPath != "" && cm != nil && cm.Assets["main"] != "" {
			companion = b.CompanionPath + cm.Assets["main"]
		}
		run, err := buildRun(outDir, b, md, companion)
		if err != nil {
			return fmt.Errorf("%s: %w", b.Path, err)
		}
		b.Run = run
	}
	if speedFile == "" {
		return nil
	}
	sf, err := ReadSpeedFile(speedFile)
	if err != nil {
		return err
	}
	byPath := map[string]*CardBundle{}
	for i := range c.Bundles {
		byPath[c.Bundles[i].Path] = &c.Bundles[i]
	}
	for i, m := range sf.Measurements {
		b := byPath[strings.TrimSuffix(m.Bundle, "/")+"/"]
		if b == nil {
			return exitcode.Badf("--speed %s: measurements[%d].bundle: %q is not a bundle of this tree (%s)", speedFile, i, m.Bundle, strings.Join(bundlePaths(c.Bundles), ", "))
		}
		b.Run.Speed = append(b.Run.Speed, m)
	}
	return nil
}

func bundlePaths(bs []CardBundle) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.Path)
	}
	return out
}

func buildRun(outDir string, b *CardBundle, md *BundleMetadata, companionAsset string) (*CardRun, error) {
	main := findMain(b.Functions)
	if main == nil {
		return nil, fmt.Errorf("no @main function")
	}
	bundle := strings.TrimSuffix(b.Path, "/")
	f := &runFacts{b: b, main: main, asset: bundle + "/" + md.Assets["main"], maxCtx: md.Language.MaxContextLength, tokenizer: md.Language.Tokenizer, companionAsset: companionAsset}
	if md.Assets["main"] == "" {
		return nil, fmt.Errorf("metadata.json names no main asset")
	}
	if st, err := os.Stat(filepath.Join(outDir, filepath.FromSlash(bundle), "tokenizer", "tokenizer.json")); err == nil && st.Mode().IsRegular() {
		f.embedded = true
	}
	if s := ioSpec(main, graph.InInputIDs); s != nil && len(s.Shape) == 2 && s.Shape[0] == 1 && s.Shape[1] == 1 {
		f.staticS1 = true
	}
	if s := ioSpec(main, graph.OutLogits); s != nil && len(s.Shape) == 3 && s.Shape[1] == 1 {
		f.staticLgts = true
	}
	run := &CardRun{Function: main.Name, Bundle: bundle + "/", Asset: f.asset}
	for _, fn := range b.Functions {
		run.Functions = append(run.Functions, fn.Name)
	}
	if f.embedded {
		run.Tokenizer = fmt.Sprintf("the bundle's own `%s/tokenizer/tokenizer.json` (copied from the checkpoint; `language.tokenizer` is `%s`): Swift `LanguageBundle.loadTokenizer()` reads it, Python loads it with `tokenizers.Tokenizer.from_file`", bundle, f.tokenizer)
	} else {
		run.Tokenizer = fmt.Sprintf("no `tokenizer/` directory in the bundle: the runtime resolves `language.tokenizer` = `%s` as a Hugging Face id (Python: `tokenizers.Tokenizer.from_pretrained`)", f.tokenizer)
	}
	rc, ok := runContracts[b.Contract]
	run.Platforms = coreAIFloor
	tp, known := targetPlatforms[b.Target]
	if known {
		run.Platforms = tp.text
	} else if ok {
		run.Platforms = rc.platforms
	}
	if !ok {
		run.Driver = "no run recipe for the " + b.Contract + " contract in this qconv: one call of `" + main.Name + "` with zero inputs, from the bytes"
		run.Position = "not recorded"
		run.Snippets = []CardSnippet{{Title: "Python (macOS, `coreai.runtime`): one call with zero-filled inputs and states", Lang: "python", Code: pyOneCall(f)}}
		return run, nil
	}
	run.Position = rc.position
	switch rc.driver {
	case driverEngine:
		run.Driver = "apple/coreai-models' engine: `LanguageBundle` + `EngineFactory.createEngine`, which picks the pipelined engine for this dynamic-shape graph and carries its states"
		run.Needs = engineNeeds(f)
		if rc.stock {
			run.Driver = "Apple's stock runtime: `llm-runner`/`llm-benchmark` or Foundation Models' `CoreAILanguageModel` (`LanguageBundle` + `EngineFactory.createEngine` underneath), which feeds the prompt through `@prefill` and decodes with `@main`"
			run.Needs = stockNeeds()
		}
		run.Snippets = []CardSnippet{
			{Title: "Benchmark (macOS, apple/coreai-models' `llm-benchmark`, Release build)", Lang: "sh", Code: benchCommand(f)},
			{Title: "In an app (Swift, `CoreAILanguageModels`)", Lang: "swift", Code: swiftEngine(f)},
			{Title: "Python (macOS, `coreai.runtime`): a greedy loop that carries the states itself", Lang: "python", Code: pyEngineLoop(f, rc)},
		}
	case driverHost:
		if rc.prefill && f.companionAsset == "" {
			run.Driver = fmt.Sprintf("the host, with its decode graph `%s`, which is not in this tree: only a one-call smoke run is shown", b.Companion)
			run.Needs = hostNeeds(f)
			run.Snippets = []CardSnippet{{Title: "Python (macOS, `coreai.runtime`): one call with zero-filled inputs", Lang: "python", Code: pyOneCall(f)}}
			return run, nil
		}
		run.Driver = "the host: no engine of apple/coreai-models takes this contract; load the asset with `AIModel` and pass every cache as an input on every call"
		run.Needs = hostNeeds(f)
		py, err := pyHostLoop(f, rc)
		if err != nil {
			return nil, err
		}
		run.Snippets = []CardSnippet{
			{Title: "Python (macOS, `coreai.runtime`): the host loop", Lang: "python", Code: py},
			{Title: "In an app (Swift, `CoreAI`): load the function; run it once per step with the inputs above", Lang: "swift", Code: swiftHost(f)},
		}
	}
	if tp.iPhone || !known {
		run.Snippets = append(run.Snippets, CardSnippet{Title: "On an iPhone: copy the bundle into the app's sandbox", Lang: "sh", Code: deviceCopy(f)})
	}
	return run, nil
}

// engineNeeds is what a stock apple/coreai-models engine needs for an engine-driven bundle.
func engineNeeds(f *runFacts) []CardRunNeed {
	var out []CardRunNeed
	out = append(out, CardRunNeed{Need: "A full bundle directory (`metadata.json` with kind `llm`, the `.aimodel`, `tokenizer/`): `LanguageBundle` does not load a bare `.aimodel`."})
	if n := len(f.main.Inputs); n != 2 {
		out = append(out, CardRunNeed{Need: fmt.Sprintf("The stock pipelined engine takes exactly 2 inputs (`input_ids`, `position_ids`); this graph has %d, so it needs an engine that feeds the others.", n), Refs: []string{refEngineInputs}})
	}
	if n := len(f.main.States); n > 2 {
		var names []string
		for _, s := range f.main.States {
			names = append(names, "`"+s.Name+"`")
		}
		need := fmt.Sprintf("An engine that carries %d states (%s): the growing KV pair plus %d fixed-shape state(s). apple/coreai-models' pipelined engine carried exactly the two KV states until #132 (merged 2026-07-31), which added 2-4 states; on an older checkout apply the community extra-states patch.", n, strings.Join(names, ", "), n-2)
		if n > 4 {
			need = fmt.Sprintf("An engine that carries %d states (%s): the stock pipelined engine carries at most 4 (2 KV + 2 fixed-shape), so no public engine runs this bundle unchanged.", n, strings.Join(names, ", "))
		}
		if len(f.b.StateKinds) > 0 {
			need += " `metadata.json` classifies them (`language.states`), so the engine need not guess from shapes."
		}
		out = append(out, CardRunNeed{Need: need, Refs: []string{refStates, refStatesPatch, refEngineInputs}})
	}
	if f.staticS1 {
		out = append(out, CardRunNeed{Need: "`COREAI_CHUNK_THRESHOLD=1` set before the engine is created: `input_ids` is a static [1, 1], so the prompt must run as one-token steps (prompt tok/s ≈ decode tok/s). A checkout with #227 sets this itself from the fixed query length; setting it there too is harmless.", Refs: []string{refChunkThreshold, refStaticLogitsFix}})
		out = append(out, CardRunNeed{Need: "Never `engine.warmup()`: it warms a 256-token query, which the static [1, 1] graph rejects. A 1-token `generate` after loading is the warmup (`llm-benchmark` warms with a real trial, which is safe)."})
	}
	if f.staticLgts {
		out = append(out, CardRunNeed{Need: "The static-logits guard: `logits` is a static [1, 1, vocab], and a pipelined engine that sizes its logits buffer for 256 tokens fails at `EngineFactory.createEngine` with \"Shape at dimension 1 of 256 is not a valid substitution for source shape 1\". Reported upstream as #212 and fixed by #227 (merged 2026-09-04, which also sets the chunk threshold from the fixed query length); an older checkout needs the five-line guard of the community fork.", Refs: []string{refStaticLogits, refStaticLogitsFix, refForkGuard}})
	}
	return out
}

// stockNeeds is what Apple's own contract needs: nothing beyond Apple's runtime.
func stockNeeds() []CardRunNeed {
	return []CardRunNeed{
		{Need: "A full bundle directory (`metadata.json` with kind `llm`, the `.aimodel`, `tokenizer/`): `LanguageBundle` does not load a bare `.aimodel`."},
		{Need: "Nothing else: this is the contract Apple's own Qwen3.5 exporter writes (four states `keyCache`, `valueCache`, `convStates`, `recurrentStates`; dynamic query; `@main` and `@prefill`), so the stock engine loads it unpatched. No `COREAI_CHUNK_THRESHOLD` and no warm-up rule apply.", Refs: []string{refStockContract}},
	}
}

// hostNeeds is what a host-cache bundle needs.
func hostNeeds(f *runFacts) []CardRunNeed {
	out := []CardRunNeed{{Need: "Nothing beyond the Core AI runtime: the caller allocates the caches and passes them on every call; no engine patch is involved."}}
	if ctx := f.b.Context; f.b.ContextStatic {
		out = append(out, CardRunNeed{Need: fmt.Sprintf("At most %d tokens (prompt + generation): the context is static in the bytes.", ctx)})
	}
	return out
}

// --- snippets -------------------------------------------------------------------------------

func benchCommand(f *runFacts) string {
	env := ""
	if f.staticS1 {
		env = "COREAI_CHUNK_THRESHOLD=1 "
	}
	return fmt.Sprintf(`BUNDLES="$PWD"                     # the directory that holds this card
git clone https://github.com/apple/coreai-models && cd coreai-models
%sswift run -c release llm-benchmark --model "$BUNDLES/%s" -p 128 -g 256 -n 3
`, env, strings.TrimSuffix(f.b.Path, "/"))
}

func swiftEngine(f *runFacts) string {
	var sb strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	w("import CoreAILanguageModels\nimport Foundation\n\n")
	if f.staticS1 {
		w("setenv(\"COREAI_CHUNK_THRESHOLD\", \"1\", 1)  // before the engine is created\n")
	}
	w("// The bundle directory (on an iPhone: Documents/%s in the app's sandbox).\n", f.b.Name)
	w("let url = URL(fileURLWithPath: %q)\n", strings.TrimSuffix(f.b.Path, "/"))
	w(`let bundle = try LanguageBundle(at: url)
let config = ModelConfig(
    name: bundle.name, tokenizer: bundle.tokenizer, vocabSize: bundle.vocabSize,
    maxContextLength: bundle.maxContextLength, serializedModel: [bundle.modelAssetPath],
    function: bundle.language.functionMap?.name(for: "main") ?? "main")  // %q
let engine = try await EngineFactory.createEngine(
    config: try JSONEncoder().encode(config),
    modelURL: try bundle.requireModelURL(for: ModelBundle.ComponentKey.main))
let tokenizer = try await bundle.loadTokenizer()
let greedy = SamplingConfiguration(temperature: 0)
let prompt = tokenizer.encode(text: "def fibonacci(n):").map { Int32($0) }
`, f.main.Name)
	if f.staticS1 {
		w("// Warm up with a 1-token generate; never engine.warmup() on this [1, 1] graph.\n")
	} else {
		w("// Warm up with a 1-token generate.\n")
	}
	w(`for try await _ in try await engine.generate(
    with: [prompt[0]], samplingConfiguration: greedy,
    inferenceOptions: InferenceOptions(maxTokens: 1)) {}
try await engine.reset()
var generated: [Int] = []
for try await out in try await engine.generate(
    with: prompt, samplingConfiguration: greedy,
    inferenceOptions: InferenceOptions(maxTokens: 64)) {
    generated.append(Int(out.tokenId))
}
print(tokenizer.decode(tokens: generated))
`)
	return sb.String()
}

// npDType spells a bytes dtype for numpy.
func npDType(dt string) (string, error) {
	switch dt {
	case "f16":
		return "np.float16", nil
	case "f32":
		return "np.float32", nil
	case "bf16":
		return "ml_dtypes.bfloat16", nil
	case "si32", "i32":
		return "np.int32", nil
	case "si64", "i64":
		return "np.int64", nil
	case "si8", "i8":
		return "np.int8", nil
	case "ui8":
		return "np.uint8", nil
	}
	return "", fmt.Errorf("no numpy type for dtype %s", dt)
}

// pyShape spells a shape as a Python tuple; a dynamic dimension becomes dyn.
func pyShape(s []int64, dyn string) string {
	var parts []string
	for _, d := range s {
		if d == graph.Dyn {
			parts = append(parts, dyn)
		} else {
			parts = append(parts, strconv.FormatInt(d, 10))
		}
	}
	if len(parts) == 1 {
		return "(" + parts[0] + ",)"
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// pyZeros is a zero-filled numpy array for spec, its dynamic dims at dyn.
func pyZeros(s IOSpec, dyn string) (string, error) {
	dt, err := npDType(s.DType)
	if err != nil {
		return "", fmt.Errorf("%s: %w", s.Name, err)
	}
	return fmt.Sprintf("np.zeros(%s, %s)", pyShape(s.Shape, dyn), dt), nil
}

func pyHeader(f *runFacts, specs []IOSpec) string {
	var sb strings.Builder
	sb.WriteString("import asyncio\n\nimport numpy as np\n")
	for _, s := range specs {
		if s.DType == "bf16" {
			sb.WriteString("import ml_dtypes\n")
			break
		}
	}
	sb.WriteString("from coreai.runtime import AIModel, NDArray\nfrom tokenizers import Tokenizer\n\n")
	fmt.Fprintf(&sb, "BUNDLE = %q  # run from the directory that holds this card\n", strings.TrimSuffix(f.b.Path, "/"))
	fmt.Fprintf(&sb, "ASSET = %q\n", f.asset)
	return sb.String()
}

func pyTokenizer(f *runFacts) string {
	if f.embedded {
		return "    tok = Tokenizer.from_file(BUNDLE + \"/tokenizer/tokenizer.json\")\n"
	}
	return fmt.Sprintf("    tok = Tokenizer.from_pretrained(%q)\n", f.tokenizer)
}

// pyEngineLoop is the engine contract driven from Python: the caller carries the states the
// engine would, allocated once (dynamic dims at the metadata's max context) and mutated in place.
func pyEngineLoop(f *runFacts, rc runContract) string {
	var sb strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	w("%s", pyHeader(f, append(append([]IOSpec{}, f.main.Inputs...), f.main.States...)))
	w("MAX_CTX = %d  # language.max_context_length: the dynamic state dims are allocated at it\n\n\n", f.maxCtx)
	w("async def main():\n%s", pyTokenizer(f))
	w("    fn = (await AIModel.load(ASSET)).load_function(%q)\n", f.main.Name)
	w("    # The states the engine would carry: zero-filled once, updated in place by every call.\n")
	w("    state = {\n")
	for _, s := range f.main.States {
		z, err := pyZeros(s, "MAX_CTX")
		if err != nil {
			z = "None  # " + err.Error()
		}
		w("        %q: NDArray(%s),\n", s.Name, z)
	}
	w("    }\n\n")
	w("    async def step(token, p):  # p: tokens so far, including this one\n")
	w("        inputs = {\n")
	for _, s := range f.main.Inputs {
		switch s.Name {
		case graph.InInputIDs:
			w("            %q: NDArray(np.array([[token]], np.int32)),\n", s.Name)
		case graph.InPositionIDs:
			w("            %q: NDArray(%s),\n", s.Name, rc.pyPositions)
		default:
			z, err := pyZeros(s, "1")
			if err != nil {
				z = "None  # " + err.Error()
			}
			w("            %q: NDArray(%s),  # not fed by the engine recipe: zeros\n", s.Name, z)
		}
	}
	w("        }\n")
	w("        out = await fn(inputs, state=state)\n")
	w("        return int(out[%q].numpy().reshape(-1, %d)[-1].argmax())\n\n", graph.OutLogits, vocabOf(f))
	w(`    ids = tok.encode("def fibonacci(n):").ids
    for p, token in enumerate(ids, start=1):
        nxt = await step(token, p)
    generated = [nxt]
    while len(generated) < 64 and len(ids) + len(generated) < MAX_CTX:
        generated.append(await step(generated[-1], len(ids) + len(generated)))
    print(tok.decode(generated))


asyncio.run(main())
`)
	return sb.String()
}

func vocabOf(f *runFacts) int64 {
	if s := ioSpec(f.main, graph.OutLogits); s != nil && len(s.Shape) > 0 {
		return s.Shape[len(s.Shape)-1]
	}
	return -1
}

// hostRoles are the inputs the host-cache loop fills, in the contract's names.
var hostRoles = []string{graph.InInputIDs, graph.InPositionIDs, graph.InCausalMask, graph.InPastK, graph.InPastV, graph.InConvState, graph.InRecState}

// pyHostLoop is the host-cache contract driven from Python. For a prefill companion, whole blocks
// go through it and the rest through its decode graph (the companion bundle in the same tree).
func pyHostLoop(f *runFacts, rc runContract) (string, error) {
	m := f.main
	if len(m.States) != 0 {
		return "", fmt.Errorf("host-cache contract with states %v", m.States)
	}
	for _, in := range m.Inputs {
		if !contains(hostRoles, in.Name) {
			return "", fmt.Errorf("host-cache contract: input %s has no role in the host loop", in.Name)
		}
	}
	for _, r := range hostRoles {
		if ioSpec(m, r) == nil {
			return "", fmt.Errorf("host-cache contract: no %s input", r)
		}
	}
	pk := ioSpec(m, graph.InPastK)
	ids := ioSpec(m, graph.InInputIDs)
	if len(pk.Shape) != 5 || len(ids.Shape) != 2 {
		return "", fmt.Errorf("host-cache contract: past_k %v, input_ids %v", pk.Shape, ids.Shape)
	}
	ctx, q := pk.Shape[3], ids.Shape[1]
	var sb strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	w("%s", pyHeader(f, m.Inputs))
	if rc.prefill {
		w("DECODE_ASSET = %q  # its decode graph: the remainder and the generation\n", f.companionAsset)
	}
	w("CTX = %d  # static context: the past_k length in the bytes\n", ctx)
	if rc.prefill {
		w("Q = %d  # tokens per prefill block: the input_ids length in the bytes\n", q)
	}
	w(`

def mask(pos, q):  # [1, 1, q, CTX + q]: 0 visible, -1e4 hidden
    m = np.full((1, 1, q, CTX + q), -1e4, np.float16)
    m[0, 0, :, :pos] = 0  # the past
    for i in range(q):
        m[0, 0, i, CTX:CTX + i + 1] = 0  # this block, causally
    return m


async def main():
%s`, pyTokenizer(f))
	w("    fn = (await AIModel.load(ASSET)).load_function(%q)\n", m.Name)
	if rc.prefill {
		w("    decode = (await AIModel.load(DECODE_ASSET)).load_function(%q)\n", m.Name)
	}
	w("    # The host owns every cache: zero-filled, passed on every call.\n")
	for _, name := range []string{graph.InPastK, graph.InPastV, graph.InConvState, graph.InRecState} {
		z, err := pyZeros(*ioSpec(m, name), "CTX")
		if err != nil {
			return "", err
		}
		w("    %s = %s\n", name, z)
	}
	callee := "fn"
	if rc.prefill {
		callee = "f"
		w("\n    async def run(f, tokens, pos):\n")
	} else {
		w("\n    async def run(tokens, pos):\n")
	}
	w("        nonlocal %s, %s\n", graph.InConvState, graph.InRecState)
	w("        q = len(tokens)\n")
	w("        inputs = {\n")
	for _, in := range m.Inputs {
		var v string
		switch in.Name {
		case graph.InInputIDs:
			v = "np.array([tokens], np.int32)"
		case graph.InPositionIDs:
			v = rc.pyPositions
		case graph.InCausalMask:
			v = "mask(pos, q)"
		default:
			v = in.Name
		}
		w("            %q: NDArray(%s),\n", in.Name, v)
	}
	w("        }\n")
	w("        out = await %s(inputs)\n", callee)
	w("        %s[:, :, :, pos:pos + q] = out[%q].numpy()\n", graph.InPastK, graph.OutKCur)
	w("        %s[:, :, :, pos:pos + q] = out[%q].numpy()\n", graph.InPastV, graph.OutVCur)
	w("        %s = out[%q].numpy()\n", graph.InConvState, graph.OutConvCur)
	w("        %s = out[%q].numpy()\n", graph.InRecState, graph.OutRecCur)
	w("        return int(out[%q].numpy().reshape(-1)[-1])  # the greedy argmax, computed in the graph\n\n", graph.OutNextToken)
	w("    ids = tok.encode(\"def fibonacci(n):\").ids\n")
	if rc.prefill {
		w(`    pos = 0
    while len(ids) - pos >= Q:  # whole blocks through the companion
        nxt = await run(fn, ids[pos:pos + Q], pos)
        pos += Q
    for token in ids[pos:]:  # the remainder through the decode graph
        nxt = await run(decode, [token], pos)
        pos += 1
    generated = [nxt]
    while len(generated) < 64 and pos < CTX:
        generated.append(await run(decode, [generated[-1]], pos))
        pos += 1
`)
	} else {
		w(`    for pos, token in enumerate(ids):
        nxt = await run([token], pos)
    generated, pos = [nxt], len(ids)
    while len(generated) < 64 and pos < CTX:
        generated.append(await run([generated[-1]], pos))
        pos += 1
`)
	}
	w("    print(tok.decode(generated))\n\n\nasyncio.run(main())\n")
	return sb.String(), nil
}

// pyOneCall runs a function of a contract without a recipe once, with zero-filled inputs and
// states (dynamic dims at 1): a smoke run, from the bytes alone.
func pyOneCall(f *runFacts) string {
	var sb strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	w("import asyncio\n\nimport numpy as np\n")
	for _, s := range append(append([]IOSpec{}, f.main.Inputs...), f.main.States...) {
		if s.DType == "bf16" {
			w("import ml_dtypes\n")
			break
		}
	}
	w("from coreai.runtime import AIModel, NDArray\n\n")
	w("ASSET = %q  # run from the directory that holds this card\n\n\n", f.asset)
	w("async def main():\n")
	w("    fn = (await AIModel.load(ASSET)).load_function(%q)\n", f.main.Name)
	for _, l := range []struct {
		name  string
		specs []IOSpec
	}{{"inputs", f.main.Inputs}, {"state", f.main.States}} {
		w("    %s = {\n", l.name)
		for _, s := range l.specs {
			z, err := pyZeros(s, "1")
			if err != nil {
				z = "None  # " + err.Error()
			}
			w("        %q: NDArray(%s),\n", s.Name, z)
		}
		w("    }\n")
	}
	w("    out = await fn(inputs, state=state)\n")
	w("    print({name: out[name].numpy().shape for name in %s})\n\n\n", pyList(f.main.Outputs))
	w("asyncio.run(main())\n")
	return sb.String()
}

func pyList(specs []IOSpec) string {
	var q []string
	for _, s := range specs {
		q = append(q, strconv.Quote(s.Name))
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func swiftHost(f *runFacts) string {
	var names []string
	for _, in := range f.main.Inputs {
		names = append(names, fmt.Sprintf("%q: ...", in.Name))
	}
	return fmt.Sprintf(`import CoreAI
import Foundation

let model = try await AIModel(contentsOf: URL(fileURLWithPath: %q))
guard let fn = try model.loadFunction(named: %q) else { fatalError("no %s function") }
// Each step: NDArrays with the shapes and dtypes of the contract table, filled as the Python loop does.
var outputs = try await fn.run(inputs: [%s])
let nextToken = outputs.remove(%q)?.ndArray
`, f.asset, f.main.Name, f.main.Name, strings.Join(names, ", "), graph.OutNextToken)
}

func deviceCopy(f *runFacts) string {
	return fmt.Sprintf(`xcrun devicectl list devices                     # the device's identifier
xcrun devicectl device copy to --device <device-id> \
    --domain-type appDataContainer --domain-identifier <your.app.bundle.id> \
    --source %s --destination Documents/%s
# In the app: FileManager.default.urls(for: .documentDirectory, in: .userDomainMask)[0]
#     .appendingPathComponent(%q) is the bundle directory to load.
`, strings.TrimSuffix(f.b.Path, "/"), f.b.Name, f.b.Name)
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// --- Markdown ---------------------------------------------------------------------------------

func (c *Card) writeRun(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("## Run it\n\n")
	p("Run every command from the directory that holds this card: the paths are the bundles' own. What you need: a Mac or an iPhone on %s; for Swift, the `CoreAILanguageModels` library of https://github.com/apple/coreai-models (Swift package at its root); for Python, Apple's `coreai` package (`coreai.runtime`) with `numpy` and `tokenizers`. Each snippet names the function, inputs and states exactly as the bundle's `main.mlirb` declares them (the Run contract section below has every shape), and decodes greedily, as the gate did.\n\n", coreAIFloor)
	for i := range c.Bundles {
		b := &c.Bundles[i]
		r := b.Run
		if r == nil {
			continue
		}
		p("### `%s`\n\n", b.Path)
		var ins, sts []string
		main := findMain(b.Functions)
		for _, s := range main.Inputs {
			ins = append(ins, fmt.Sprintf("`%s` %s %s", s.Name, s.DType, shapeText(s.Shape)))
		}
		for _, s := range main.States {
			sts = append(sts, fmt.Sprintf("`%s` %s %s", s.Name, s.DType, shapeText(s.Shape)))
		}
		if len(sts) == 0 {
			sts = []string{"none (the host passes every cache as an input)"}
		}
		p("- Function `%s` of `%s`", r.Function, r.Asset)
		if len(r.Functions) > 1 {
			p(" (the bytes hold %s)", strings.Join(r.Functions, ", "))
		}
		p("; inputs %s; states %s.\n", strings.Join(ins, ", "), strings.Join(sts, ", "))
		p("- Driven by %s.\n", r.Driver)
		p("- Position rule: %s.\n", r.Position)
		p("- Platforms: %s.\n", r.Platforms)
		p("- Tokenizer: %s.\n", r.Tokenizer)
		if len(r.Needs) > 0 {
			p("\nWhat a stock runtime needs for this bundle:\n\n")
			for _, n := range r.Needs {
				p("- %s", n.Need)
				if len(n.Refs) > 0 {
					p(" (%s)", strings.Join(n.Refs, "; "))
				}
				p("\n")
			}
		}
		p("\n")
		for _, s := range r.Snippets {
			p("%s:\n\n```%s\n%s```\n\n", s.Title, s.Lang, s.Code)
		}
		writeSpeed(w, r.Speed)
	}
}

func writeSpeed(w io.Writer, ms []SpeedMeasurement) {
	if len(ms) == 0 {
		fmt.Fprint(w, "Measured speed: none supplied (`qconv card --speed FILE` adds the figures you measured; see docs/card.md).\n\n")
		return
	}
	fmt.Fprint(w, "Measured speed, as supplied with `--speed` (not measured by qconv):\n\n")
	var rows [][]string
	for _, m := range ms {
		prompt := "—"
		if m.PromptTokS != nil {
			prompt = fmt.Sprintf("%g", *m.PromptTokS)
		}
		cmd := "—"
		if m.Command != "" {
			cmd = "`" + m.Command + "`"
		}
		rows = append(rows, []string{m.Device, m.OS, m.Date, fmt.Sprintf("%g", m.DecodeTokS), prompt, cmd})
	}
	writeMDTable(w, []string{"device", "OS", "date", "decode tok/s", "prompt tok/s", "command"}, rows)
}

// --- --speed ----------------------------------------------------------------------------------

// SpeedFile is the --speed document: speeds the user measured, per bundle.
//
//	{"measurements": [{"bundle": "gpu-pipelined/<name>/", "device": "iPhone 17 Pro",
//	  "os": "iOS 27.0", "date": "2026-09-01", "decode_tok_s": 70.1,
//	  "prompt_tok_s": 69.5, "command": "llm-benchmark ... -p 128 -g 256 -n 3"}]}
type SpeedFile struct {
	Measurements []SpeedMeasurement `json:"measurements"`
}

// SpeedMeasurement is one measured speed of one bundle.
type SpeedMeasurement struct {
	Bundle     string   `json:"bundle"` // the bundle's path in the tree, as the card shows it
	Device     string   `json:"device"`
	OS         string   `json:"os"`
	Date       string   `json:"date"` // YYYY-MM-DD
	DecodeTokS float64  `json:"decode_tok_s"`
	PromptTokS *float64 `json:"prompt_tok_s,omitempty"`
	Command    string   `json:"command,omitempty"`
}

// ReadSpeedFile reads and checks a --speed file; every error is exitcode.BadInput naming the
// file and the field.
func ReadSpeedFile(name string) (*SpeedFile, error) {
	raw, err := os.ReadFile(name)
	if err != nil {
		return nil, exitcode.Badf("--speed %s: %v", name, err)
	}
	var doc struct {
		Measurements []json.RawMessage `json:"measurements"`
	}
	if err := decodeSpeed(raw, &doc); err != nil {
		return nil, exitcode.Badf("--speed %s: %v", name, err)
	}
	if doc.Measurements == nil {
		return nil, exitcode.Badf("--speed %s: measurements: missing (expected {\"measurements\": [...]})", name)
	}
	sf := SpeedFile{Measurements: make([]SpeedMeasurement, len(doc.Measurements))}
	for i, m := range doc.Measurements {
		if err := decodeSpeed(m, &sf.Measurements[i]); err != nil {
			return nil, exitcode.Badf("--speed %s: measurements[%d]: %v", name, i, err)
		}
	}
	for i, m := range sf.Measurements {
		field := func(f, format string, args ...any) error {
			return exitcode.Badf("--speed %s: measurements[%d].%s: %s", name, i, f, fmt.Sprintf(format, args...))
		}
		for _, s := range []struct{ f, v string }{{"bundle", m.Bundle}, {"device", m.Device}, {"os", m.OS}, {"date", m.Date}} {
			if strings.TrimSpace(s.v) == "" {
				return nil, field(s.f, "missing or empty")
			}
		}
		if path.IsAbs(m.Bundle) || strings.Contains(m.Bundle, "..") {
			return nil, field("bundle", "%q: give the bundle's path as the card shows it (<target>/<name>/)", m.Bundle)
		}
		if _, err := time.Parse(time.DateOnly, m.Date); err != nil {
			return nil, field("date", "%q is not a date in the form YYYY-MM-DD", m.Date)
		}
		if !(m.DecodeTokS > 0) || math.IsInf(m.DecodeTokS, 0) {
			return nil, field("decode_tok_s", "%v: a measured speed is a positive number of tokens per second", m.DecodeTokS)
		}
		if m.PromptTokS != nil && (!(*m.PromptTokS > 0) || math.IsInf(*m.PromptTokS, 0)) {
			return nil, field("prompt_tok_s", "%v: a measured speed is a positive number of tokens per second", *m.PromptTokS)
		}
	}
	sort.SliceStable(sf.Measurements, func(i, j int) bool { return sf.Measurements[i].Date < sf.Measurements[j].Date })
	return &sf, nil
}

// decodeSpeed decodes one JSON value strictly: no unknown fields, nothing after it, and a type
// error names the field.
func decodeSpeed(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return fmt.Errorf("field %s: %s where %s is expected", te.Field, te.Value, te.Type)
		}
		return err
	}
	if dec.More() {
		return fmt.Errorf("more than one JSON value")
	}
	return nil
}
