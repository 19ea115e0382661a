package card

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"qconv/bundle"
	"qconv/graph"
	"qconv/internal/exitcode"
	"qconv/recipe"
)

// runSection is one bundle's subsection of "## Run it", as a reader sees it.
type runSection struct {
	text   string
	blocks map[string][]string // language -> fenced code blocks
}

var fenceRE = regexp.MustCompile("(?s)```(\\w+)\n(.*?)```")

// parseRunSections splits the card's "## Run it" section by bundle path.
func parseRunSections(t *testing.T, md string) map[string]runSection {
	t.Helper()
	start := strings.Index(md, "\n## Run it\n")
	if start < 0 {
		t.Fatalf("no Run it section")
	}
	rest := md[start+len("\n## Run it\n"):]
	if end := strings.Index(rest, "\n## "); end >= 0 {
		rest = rest[:end]
	}
	out := map[string]runSection{}
	parts := strings.Split(rest, "\n### `")
	for _, p := range parts[1:] {
		path, body, ok := strings.Cut(p, "`\n")
		if !ok {
			t.Fatalf("run subsection heading: %.80q", p)
		}
		s := runSection{text: body, blocks: map[string][]string{}}
		for _, m := range fenceRE.FindAllStringSubmatch(body, -1) {
			s.blocks[m[1]] = append(s.blocks[m[1]], m[2])
		}
		out[path] = s
	}
	return out
}

// dictKeys reads the string keys of the Python dict literal `<name> = {` ... `}` in code, and the
// np.zeros shape and dtype each key is given (when it is given one).
func dictKeys(code, name string) (keys []string, zeros map[string]string, found bool) {
	zeros = map[string]string{}
	head := regexp.MustCompile(`(?m)^(\s*)` + name + ` = \{\n`)
	loc := head.FindStringSubmatchIndex(code)
	if loc == nil {
		return nil, zeros, false
	}
	indent := code[loc[2]:loc[3]]
	body := code[loc[1]:]
	body = body[:strings.Index(body, "\n"+indent+"}")]
	keyRE := regexp.MustCompile(`^\s*"(\w+)": NDArray\((.*)\),`)
	for _, line := range strings.Split(body, "\n") {
		m := keyRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		keys = append(keys, m[1])
		if z := zerosRE.FindStringSubmatch(m[2]); z != nil {
			zeros[m[1]] = z[1] + " " + z[2]
		}
	}
	return keys, zeros, true
}

var zerosRE = regexp.MustCompile(`np\.zeros\(\(([^)]*)\), (np\.\w+|ml_dtypes\.\w+)\)`)

// wantZeros is how the snippets must allocate spec: its shape with dynamic dims spelled dyn, and
// its numpy dtype.
func wantZeros(t *testing.T, s bundle.IOSpec, dyn string) string {
	t.Helper()
	dt, err := npDType(s.DType)
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, d := range s.Shape {
		if d == graph.Dyn {
			parts = append(parts, dyn)
		} else {
			parts = append(parts, strconv.FormatInt(d, 10))
		}
	}
	sh := strings.Join(parts, ", ")
	if len(parts) == 1 {
		sh += ","
	}
	return sh + " " + dt
}

func names(specs []bundle.IOSpec) []string {
	var out []string
	for _, s := range specs {
		out = append(out, s.Name)
	}
	return out
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	sort.Strings(a)
	sort.Strings(b)
	return slices.Equal(a, b)
}

// The card of a --target all export has a runnable section for every bundle, and every snippet
// names exactly the function, inputs and states that inspect reads from that bundle's bytes, with
// their shapes and dtypes, and paths that exist in the tree.
func TestCardRunSnippetsNameTheBytes(t *testing.T) {
	all, _ := sharedCardTrees(t)
	c, err := BuildCard(all, CardOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var md bytes.Buffer
	if err := c.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	sections := parseRunSections(t, md.String())
	dirs, err := listBundles(all, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) != 5 || len(sections) != len(dirs) {
		t.Fatalf("%d bundles in the tree, %d run sections", len(dirs), len(sections))
	}
	python, _ := exec.LookPath("python3")
	exists := func(rel string) bool {
		_, err := os.Stat(filepath.Join(all, filepath.FromSlash(rel)))
		return err == nil
	}
	for _, d := range dirs {
		path := d.rel + "/"
		t.Run(d.rel, func(t *testing.T) {
			in, err := bundle.Inspect(filepath.Join(all, filepath.FromSlash(d.rel)))
			if err != nil {
				t.Fatal(err)
			}
			main := findMain(in.Functions)
			s, ok := sections[path]
			if !ok {
				t.Fatalf("no run section for %s", path)
			}
			pys := s.blocks["python"]
			if len(pys) != 1 {
				t.Fatalf("%d Python blocks", len(pys))
			}
			py := pys[0]
			// The function.
			for _, m := range regexp.MustCompile(`load_function\("(\w+)"\)`).FindAllStringSubmatch(py, -1) {
				if m[1] != main.Name {
					t.Errorf("Python loads function %q, the bytes' is %q", m[1], main.Name)
				}
			}
			if !strings.Contains(s.text, "- Function `"+main.Name+"` of `") {
				t.Errorf("the facts line does not name function %s", main.Name)
			}
			// Inputs: exactly the bytes', in a dict the call passes.
			keys, zeros, found := dictKeys(py, "inputs")
			if !found || !sameSet(keys, names(main.Inputs)) || len(keys) != len(main.Inputs) {
				t.Errorf("Python inputs %v, the bytes' %v", keys, names(main.Inputs))
			}
			for name, z := range zeros {
				t.Errorf("input %s is passed as zeros %s: every input of a known contract is fed", name, z)
			}
			// States: exactly the bytes', each allocated at its shape and dtype.
			stateKeys, stateZeros, found := dictKeys(py, "state")
			if len(main.States) == 0 {
				if found || strings.Contains(py, "state=") {
					t.Errorf("the bytes have no states, the Python passes some:\n%s", py)
				}
			} else {
				if !sameSet(stateKeys, names(main.States)) || len(stateKeys) != len(main.States) {
					t.Errorf("Python states %v, the bytes' %v", stateKeys, names(main.States))
				}
				if !strings.Contains(py, "await fn(inputs, state=state)") {
					t.Errorf("the call does not pass the states")
				}
				for _, st := range main.States {
					if got, want := stateZeros[st.Name], wantZeros(t, st, "MAX_CTX"); got != want {
						t.Errorf("state %s allocated as %q, the bytes say %q", st.Name, got, want)
					}
				}
				if !strings.Contains(py, fmt.Sprintf("MAX_CTX = %d ", in.Metadata.Language.MaxContextLength)) {
					t.Errorf("MAX_CTX is not the metadata's %d", in.Metadata.Language.MaxContextLength)
				}
			}
			// Host-carried caches: allocated at the bytes' shapes.
			for _, st := range main.Inputs {
				if m := regexp.MustCompile(`(?m)^\s*` + st.Name + ` = np\.zeros\(\(([^)]*)\), (np\.\w+)\)`).FindStringSubmatch(py); m != nil {
					if got, want := m[1]+" "+m[2], wantZeros(t, st, "CTX"); got != want {
						t.Errorf("cache %s allocated as %q, the bytes say %q", st.Name, got, want)
					}
				}
			}
			// Outputs read: all the bytes'.
			for _, m := range regexp.MustCompile(`out\["(\w+)"\]`).FindAllStringSubmatch(py, -1) {
				if !slices.Contains(names(main.Outputs), m[1]) {
					t.Errorf("Python reads output %q; the bytes' are %v", m[1], names(main.Outputs))
				}
			}
			// Paths: every quoted path the snippets use exists in the tree.
			for _, m := range regexp.MustCompile(`(?m)^(BUNDLE|ASSET|DECODE_ASSET) = "([^"]+)"`).FindAllStringSubmatch(py, -1) {
				if !exists(m[2]) {
					t.Errorf("%s = %s does not exist in the tree", m[1], m[2])
				}
			}
			if !strings.Contains(py, `ASSET = "`+path+in.Metadata.Assets["main"]+`"`) {
				t.Errorf("ASSET is not %s%s", path, in.Metadata.Assets["main"])
			}
			if strings.Contains(py, "Tokenizer.from_file") && !exists(d.rel+"/tokenizer/tokenizer.json") {
				t.Errorf("the snippet loads a tokenizer.json the bundle does not have")
			}
			for _, sh := range s.blocks["sh"] {
				for _, m := range regexp.MustCompile(`(?:--model "\$BUNDLES/|--source )([^" ]+)`).FindAllStringSubmatch(sh, -1) {
					if m[1] != d.rel {
						t.Errorf("shell command names %s, not the bundle %s", m[1], d.rel)
					}
				}
			}
			for _, sw := range s.blocks["swift"] {
				for _, m := range regexp.MustCompile(`URL\(fileURLWithPath: "([^"]+)"\)`).FindAllStringSubmatch(sw, -1) {
					if !exists(m[1]) {
						t.Errorf("Swift loads %s, which is not in the tree", m[1])
					}
				}
				if regexp.MustCompile(`(?m)^[^/]*\.warmup\(`).MatchString(sw) && in.Metadata.QConv.Contract == graph.Pipelined {
					t.Errorf("Swift calls warmup() on a [1,1] graph")
				}
				for _, m := range regexp.MustCompile(`"(\w+)": \.\.\.`).FindAllStringSubmatch(sw, -1) {
					if !slices.Contains(names(main.Inputs), m[1]) {
						t.Errorf("Swift passes input %q; the bytes' are %v", m[1], names(main.Inputs))
					}
				}
			}
			if has := strings.Contains(s.text, "xcrun devicectl device copy to"); has != targetPlatforms[d.target].iPhone {
				t.Errorf("device copy shown %v for target %s", has, d.target)
			}
			// The contract's own rules, from the bytes.
			switch in.Metadata.QConv.Contract {
			case graph.Pipelined:
				bench := strings.Join(s.blocks["sh"], "")
				if !strings.Contains(bench, `COREAI_CHUNK_THRESHOLD=1 swift run -c release llm-benchmark --model "$BUNDLES/`+d.rel+`"`) {
					t.Errorf("no llm-benchmark command with COREAI_CHUNK_THRESHOLD=1:\n%s", bench)
				}
				sw := strings.Join(s.blocks["swift"], "")
				for _, want := range []string{`setenv("COREAI_CHUNK_THRESHOLD", "1", 1)`, "LanguageBundle(at: url)", "EngineFactory.createEngine(", "InferenceOptions(maxTokens: 1)"} {
					if !strings.Contains(sw, want) {
						t.Errorf("Swift lacks %s", want)
					}
				}
				for _, want := range []string{"apple/coreai-models#212", "apple/coreai-models#227", "apple/coreai-models#132", "coreai-pipelined-extra-states.patch", "Never `engine.warmup()`"} {
					if !strings.Contains(s.text, want) {
						t.Errorf("needs lack %s", want)
					}
				}
			default:
				for _, not := range []string{"#212", "#132", "EngineFactory", "COREAI_CHUNK_THRESHOLD"} {
					if strings.Contains(s.text, not) {
						t.Errorf("a host-cache bundle's section mentions %s", not)
					}
				}
			}
			if python != "" {
				cmd := exec.Command(python, "-c", "import ast, sys; ast.parse(sys.stdin.read())")
				cmd.Stdin = strings.NewReader(py)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("the Python snippet does not parse: %v\n%s\n%s", err, out, py)
				}
			}
		})
	}
	// The prefill companion drives its own decode graph, named from the tree.
	for path, s := range sections {
		if strings.Contains(path, "_prefill_") && !strings.Contains(s.blocks["python"][0], `DECODE_ASSET = "ios-gpu/tinyqwen35_code_ios_hc0_int8/tinyqwen35_code_ios_hc0_int8.aimodel"`) {
			t.Errorf("%s: the prefill snippet does not load its decode graph", path)
		}
	}
}

// Every contract the target table can write has a row in the run table: a new contract plugs in
// with one entry, and this test names the one that lacks it.
func TestRunTableCoversTargets(t *testing.T) {
	for _, tg := range recipe.Targets {
		for _, c := range []graph.Contract{tg.Contract, tg.Prefill} {
			if c == 0 {
				continue
			}
			if _, ok := runContracts[c]; !ok {
				t.Errorf("target %s: contract %q has no entry in runContracts (card/card_run.go)", tg.Name, c)
			}
		}
		if targetPlatforms[tg.Name].text == "" {
			t.Errorf("target %s has no entry in targetPlatforms", tg.Name)
		}
	}
}

// A contract without a run recipe still gets a one-call snippet that names exactly its bytes'
// function, inputs and states (bf16 included), and claims no engine.
func TestCardRunUnknownContract(t *testing.T) {
	dir := t.TempDir()
	fn := bundle.FunctionIO{
		Name:    "main",
		Inputs:  []bundle.IOSpec{{Name: "input_ids", DType: "si32", Shape: []int64{1, graph.Dyn}}, {Name: "position_ids", DType: "si32", Shape: []int64{1, graph.Dyn}}},
		Outputs: []bundle.IOSpec{{Name: "logits", DType: "f16", Shape: []int64{1, graph.Dyn, 64}}},
		States:  []bundle.IOSpec{{Name: "keyCache", DType: "bf16", Shape: []int64{2, 1, 2, graph.Dyn, 16}}, {Name: "convStates", DType: "bf16", Shape: []int64{6, 1, 4, 96}}},
	}
	b := &CardBundle{Target: "macos-stock", Name: "m", Path: "macos-stock/m/", Contract: graph.Contract(0), Functions: []bundle.FunctionIO{fn, {Name: "prefill"}}}
	md := &bundle.BundleMetadata{Assets: map[string]string{"main": "m.aimodel"}}
	md.Language.MaxContextLength = 128
	md.Language.Tokenizer = "Org/Model"
	r, err := buildRun(dir, b, md, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Snippets) != 1 || r.Snippets[0].Lang != "python" || len(r.Needs) != 0 || !strings.Contains(r.Driver, "no run recipe") {
		t.Fatalf("run: %+v", r)
	}
	py := r.Snippets[0].Code
	ins, _, _ := dictKeys(py, "inputs")
	sts, zs, _ := dictKeys(py, "state")
	if !sameSet(ins, names(fn.Inputs)) || !sameSet(sts, names(fn.States)) {
		t.Errorf("inputs %v, states %v:\n%s", ins, sts, py)
	}
	if zs["keyCache"] != "2, 1, 2, 1, 16 ml_dtypes.bfloat16" || !strings.Contains(py, "import ml_dtypes") || !strings.Contains(py, `load_function("main")`) {
		t.Errorf("snippet:\n%s", py)
	}
	if !slices.Equal(r.Functions, []string{"main", "prefill"}) || !strings.Contains(r.Tokenizer, "`Org/Model`") {
		t.Errorf("functions %v, tokenizer %s", r.Functions, r.Tokenizer)
	}
}

// --speed: measured figures appear with their device, OS and date under their bundle only; a bad
// file is exit 2 naming the file and the field, before anything is re-run.
func TestCardSpeedFile(t *testing.T) {
	all, _ := sharedCardTrees(t)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("speed.json", `{"measurements": [
  {"bundle": "gpu-pipelined/tinyqwen35_code_decode_int8lin/", "device": "iPhone 17 Pro", "os": "iOS 27.0", "date": "2026-09-01", "decode_tok_s": 70.5, "prompt_tok_s": 69.25, "command": "llm-benchmark -p 128 -g 256 -n 3"},
  {"bundle": "ios-ane/tinyqwen35_code_decode_int8", "device": "Mac mini M4", "os": "macOS 27.0", "date": "2026-08-30", "decode_tok_s": 41}
]}`)
	c, err := BuildCard(all, CardOptions{Speed: good})
	if err != nil {
		t.Fatal(err)
	}
	var md bytes.Buffer
	if err := c.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	sections := parseRunSections(t, md.String())
	if s := sections["gpu-pipelined/tinyqwen35_code_decode_int8lin/"].text; !strings.Contains(s, "| iPhone 17 Pro | iOS 27.0 | 2026-09-01 | 70.5 | 69.25 | `llm-benchmark -p 128 -g 256 -n 3` |") {
		t.Errorf("gpu-pipelined speed row missing:\n%s", s)
	}
	if s := sections["ios-ane/tinyqwen35_code_decode_int8/"].text; !strings.Contains(s, "| Mac mini M4 | macOS 27.0 | 2026-08-30 | 41 | — | — |") {
		t.Errorf("ios-ane speed row missing:\n%s", s)
	}
	for _, p := range []string{"macos/tinyqwen35_code_decode_int8/", "ios-gpu/tinyqwen35_code_ios_hc0_int8/"} {
		if s := sections[p].text; !strings.Contains(s, "Measured speed: none supplied") || strings.Contains(s, "tok/s |") {
			t.Errorf("%s shows a speed it was not given:\n%s", p, s)
		}
	}
	entry := `{"bundle": "gpu-pipelined/tinyqwen35_code_decode_int8lin/", "device": "d", "os": "o", "date": "2026-09-01", "decode_tok_s": 1}`
	bad := []struct{ name, body, want string }{
		{"missing device", strings.Replace(entry, `"device": "d"`, `"device": ""`, 1), "measurements[0].device: missing or empty"},
		{"bad date", strings.Replace(entry, "2026-09-01", "1 Sep 2026", 1), "measurements[0].date"},
		{"zero speed", strings.Replace(entry, `"decode_tok_s": 1`, `"decode_tok_s": 0`, 1), "measurements[0].decode_tok_s"},
		{"string speed", strings.Replace(entry, `"decode_tok_s": 1`, `"decode_tok_s": "fast"`, 1), "measurements[0]: field decode_tok_s: string"},
		{"negative prompt", strings.Replace(entry, `"decode_tok_s": 1`, `"decode_tok_s": 1, "prompt_tok_s": -3`, 1), "measurements[0].prompt_tok_s"},
		{"unknown field", strings.Replace(entry, `"os": "o"`, `"os": "o", "tokens_per_second": 3`, 1), `unknown field "tokens_per_second"`},
		{"unknown bundle", strings.Replace(entry, "int8lin/", "int8hu/", 1), "measurements[0].bundle"},
		{"escaping bundle", strings.Replace(entry, "gpu-pipelined/", "../gpu-pipelined/", 1), "measurements[0].bundle"},
	}
	for _, c := range bad {
		p := write(strings.ReplaceAll(c.name, " ", "_")+".json", `{"measurements": [`+c.body+`]}`)
		checkBad(t, c.name, all, p, c.want)
	}
	checkBad(t, "not JSON", all, write("notjson.json", "device,os\n"), "invalid character")
	checkBad(t, "no measurements", all, write("empty.json", "{}"), "measurements: missing")
	checkBad(t, "missing file", all, filepath.Join(dir, "nope.json"), "no such file")
}

func checkBad(t *testing.T, name, tree, file, want string) {
	t.Helper()
	_, err := BuildCard(tree, CardOptions{Speed: file})
	if err == nil || exitcode.Of(err) != exitcode.BadInput || !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), want) {
		t.Errorf("%s: %v (want exit 2 naming %s and %q)", name, err, file, want)
	}
}

// numpyPython is a python3 that imports numpy, or "" (the run test is skipped without one).
func numpyPython() string {
	for _, p := range []string{"python3", "/usr/bin/python3"} {
		if path, err := exec.LookPath(p); err == nil && exec.Command(path, "-c", "import numpy").Run() == nil {
			return path
		}
	}
	return ""
}

// The Python snippets run, from the directory of the card, against a stand-in coreai.runtime
// (testdata/fakecoreai) that holds every call to the contract inspect reads from the bytes:
// exact input and state names, dtypes and shapes, position_ids, the causal mask, states carried
// between calls and K/V columns written back where the host-cache contract says. A 37-token
// prompt exercises two prefill blocks and a remainder; each loop generates 64 tokens.
func TestCardRunPythonSnippetsRun(t *testing.T) {
	python := numpyPython()
	if python == "" {
		t.Skip("no python3 with numpy")
	}
	all, _ := sharedCardTrees(t)
	c, err := BuildCard(all, CardOptions{})
	if err != nil {
		t.Fatal(err)
	}
	type spec [2]any // dtype, shape
	contracts := map[string]any{}
	for _, b := range c.Bundles {
		in, err := bundle.Inspect(filepath.Join(all, filepath.FromSlash(b.Path)))
		if err != nil {
			t.Fatal(err)
		}
		m := findMain(in.Functions)
		io := func(l []bundle.IOSpec) map[string]spec {
			out := map[string]spec{}
			for _, s := range l {
				out[s.Name] = spec{s.DType, s.Shape}
			}
			return out
		}
		contracts[b.Run.Asset] = map[string]any{"function": m.Name, "contract": in.Metadata.QConv.Contract,
			"inputs": io(m.Inputs), "states": io(m.States), "outputs": io(m.Outputs)}
	}
	cj, err := json.Marshal(contracts)
	if err != nil {
		t.Fatal(err)
	}
	fake, err := filepath.Abs(filepath.Join("testdata", "fakecoreai"))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range c.Bundles {
		for _, s := range b.Run.Snippets {
			if s.Lang != "python" {
				continue
			}
			t.Run(b.Path, func(t *testing.T) {
				cmd := exec.Command(python, "-")
				cmd.Dir = all
				cmd.Stdin = strings.NewReader(s.Code)
				cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1", "PYTHONPATH="+fake, "FAKE_CONTRACTS="+string(cj), "FAKE_PROMPT_TOKENS=37")
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				if err := cmd.Run(); err != nil {
					t.Fatalf("%v\n%s\n%s", err, stderr.String(), s.Code)
				}
				if n := len(strings.Fields(stdout.String())); n != 64 {
					t.Errorf("printed %d tokens, want 64: %q", n, stdout.String())
				}
				_, counts, _ := strings.Cut(stderr.String(), "FAKE_CALLS ")
				var calls map[string]int
				if err := json.Unmarshal([]byte(counts), &calls); err != nil {
					t.Fatalf("call counts %q: %v", stderr.String(), err)
				}
				// 37 prompt steps + 63 generated (the first comes from the last prompt step); a
				// prefill companion takes two 16-token blocks, leaving 5 + 63 decode steps.
				want := map[string]int{b.Run.Asset: 100}
				if strings.Contains(b.Path, "_prefill_") {
					want = map[string]int{b.Run.Asset: 2}
					for _, o := range c.Bundles {
						if o.Path == b.CompanionPath {
							want[o.Run.Asset] = 68
						}
					}
				}
				if !maps.Equal(calls, want) {
					t.Errorf("calls %v, want %v", calls, want)
				}
			})
		}
	}
}
