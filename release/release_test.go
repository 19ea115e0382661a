package release

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"qconv/bundle"
	"qconv/internal/exitcode"
)

const head = `
date = "2026-03-01T00:00:00Z"
[source]
path = "../testdata/tinyqwen35-code"
`

// writeManifest writes a manifest into the repository's release/ directory's temp twin, so its
// relative source path resolves to testdata/ exactly as from a file beside the package.
func writeManifest(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	abs, err := filepath.Abs("../testdata")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(abs, filepath.Join(dir, "testdata")); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "m")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(sub, "release.toml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Every manifest mistake is bad input naming the field (and the file).
func TestLoadRejects(t *testing.T) {
	ok := "[[bundle]]\nname = \"a\"\ntarget = \"gpu-pipelined\"\n"
	cases := []struct{ name, body, want string }{
		{"unknown key", head + ok + "wieghts = \"int8\"\n", "unknown field(s) bundle.wieghts"},
		{"no source", "[[bundle]]\nname = \"a\"\ntarget = \"macos\"\n", "source: give exactly one of path"},
		{"two sources", head + "repo = \"Qwen/Qwen3.5-0.8B@main\"\n" + ok, "source: give exactly one"},
		{"bad date", "date = \"yesterday\"\n[source]\npath = \"x\"\n" + ok, "date: \"yesterday\" is not an RFC 3339"},
		{"no bundles", head, "no [[bundle]]"},
		{"bad name", head + "[[bundle]]\nname = \"Ship It\"\ntarget = \"macos\"\n", "name \"Ship It\""},
		{"duplicate name", head + ok + ok, "bundle \"a\": name used twice"},
		{"unknown target", head + "[[bundle]]\nname = \"a\"\ntarget = \"watchos\"\n", "target \"watchos\""},
		{"bad layout", head + ok + "layout = \"flat\"\n", "layout \"flat\""},
		{"path under another target", head + ok + "path = \"macos/x\"\n", "path \"macos/x\": must be gpu-pipelined/<name>"},
		{"bare path without .aimodel", head + ok + "layout = \"bare\"\npath = \"gpu-pipelined/x\"\n", "a bare layout ends in .aimodel"},
		{"nested path", head + ok + "path = \"gpu-pipelined/x/y\"\n", "one directory under"},
		{"external with a recipe", head + ok + "path = \"gpu-pipelined/x\"\nexternal = \"kernels\"\nweights = \"int8\"\n", "takes no recipe"},
		{"external without a path", head + ok + "external = \"kernels\"\n", "needs its path"},
		{"gate margin", head + "[gate]\nmin_margin = 2.0\n" + ok, "gate.min_margin: 2"},
		{"syntax", head + "[[bundle]\n", "line "},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := writeManifest(t, c.body)
			_, err := Load(p)
			if err == nil {
				t.Fatalf("Load accepted:\n%s", c.body)
			}
			if exitcode.Of(err) != exitcode.BadInput || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
				t.Errorf("error %q (exit %d), want exit 2 naming %s and %q", err, exitcode.Of(err), p, c.want)
			}
		})
	}
}

func run(t *testing.T, body string, opt Options) (*Result, error) {
	t.Helper()
	m, err := Load(writeManifest(t, body))
	if err != nil {
		t.Fatal(err)
	}
	ck, err := OpenSource(m)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	opt.Manifest = m
	return Run(context.Background(), ck, opt)
}

// A published path that is not the derived name needs its reason; the error names both names.
func TestLegacyPathNeedsReason(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	_, err := run(t, head+"[[bundle]]\nname = \"ship\"\ntarget = \"gpu-pipelined\"\nweights = \"int8hu\"\nhead_sym = true\npath = \"gpu-pipelined/tinyqwen35_code_decode_int8hu_perchan_sym\"\n", Options{OutDir: out, DryRun: true})
	if exitcode.Of(err) != exitcode.BadInput || !strings.Contains(err.Error(), "bundle ship") || !strings.Contains(err.Error(), "tinyqwen35_code_decode_int8hu_block32_sym") || !strings.Contains(err.Error(), "legacy_name") {
		t.Fatalf("err = %v, want exit 2 naming the bundle, the derived name and legacy_name", err)
	}
}

// All or nothing: one bundle failing its gate (int4 on the trained model) publishes nothing,
// not even the int8 bundle that passed, and leaves no directory behind.
func TestGateFailurePublishesNothing(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	res, err := run(t, head+`
[[bundle]]
name = "good"
target = "gpu-pipelined"
weights = "int8lin"
[[bundle]]
name = "bad"
target = "gpu-pipelined"
weights = "int4-block32"
`, Options{OutDir: out})
	if exitcode.Of(err) != exitcode.GateFailed {
		t.Fatalf("err = %v, want exit 3", err)
	}
	if _, serr := os.Stat(out); !os.IsNotExist(serr) {
		t.Errorf("%s exists after a failed gate", out)
	}
	var failed []string
	for _, b := range res.Bundles {
		if b.Export != nil && !b.Export.Gate.Passed {
			failed = append(failed, b.Name)
		}
	}
	if strings.Join(failed, ",") != "bad" {
		t.Errorf("failed bundles %v, want [bad]", failed)
	}
}

// A lone prefill companion is gated with its decode partner, which is built but not published;
// --check then reports a declared file removed, an undeclared entry, and a drifted card.
func TestCompanionPartnerAndCheckKinds(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	body := head + `
[[bundle]]
name = "pre"
target = "ios-gpu"
graph = "prefill"
weights = "int8"
max_ctx = 256
layout = "bare"
`
	res, err := run(t, body, Options{OutDir: out})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.GateOnly) != 1 || res.GateOnly[0] != "ios-gpu/tinyqwen35_code_ios_hc0_int8" {
		t.Errorf("gate-only partners %v", res.GateOnly)
	}
	asset := filepath.Join(out, "ios-gpu", "tinyqwen35_code_ios_hc_prefill_q16_b256_int8.aimodel")
	if got := entriesOf(t, filepath.Join(out, "ios-gpu")); got != "tinyqwen35_code_ios_hc_prefill_q16_b256_int8.aimodel" {
		t.Fatalf("ios-gpu holds %s", got)
	}
	in, err := bundle.Inspect(asset)
	if err != nil || in.Layout != "bare" || in.Metadata.QConv.Companion != "tinyqwen35_code_ios_hc0_int8" {
		t.Fatalf("inspect %s: %v %+v", asset, err, in)
	}
	if err := os.Remove(filepath.Join(asset, "main.hash")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(out, "macos"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(out, "macos", "old_bundle"), 0o755); err != nil {
		t.Fatal(err)
	}
	res, err = run(t, body, Options{OutDir: out, Check: true})
	if exitcode.Of(err) != exitcode.Drift {
		t.Fatalf("err = %v, want exit 4", err)
	}
	var got []string
	for _, d := range res.Differences {
		got = append(got, d.Kind+" "+d.Bundle+" "+d.Path)
	}
	want := []string{
		"missing pre ios-gpu/tinyqwen35_code_ios_hc_prefill_q16_b256_int8.aimodel/main.hash",
		"not declared  macos/old_bundle",
		"drifted  README.md",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("differences:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func entriesOf(t *testing.T, dir string) string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return strings.Join(names, ",")
}

func TestNamingNote(t *testing.T) {
	cases := []struct{ pub, der, want string }{
		{"m_decode_int8hu_perchan_sym", "m_decode_int8hu_block32_sym", "the name says `perchan` where the bytes hold `block32`"},
		{"m_ios_hc0", "m_ios_hc0_fp16", "the name leaves out `fp16`, which the bytes hold"},
		{"m_decode_int8_v1", "m_decode_int8", "the name adds `v1`, which the bytes do not hold"},
	}
	for _, c := range cases {
		got := (&bundle.PublishedAs{Name: c.pub, DerivedName: c.der, Reason: "kept to avoid breaking download paths."}).NamingNote()
		want := "`" + c.pub + "` is a legacy name: " + c.want + " (the naming rule names these bytes `" + c.der + "`); kept to avoid breaking download paths"
		if got != want {
			t.Errorf("got  %s\nwant %s", got, want)
		}
	}
}
