package export

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"qconv/hf"
	"qconv/internal/exitcode"
)

// The card tests share two export trees of the trained fixture, made once per test binary:
// every target with the gate (~6 s), and the ship configuration of gpu-pipelined without it.
var cardTrees struct {
	once     sync.Once
	root     string
	all      string // --target all, gated
	shipNoGt string // --head-sym --target gpu-pipelined --no-gate
	err      error
}

// cardEpoch is SOURCE_DATE_EPOCH for the shared trees: 2026-01-01T00:00:00Z.
const cardEpoch = "1767225600"

func TestMain(m *testing.M) {
	code := m.Run()
	if cardTrees.root != "" {
		os.RemoveAll(cardTrees.root)
	}
	os.Exit(code)
}

func sharedCardTrees(t *testing.T) (all, shipNoGate string) {
	t.Helper()
	cardTrees.once.Do(func() {
		old, had := os.LookupEnv("SOURCE_DATE_EPOCH")
		os.Setenv("SOURCE_DATE_EPOCH", cardEpoch)
		defer func() {
			if had {
				os.Setenv("SOURCE_DATE_EPOCH", old)
			} else {
				os.Unsetenv("SOURCE_DATE_EPOCH")
			}
		}()
		root, err := os.MkdirTemp("", "qconv-card-test-")
		if err != nil {
			cardTrees.err = err
			return
		}
		cardTrees.root = root
		ck, err := hf.Open(filepath.Join("..", "testdata", fixture))
		if err != nil {
			cardTrees.err = err
			return
		}
		defer ck.Close()
		all, ship := filepath.Join(root, "all"), filepath.Join(root, "ship")
		targets, err := ParseTargets("all")
		if err != nil {
			cardTrees.err = err
			return
		}
		if _, err := Run(context.Background(), Options{Checkpoint: ck, Targets: targets, OutDir: all, Version: "test"}); err != nil {
			cardTrees.err = fmt.Errorf("export --target all: %w", err)
			return
		}
		gpu, _ := TargetByName("gpu-pipelined")
		if _, err := Run(context.Background(), Options{Checkpoint: ck, Targets: []*Target{gpu}, Flags: Flags{HeadSym: true}, OutDir: ship, NoGate: true, Version: "test"}); err != nil {
			cardTrees.err = fmt.Errorf("export --head-sym --no-gate: %w", err)
			return
		}
		cardTrees.all, cardTrees.shipNoGt = all, ship
	})
	if cardTrees.err != nil {
		t.Fatal(cardTrees.err)
	}
	return cardTrees.all, cardTrees.shipNoGt
}

// copyTree copies src into a fresh temporary directory (tests that damage a tree work on a copy).
func copyTree(t *testing.T, src string, only ...string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if len(only) > 0 && rel != "." {
			keep := false
			for _, o := range only {
				if rel == o || strings.HasPrefix(rel, o+string(filepath.Separator)) || strings.HasPrefix(o, rel+string(filepath.Separator)) {
					keep = true
				}
			}
			if !keep {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// bundleDirs lists <tree>/<target>/<bundle> by their metadata.json files, independently of the
// card's walker.
func bundleDirs(t *testing.T, tree string) []string {
	t.Helper()
	mds, err := filepath.Glob(filepath.Join(tree, "*", "*", "metadata.json"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range mds {
		out = append(out, filepath.Dir(m))
	}
	slices.Sort(out)
	return out
}

func markdown(t *testing.T, c *Card) string {
	t.Helper()
	var b bytes.Buffer
	if err := c.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// splitRow splits a Markdown pipe-table row into its cells, honouring \| escapes.
func splitRow(line string) []string {
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, "|") || !strings.HasSuffix(line, "|") || strings.HasSuffix(line, `\|`) {
		return nil
	}
	line = line[1 : len(line)-1]
	var cells []string
	var cur strings.Builder
	for i := 0; i < len(line); i++ {
		switch {
		case line[i] == '\\' && i+1 < len(line) && line[i+1] == '|':
			cur.WriteByte('|')
			i++
		case line[i] == '|':
			cells = append(cells, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(line[i])
		}
	}
	return append(cells, strings.TrimSpace(cur.String()))
}

// parseTable reads the first pipe table after the heading line: header, separator, rows.
func parseTable(t *testing.T, md, heading string) (header []string, rows [][]string) {
	t.Helper()
	lines := strings.Split(md, "\n")
	i := slices.Index(lines, heading)
	if i < 0 {
		t.Fatalf("no %q heading in the card", heading)
	}
	for i++; i < len(lines) && !strings.HasPrefix(lines[i], "|"); i++ {
	}
	if i+1 >= len(lines) {
		t.Fatalf("no table after %q", heading)
	}
	header = splitRow(lines[i])
	sep := splitRow(lines[i+1])
	if len(sep) != len(header) {
		t.Fatalf("separator %q does not match header %q", lines[i+1], lines[i])
	}
	for _, s := range sep {
		if !regexp.MustCompile(`^:?-{3,}:?$`).MatchString(s) {
			t.Fatalf("separator cell %q", s)
		}
	}
	for i += 2; i < len(lines) && strings.HasPrefix(lines[i], "|"); i++ {
		r := splitRow(lines[i])
		if len(r) != len(header) {
			t.Fatalf("row %q has %d cells, header %d", lines[i], len(r), len(header))
		}
		rows = append(rows, r)
	}
	return header, rows
}

// exactBytes reads the exact count out of a size cell "2.71 MB (2,706,591 B)" or "999 B".
func exactBytes(t *testing.T, cell string) int64 {
	t.Helper()
	m := regexp.MustCompile(`^(?:[0-9.]+ [kMG]B \(([0-9,]+) B\)|([0-9,]+) B)$`).FindStringSubmatch(cell)
	if m == nil {
		t.Fatalf("size cell %q", cell)
	}
	n, err := strconv.ParseInt(strings.ReplaceAll(m[1]+m[2], ",", ""), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// filesBytes sums the regular files under dir.
func filesBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if !d.IsDir() {
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			n += st.Size()
		}
		return nil
	})
	return n
}

// rawGate is the part of a bundle's metadata.json the card's gate cells must reproduce, read
// without the export package's types.
type rawGate struct {
	QConv struct {
		Target     string          `json:"target"`
		Contract   string          `json:"contract"`
		GateReport json.RawMessage `json:"gate_report"`
	} `json:"qconv"`
}

type rawTotals struct {
	Prompts                int     `json:"prompts"`
	TeacherForcedMatched   int     `json:"teacher_forced_matched"`
	TeacherForcedConfident int     `json:"teacher_forced_confident"`
	GreedyMatch            int     `json:"greedy_match"`
	GreedySteps            int     `json:"greedy_steps"`
	MinPrefillCosine       float64 `json:"min_prefill_cosine"`
}

type rawReport struct {
	Passed  bool `json:"passed"`
	Prompts []struct {
		Prompt struct {
			Name string `json:"name"`
			IDs  []int  `json:"ids"`
		} `json:"prompt"`
		GreedyMatch int   `json:"greedy_match"`
		CandGen     []int `json:"cand_gen_ids"`
	} `json:"prompts"`
	Totals rawTotals `json:"totals"`
}

// embeddedReport reads a bundle's embedded gate report (the decode report of a prefill pair) and
// the number of prompts its companion check found identical (-1 without one).
func embeddedReport(t *testing.T, dir string) (rawReport, int, int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "metadata.json"))
	if err != nil {
		t.Fatal(err)
	}
	var md rawGate
	if err := json.Unmarshal(b, &md); err != nil {
		t.Fatal(err)
	}
	var rep rawReport
	identical, checked := -1, -1
	if md.QConv.Contract == "host-cache prefill" {
		var pair struct {
			Decode    rawReport `json:"decode"`
			Companion struct {
				Prompts []struct {
					Identical bool `json:"identical"`
				} `json:"prompts"`
			} `json:"companion"`
		}
		if err := json.Unmarshal(md.QConv.GateReport, &pair); err != nil {
			t.Fatal(err)
		}
		rep, identical, checked = pair.Decode, 0, len(pair.Companion.Prompts)
		for _, p := range pair.Companion.Prompts {
			if p.Identical {
				identical++
			}
		}
	} else if err := json.Unmarshal(md.QConv.GateReport, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Prompts) == 0 {
		t.Fatalf("%s: no embedded gate report", dir)
	}
	return rep, identical, checked
}

// The pick-your-platform table of an `--target all` export, parsed back from the Markdown, lists
// every bundle once with the path, schemes, sizes, gate counts and contract the bytes, the files
// and the embedded reports give.
func TestCardTableMatchesBundles(t *testing.T) {
	all, _ := sharedCardTrees(t)
	c, err := BuildCard(all, CardOptions{})
	if err != nil {
		t.Fatal(err)
	}
	md := markdown(t, c)
	header, rows := parseTable(t, md, "## Pick your platform")
	if !slices.Equal(header, CardTableHeader) {
		t.Fatalf("header %q", header)
	}
	col := func(name string) int { return slices.Index(header, name) }
	dirs := bundleDirs(t, all)
	if len(dirs) != 5 || len(rows) != len(dirs) {
		t.Fatalf("%d rows for %d bundles %v", len(rows), len(dirs), dirs)
	}
	// The fixture's default recipes (docs/targets.md): linear int8 block-32 on
	// gpu-pipelined, 256-entry LUTs in groups of 32 output channels elsewhere; tied fp16 heads.
	wantWeights := map[string]string{"gpu-pipelined": "int8 block-32", "ios-gpu": "int8 LUT (256-entry, g32)", "ios-ane": "int8 LUT (256-entry, g32)", "macos": "int8 LUT (256-entry, g32)"}
	wantDerived := map[string]string{"gpu-pipelined": "int8-block32", "ios-gpu": "int8-lut", "ios-ane": "int8-lut", "macos": "int8-lut"}
	for i, dir := range dirs {
		r := rows[i]
		target, name := filepath.Base(filepath.Dir(dir)), filepath.Base(dir)
		in, err := Inspect(dir)
		if err != nil {
			t.Fatal(err)
		}
		if r[col("target")] != target || r[col("path")] != "`"+target+"/"+name+"/`" {
			t.Errorf("row %d: target %q path %q, want %s/%s", i, r[col("target")], r[col("path")], target, name)
		}
		if in.Derived.Weights != wantDerived[target] || r[col("weights")] != wantWeights[target] {
			t.Errorf("%s: weights cell %q (inspect %s), want %q", name, r[col("weights")], in.Derived.Weights, wantWeights[target])
		}
		if in.Derived.Head != "tied" || in.Tensors[0].Name != "embed_tokens.weight" || in.Tensors[0].Format != "f16" || r[col("head")] != "fp16 tied" {
			t.Errorf("%s: head cell %q (inspect head %s)", name, r[col("head")], in.Derived.Head)
		}
		if got, want := exactBytes(t, r[col("size")]), filesBytes(t, dir); got != want {
			t.Errorf("%s: size cell says %d bytes, the directory's files hold %d", name, got, want)
		}
		st, err := os.Stat(filepath.Join(dir, name+".aimodel", "main.mlirb"))
		if err != nil {
			t.Fatal(err)
		}
		if got := exactBytes(t, r[col("main.mlirb")]); got != st.Size() || got != in.MainBytes {
			t.Errorf("%s: main.mlirb cell %d bytes, file %d, inspect %d", name, got, st.Size(), in.MainBytes)
		}
		if r[col("contract")] != in.Derived.Contract {
			t.Errorf("%s: contract %q, inspect %q", name, r[col("contract")], in.Derived.Contract)
		}
		rep, identical, checked := embeddedReport(t, dir)
		tt := rep.Totals
		wantGate := "passed"
		if identical >= 0 {
			wantGate = fmt.Sprintf("passed; companion identical on %d/%d prompts", identical, checked)
		}
		want := map[string]string{
			"gate":                 wantGate,
			"teacher-forced top-1": fmt.Sprintf("%d/%d", tt.TeacherForcedMatched, tt.TeacherForcedConfident),
			"greedy":               fmt.Sprintf("%d/%d", tt.GreedyMatch, tt.GreedySteps),
			"prompts":              strconv.Itoa(len(rep.Prompts)),
			"min prefill cosine":   fmt.Sprintf("%.6f", tt.MinPrefillCosine),
		}
		for k, v := range want {
			if r[col(k)] != v {
				t.Errorf("%s: %s cell %q, the embedded report gives %q", name, k, r[col(k)], v)
			}
		}
		// The report's greedy total is the sum over its prompts (16 tokens each by default).
		sum := 0
		for _, p := range rep.Prompts {
			sum += len(p.CandGen)
		}
		if !rep.Passed || tt.GreedySteps != sum || sum != 16*len(rep.Prompts) {
			t.Errorf("%s: report passed %v, greedy steps %d, prompts' %d", name, rep.Passed, tt.GreedySteps, sum)
		}
	}
}

// The rest of the card: front matter without invented fields, the run contract as the bytes
// declare it, the recurrence dtype per device, per-prompt parity, and byte-identical output.
func TestCardSections(t *testing.T) {
	all, _ := sharedCardTrees(t)
	c, err := BuildCard(all, CardOptions{})
	if err != nil {
		t.Fatal(err)
	}
	md := markdown(t, c)
	again, err := BuildCard(all, CardOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if md2 := markdown(t, again); md2 != md {
		t.Error("two cards of the same tree differ")
	}

	// Front matter: YAML between --- lines; the fixture is a local directory with no README, so
	// no license and no base_model.
	if !strings.HasPrefix(md, "---\n") {
		t.Fatalf("card does not open with front matter:\n%.200s", md)
	}
	end := strings.Index(md[4:], "\n---\n")
	if end < 0 {
		t.Fatal("front matter is not closed")
	}
	front := md[4 : 4+end+1]
	for _, want := range []string{"pipeline_tag: text-generation\n", "library_name: coreai\n", "tags:\n", "- qwen3_5\n", "- int8\n"} {
		if !strings.Contains(front, want) {
			t.Errorf("front matter lacks %q:\n%s", want, front)
		}
	}
	for _, absent := range []string{"license", "base_model"} {
		if strings.Contains(front, absent) {
			t.Errorf("front matter invents %s:\n%s", absent, front)
		}
	}
	if !strings.Contains(md, "- License: not stated.") {
		t.Error("the card does not say the license is unknown")
	}
	if got := c.Source.CompilationDates; !slices.Equal(got, []string{"2026-01-01T00:00:00Z"}) {
		t.Errorf("compilation dates %v, want SOURCE_DATE_EPOCH's", got)
	}
	if len(c.NotGated) != 0 || strings.Contains(md, "NOT GATED") {
		t.Errorf("a gated tree shows not-gated bundles: %v", c.NotGated)
	}

	sections := map[string]string{}
	for _, part := range strings.Split(md, "\n#### ")[1:] {
		head, body, _ := strings.Cut(part, "\n")
		sections[strings.Trim(head, "`")] = body
	}
	for _, b := range c.Bundles {
		dir := filepath.Join(all, filepath.FromSlash(b.Path))
		in, err := Inspect(dir)
		if err != nil {
			t.Fatal(err)
		}
		// The I/O table of the contract section lists exactly @main's arguments and results.
		_, rows := parseTable(t, md, "#### `"+b.Path+"`")
		var want [][]string
		f := in.Functions[0]
		for _, l := range []struct {
			kind  string
			specs []IOSpec
		}{{"input", f.Inputs}, {"state", f.States}, {"output", f.Outputs}} {
			for _, s := range l.specs {
				want = append(want, []string{l.kind, s.Name, s.DType, strings.ReplaceAll(strings.ReplaceAll(fmt.Sprint(s.Shape), " ", ", "), "-1", "?")})
			}
		}
		if len(rows) != len(want) {
			t.Fatalf("%s: %d I/O rows, @main has %d", b.Path, len(rows), len(want))
		}
		for i, r := range rows {
			kind, _, _ := strings.Cut(r[0], " (")
			if kind != want[i][0] || r[1] != "`"+want[i][1]+"`" || r[2] != want[i][2] || r[3] != want[i][3] {
				t.Errorf("%s: I/O row %q, want %q", b.Path, r, want[i])
			}
		}
		body := sections[b.Path]
		pipelined := strings.Contains(body, "`COREAI_CHUNK_THRESHOLD=1`") && strings.Contains(body, "never `warmup()`")
		host := strings.Contains(body, "-1e4") && strings.Contains(body, "`k_cur`/`v_cur`")
		switch b.Contract {
		case "pipelined":
			if !pipelined || host {
				t.Errorf("%s: pipelined rules missing or host rules present:\n%s", b.Path, body)
			}
		case "host-cache decode":
			if pipelined || !host || !strings.Contains(body, "[1, 1, 1, 2049]") {
				t.Errorf("%s: host-cache rules missing:\n%s", b.Path, body)
			}
		case "host-cache prefill":
			if pipelined || !host || !strings.Contains(body, "whole 16-token blocks") || !strings.Contains(body, "[1, 1, 16, 2064]") {
				t.Errorf("%s: prefill rules missing:\n%s", b.Path, body)
			}
		default:
			t.Errorf("%s: contract %q", b.Path, b.Contract)
		}
		// docs/constraints.md, constraint 7: fp32 recurrence on GPU, fp16 on the ANE, read from the state's dtype.
		wantRec := map[string]string{"GPU": "f32", "ANE": "f16"}[b.Device]
		if b.Recurrence != wantRec || b.evidence(7) != "verified: recurrent state "+wantRec {
			t.Errorf("%s on %s: recurrence %s (%q)", b.Path, b.Device, b.Recurrence, b.evidence(7))
		}
		// Parity: one row per embedded prompt, with its greedy count.
		rep, _, _ := embeddedReport(t, dir)
		if b.Contract == "host-cache prefill" {
			if b.Gate.Companion == nil || len(b.Gate.Companion.Prompts) != len(rep.Prompts) {
				t.Errorf("%s: companion check %+v", b.Path, b.Gate.Companion)
			}
			continue
		}
		if len(b.Gate.Prompts) != len(rep.Prompts) {
			t.Fatalf("%s: %d parity rows, report has %d prompts", b.Path, len(b.Gate.Prompts), len(rep.Prompts))
		}
		for i, p := range rep.Prompts {
			cp := b.Gate.Prompts[i]
			if cp.Name != p.Prompt.Name || cp.Tokens != len(p.Prompt.IDs) || cp.Greedy != fmt.Sprintf("%d/%d", p.GreedyMatch, len(p.CandGen)) {
				t.Errorf("%s: parity row %+v, report prompt %s %d/%d", b.Path, cp, p.Prompt.Name, p.GreedyMatch, len(p.CandGen))
			}
		}
	}
	// macos ships the ios-ane bytes; the prefill companion finds its decode partner.
	byPath := map[string]CardBundle{}
	for _, b := range c.Bundles {
		byPath[b.Path] = b
	}
	for _, b := range c.Bundles {
		switch {
		case b.Target == "macos" && b.SameBytesAs != "ios-ane/"+b.Name+"/":
			t.Errorf("macos bundle: same_bytes_as %q", b.SameBytesAs)
		case b.Target == "ios-gpu" && byPath[b.CompanionPath].Companion != b.Name:
			t.Errorf("%s: companion %q does not name it back", b.Path, b.CompanionPath)
		}
	}
}

// A bundle directory renamed after export (the `_perchan_sym` story) fails the card with exit 2,
// naming the directory and the disagreement; so does a bundle moved under another target.
func TestCardRejectsDisagreement(t *testing.T) {
	_, ship := sharedCardTrees(t)
	renamed := copyTree(t, ship)
	good := bundleDirs(t, renamed)[0]
	bad := filepath.Join(filepath.Dir(good), "tinyqwen35_code_decode_int8hu_perchan_sym")
	if err := os.Rename(good, bad); err != nil {
		t.Fatal(err)
	}
	c, err := BuildCard(renamed, CardOptions{})
	if exitcode.Of(err) != exitcode.BadInput || c != nil {
		t.Fatalf("renamed bundle: card %v, err %v (exit %d), want exit 2", c != nil, err, exitcode.Of(err))
	}
	for _, want := range []string{"gpu-pipelined/tinyqwen35_code_decode_int8hu_perchan_sym", `directory is named "tinyqwen35_code_decode_int8hu_perchan_sym" but metadata.json says "tinyqwen35_code_decode_int8hu_block32_sym"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}

	moved := copyTree(t, ship)
	src := bundleDirs(t, moved)[0]
	if err := os.MkdirAll(filepath.Join(moved, "ios-ane"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(src, filepath.Join(moved, "ios-ane", filepath.Base(src))); err != nil {
		t.Fatal(err)
	}
	_, err = BuildCard(moved, CardOptions{})
	if exitcode.Of(err) != exitcode.BadInput || err == nil || !strings.Contains(err.Error(), "sits under target directory ios-ane but its metadata says target gpu-pipelined") {
		t.Errorf("moved bundle: %v", err)
	}

	mixed := copyTree(t, ship)
	other := openCk(t, filepath.Join("random", "tiny_tied_4L"))
	gpu, _ := TargetByName("gpu-pipelined")
	if _, err := Run(context.Background(), Options{Checkpoint: other, Targets: []*Target{gpu}, OutDir: mixed, NoGate: true, Version: "test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := BuildCard(mixed, CardOptions{}); exitcode.Of(err) != exitcode.BadInput || !strings.Contains(err.Error(), "were exported from different checkpoints") {
		t.Errorf("bundles of two checkpoints: %v", err)
	}

	stray := copyTree(t, ship)
	if err := os.Mkdir(filepath.Join(stray, "gpu"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := BuildCard(stray, CardOptions{}); exitcode.Of(err) != exitcode.BadInput || !strings.Contains(err.Error(), "not a target directory") {
		t.Errorf("stray directory: %v", err)
	}
	if _, err := BuildCard(t.TempDir(), CardOptions{}); exitcode.Of(err) != exitcode.BadInput || !strings.Contains(err.Error(), "no bundles") {
		t.Errorf("empty tree: %v", err)
	}
}

// editMetadata rewrites a bundle's metadata.json through a generic JSON tree.
func editMetadata(t *testing.T, dir string, edit func(q map[string]any)) {
	t.Helper()
	path := filepath.Join(dir, "metadata.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var md map[string]any
	if err := json.Unmarshal(b, &md); err != nil {
		t.Fatal(err)
	}
	edit(md["qconv"].(map[string]any))
	out, err := json.MarshalIndent(md, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A gate summary that is not its embedded report's is a disagreement (exit 2); a report that
// records a failure fails the card (exit 3).
func TestCardGateReportChecks(t *testing.T) {
	all, _ := sharedCardTrees(t)
	tampered := copyTree(t, all, "gpu-pipelined")
	dir := bundleDirs(t, tampered)[0]
	editMetadata(t, dir, func(q map[string]any) { q["gate"].(map[string]any)["greedy"] = "80/80" })
	_, err := BuildCard(tampered, CardOptions{})
	if exitcode.Of(err) != exitcode.BadInput || !strings.Contains(err.Error(), "gpu-pipelined/tinyqwen35_code_decode_int8lin") || !strings.Contains(err.Error(), "greedy 80/80") || !strings.Contains(err.Error(), "is not the embedded report's") {
		t.Errorf("tampered summary: exit %d: %v", exitcode.Of(err), err)
	}

	failed := copyTree(t, all, "gpu-pipelined")
	dir = bundleDirs(t, failed)[0]
	const why = "greedy step 3: candidate 1, reference 2 at margin 0.500 (not a tie)"
	editMetadata(t, dir, func(q map[string]any) {
		rep := q["gate_report"].(map[string]any)
		p0 := rep["prompts"].([]any)[0].(map[string]any)
		p0["passed"], p0["failures"] = false, []any{why}
		first := "prompt " + p0["prompt"].(map[string]any)["name"].(string) + ": " + why
		rep["passed"] = false
		tot := rep["totals"].(map[string]any)
		tot["prompts_passed"] = tot["prompts_passed"].(float64) - 1
		tot["first_failure"] = first
		g := q["gate"].(map[string]any)
		g["passed"], g["first_failure"] = false, first
	})
	_, err = BuildCard(failed, CardOptions{})
	if exitcode.Of(err) != exitcode.GateFailed || !strings.Contains(err.Error(), why) {
		t.Errorf("failed gate: exit %d: %v", exitcode.Of(err), err)
	}
}

// A bundle exported with --no-gate is NOT GATED in the table and in a warning above it; the
// untied int8 head reads as the bytes and recipe state it.
func TestCardNotGatedAndUntiedHead(t *testing.T) {
	_, ship := sharedCardTrees(t)
	c, err := BuildCard(ship, CardOptions{})
	if err != nil {
		t.Fatal(err)
	}
	md := markdown(t, c)
	header, rows := parseTable(t, md, "## Pick your platform")
	if len(rows) != 1 {
		t.Fatalf("%d rows", len(rows))
	}
	r := rows[0]
	cell := func(name string) string { return r[slices.Index(header, name)] }
	if cell("head") != "int8 block-32 absmax (untied)" || cell("weights") != "int8 block-32" {
		t.Errorf("weights %q head %q", cell("weights"), cell("head"))
	}
	if cell("gate") != "**not gated**" || cell("greedy") != "—" {
		t.Errorf("gate %q greedy %q", cell("gate"), cell("greedy"))
	}
	path := "gpu-pipelined/tinyqwen35_code_decode_int8hu_block32_sym/"
	if !slices.Equal(c.NotGated, []string{path}) {
		t.Errorf("not gated %v", c.NotGated)
	}
	warn, table := strings.Index(md, "NOT GATED"), strings.Index(md, "## Pick your platform")
	if warn < 0 || warn > table || !strings.Contains(md[warn:table], "`"+path+"`") {
		t.Errorf("no not-gated warning naming the bundle above the table")
	}
	b := c.Bundles[0]
	if !slices.Contains(b.Departures, "head int8 block32 (default tied)") {
		t.Errorf("departures %v", b.Departures)
	}
	if b.evidence(4) != "int8 block-32 absmax (untied)" || b.evidence(9) != "**NOT GATED**" {
		t.Errorf("constraint evidence %q, %q", b.evidence(4), b.evidence(9))
	}
}

// With --reference the gate is re-run on the shipped bytes: the card says so, a bundle exported
// with --no-gate gets fresh results, a gated one's fresh results equal its embedded report (two
// independent runs: export's gate on the staged module, Verify on the bytes read back), and the
// license comes from the reference's README.md front matter.
func TestCardReverify(t *testing.T) {
	all, ship := sharedCardTrees(t)
	tree := copyTree(t, all, "gpu-pipelined")
	shipDir := bundleDirs(t, ship)[0]
	copied := copyTree(t, shipDir)
	if err := os.Rename(copied, filepath.Join(tree, "gpu-pipelined", filepath.Base(shipDir))); err != nil {
		t.Fatal(err)
	}
	ckDir := copyTree(t, filepath.Join("..", "testdata", fixture))
	readme := "---\nlicense: apache-2.0 # the fixture's stated license for this test\ntags:\n- code\n---\n# tiny\n"
	if err := os.WriteFile(filepath.Join(ckDir, "README.md"), []byte(readme), 0o644); err != nil {
		t.Fatal(err)
	}
	ck, err := hf.Open(ckDir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	var log bytes.Buffer
	c, err := BuildCard(tree, CardOptions{Reference: ck, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Reverified || len(c.NotGated) != 0 || len(c.Bundles) != 2 {
		t.Fatalf("reverified %v, not gated %v, %d bundles", c.Reverified, c.NotGated, len(c.Bundles))
	}
	if n := strings.Count(log.String(), "re-running the gate"); n != 2 {
		t.Errorf("%d gate runs for 2 distinct bundles:\n%s", n, log.String())
	}
	md := markdown(t, c)
	// The card names the reference by its name, never by the local path it was opened from.
	if strings.Contains(md, ckDir) || strings.Contains(md, filepath.Dir(ckDir)) {
		t.Errorf("card prints the local path %s", ckDir)
	}
	if !strings.Contains(md, "re-run against `"+filepath.Base(ckDir)+"` while generating this card") || !strings.Contains(md, "\nlicense: apache-2.0\n") {
		t.Errorf("card does not state the re-run or the license:\n%.1500s", md)
	}
	for _, b := range c.Bundles {
		if b.Gate.Status != "passed" || !b.Gate.Rerun || !b.Gate.Summary.Passed {
			t.Errorf("%s: gate %+v", b.Path, b.Gate)
		}
		switch b.Name {
		case "tinyqwen35_code_decode_int8lin":
			rep, _, _ := embeddedReport(t, filepath.Join(all, "gpu-pipelined", b.Name))
			s := b.Gate.Summary
			if b.Gate.MatchesEmbedded == nil || !*b.Gate.MatchesEmbedded || s.Greedy != fmt.Sprintf("%d/%d", rep.Totals.GreedyMatch, rep.Totals.GreedySteps) || s.MinPrefillCosine != rep.Totals.MinPrefillCosine {
				t.Errorf("%s: fresh %+v, embedded totals %+v", b.Name, s, rep.Totals)
			}
		case "tinyqwen35_code_decode_int8hu_block32_sym":
			if b.Gate.MatchesEmbedded != nil || b.Gate.Options == nil || b.Gate.Options.Tokens != 16 || len(b.Gate.Prompts) != 6 {
				t.Errorf("%s: fresh gate on a --no-gate bundle: %+v", b.Name, b.Gate)
			}
		}
	}

	other, err := hf.Open(filepath.Join("..", "testdata", "random", "tiny_tied_4L"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := BuildCard(tree, CardOptions{Reference: other}); exitcode.Of(err) != exitcode.BadInput || !strings.Contains(err.Error(), "--reference") {
		t.Errorf("reference from another checkpoint: exit %d: %v", exitcode.Of(err), err)
	}
}

func TestFormatSize(t *testing.T) {
	for _, c := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"}, {999, "999 B"}, {1000, "1.00 kB (1,000 B)"}, {2706591, "2.71 MB (2,706,591 B)"},
		{999_999_999, "1000.00 MB (999,999,999 B)"}, {1_071_234_567, "1.07 GB (1,071,234,567 B)"},
	} {
		if got := FormatSize(c.n); got != c.want {
			t.Errorf("FormatSize(%d) = %q, want %q", c.n, got, c.want)
		}
	}
}

func TestMarkdownCellsAndYAML(t *testing.T) {
	if got := splitRow("| " + mdCell("a|b\nc") + " | d |"); !slices.Equal(got, []string{"a|b c", "d"}) {
		t.Errorf("escaped cell reads back as %q", got)
	}
	for in, want := range map[string]string{"apache-2.0": "apache-2.0", "Qwen/Qwen3.5-0.8B": "Qwen/Qwen3.5-0.8B", "a: b": `"a: b"`, "no": `"no"`, "": `""`} {
		if got := yamlScalar(in); got != want {
			t.Errorf("yamlScalar(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestReadmeLicense(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ text, license, name, link string }{
		{"---\nlicense: other\nlicense_name: \"qwen research\"\nlicense_link: https://example.com/LICENSE\n---\n", "other", "qwen research", "https://example.com/LICENSE"},
		{"---\nlanguage:\n- en\nlicense: 'mit'\n---\nlicense: apache-2.0\n", "mit", "", ""},
		{"# no front matter\nlicense: mit\n", "", "", ""},
		{"---\ntags:\n  - license: nested\n---\n", "", "", ""},
	} {
		p := filepath.Join(dir, "README.md")
		if err := os.WriteFile(p, []byte(c.text), 0o644); err != nil {
			t.Fatal(err)
		}
		l, n, k := readmeLicense(p)
		if l != c.license || n != c.name || k != c.link {
			t.Errorf("%q: %q %q %q, want %q %q %q", c.text, l, n, k, c.license, c.name, c.link)
		}
	}
	if l, _, _ := readmeLicense(filepath.Join(dir, "absent.md")); l != "" {
		t.Errorf("absent README: %q", l)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "README.md")
	for _, data := range []string{"first\n", "second, longer\n"} {
		if err := WriteFileAtomic(p, []byte(data)); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil || string(b) != data {
			t.Fatalf("read %q, %v; want %q", b, err, data)
		}
	}
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, %v", st.Mode(), err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	if err := WriteFileAtomic(filepath.Join(dir, "missing", "README.md"), []byte("x")); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
}

// A checkpoint resolved from the Hugging Face cache records its repo id and revision: the card's
// front matter names it as the base model, and its title follows it.
func TestCardFrontMatterFromHubCache(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("HF_HUB_CACHE", cache)
	t.Setenv("SOURCE_DATE_EPOCH", cardEpoch)
	const commit = "0123456789abcdef0123456789abcdef01234567"
	repo := filepath.Join(cache, "models--Example--TinyQwen3.5-Code")
	snap := copyTree(t, filepath.Join("..", "testdata", fixture))
	if err := os.MkdirAll(filepath.Join(repo, "snapshots"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(snap, filepath.Join(repo, "snapshots", commit)); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(repo, "refs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "refs", "main"), []byte(commit), 0o644); err != nil {
		t.Fatal(err)
	}
	ck, err := hf.Open("Example/TinyQwen3.5-Code")
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	out := t.TempDir()
	gpu, _ := TargetByName("gpu-pipelined")
	if _, err := Run(context.Background(), Options{Checkpoint: ck, Targets: []*Target{gpu}, OutDir: out, NoGate: true, Version: "test"}); err != nil {
		t.Fatal(err)
	}
	c, err := BuildCard(out, CardOptions{})
	if err != nil {
		t.Fatal(err)
	}
	md := markdown(t, c)
	front, _, _ := strings.Cut(md[4:], "\n---\n")
	for _, want := range []string{"base_model: Example/TinyQwen3.5-Code\n", "base_model_relation: quantized\n"} {
		if !strings.Contains(front+"\n", want) {
			t.Errorf("front matter lacks %q:\n%s", want, front)
		}
	}
	if strings.Contains(front, "license") {
		t.Errorf("license invented:\n%s", front)
	}
	if c.Title != "TinyQwen3.5-Code for Apple Core AI" || !strings.Contains(md, "\n# TinyQwen3.5-Code for Apple Core AI\n") {
		t.Errorf("title %q", c.Title)
	}
	if !strings.Contains(md, "(Hugging Face `Example/TinyQwen3.5-Code` at revision `"+commit+"`)") {
		t.Errorf("source does not name the repo and revision:\n%s", md[strings.Index(md, "## Source"):][:600])
	}
	if c.Bundles[0].Name != "tinyqwen3_5_code_decode_int8lin" {
		t.Errorf("bundle %s", c.Bundles[0].Name)
	}
}
