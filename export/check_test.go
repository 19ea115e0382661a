package export

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"qconv/bundle"
	"qconv/hf"
	"qconv/oracle"
	"qconv/recipe"
)

func TestSameIgnoringDates(t *testing.T) {
	base := `{"name": "b", "compilation": {"date": "2026-01-01T00:00:00Z", "targets": []}, "qconv": {"checkpoint": {"revision": "r1", "source_sha256": "aa"}}}`
	cases := []struct {
		other string
		same  bool
	}{
		{`{"name": "b", "compilation": {"date": "2027-05-05T10:00:00Z", "targets": []}, "qconv": {"checkpoint": {"revision": "r2", "source_sha256": "aa"}}}`, true},
		{`{"name": "b", "compilation": {"date": "2026-01-01T00:00:00Z", "targets": []}, "qconv": {"checkpoint": {"revision": "r1", "source_sha256": "ab"}}}`, false},
		{`{"name": "c", "compilation": {"date": "2026-01-01T00:00:00Z", "targets": []}, "qconv": {"checkpoint": {"revision": "r1", "source_sha256": "aa"}}}`, false},
		{`{"producer": "qconv 0.1.0", "creationDate": "x"}`, false},
		{`not json`, false},
	}
	for i, c := range cases {
		if got := sameIgnoringDates([]byte(base), []byte(c.other)); got != c.same {
			t.Errorf("case %d: same %v, want %v", i, got, c.same)
		}
	}
	if !sameIgnoringDates([]byte(`{"producer": "p", "creationDate": "1"}`), []byte(`{"producer": "p", "creationDate": "2"}`)) {
		t.Error("the asset's creationDate counts as drift")
	}
}

func TestWeakenedGate(t *testing.T) {
	d := oracle.DefaultGateOptions()
	cases := []struct {
		opt  oracle.GateOptions
		want string
	}{
		{d, ""},
		{oracle.GateOptions{Tokens: 32, MinMargin: 0.05, MinCosine: 0.99999}, ""}, // stricter everywhere
		{oracle.GateOptions{Tokens: 16, MinMargin: 0.3, MinCosine: 0.9999}, "min margin 0.3 (default 0.1)"},
		{oracle.GateOptions{Tokens: 4, MinMargin: 0.1, MinCosine: 0.99}, "min cosine 0.99 (default 0.9999); 4 tokens per prompt (default 16)"},
	}
	for _, c := range cases {
		if got := bundle.WeakenedGate(c.opt); got != c.want {
			t.Errorf("%+v: %q, want %q", c.opt, got, c.want)
		}
	}
	if v := bundle.GateVerdict(&bundle.GateSummary{Passed: false, Skipped: true}); v != "not gated" {
		t.Errorf("a skipped gate reads %q", v)
	}
	if v := bundle.GateVerdict(&bundle.GateSummary{Passed: true, GateRecord: bundle.GateRecord{Weakened: "min margin 0.3 (default 0.1)"}}); v != "passed (WEAKENED gate: min margin 0.3 (default 0.1))" {
		t.Errorf("a weakened gate reads %q", v)
	}
}

// Files and directories follow the umask: under 027 a bundle is 0750/0640, not 0700 or 0644.
func TestExportFollowsUmask(t *testing.T) {
	old := syscall.Umask(0o027)
	defer syscall.Umask(old)
	ck, err := hf.Open(filepath.Join("..", "testdata", "tinyqwen35-code"))
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	target, _ := recipe.TargetByName("gpu-pipelined")
	out := filepath.Join(t.TempDir(), "out")
	if _, err := Run(context.Background(), Options{Checkpoint: ck, Targets: []*recipe.Target{target}, OutDir: out, NoGate: true, Version: "test"}); err != nil {
		t.Fatal(err)
	}
	var bad []string
	filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
		st, _ := os.Stat(p)
		want := fs.FileMode(0o640)
		if d.IsDir() {
			want = 0o750
		}
		if st.Mode().Perm() != want {
			bad = append(bad, strings.TrimPrefix(p, out)+" "+st.Mode().Perm().String())
		}
		return nil
	})
	if len(bad) > 0 {
		t.Errorf("under umask 027: %v", bad)
	}
}

func TestJSONDifference(t *testing.T) {
	x := `{"qconv": {"gate": {"passed": true, "weakened": "min margin 0.3 (default 0.1)"}, "tensors": [{"name": "a"}, {"name": "b"}]}, "compilation": {"date": "1"}}`
	cases := []struct{ y, want string }{
		{`{"qconv": {"gate": {"passed": true}, "tensors": [{"name": "a"}, {"name": "b"}]}, "compilation": {"date": "2"}}`, `field qconv.gate.weakened differs (regenerated "min margin 0.3 (default 0.1)", on disk absent)`},
		{`{"qconv": {"gate": {"passed": true, "weakened": "min margin 0.3 (default 0.1)"}, "tensors": [{"name": "a"}, {"name": "c"}]}, "compilation": {"date": "3"}}`, `field qconv.tensors[1].name differs (regenerated "b", on disk "c")`},
		{x, ""},
	}
	for _, c := range cases {
		if got := jsonDifference([]byte(x), []byte(c.y)); got != c.want {
			t.Errorf("got %q, want %q", got, c.want)
		}
	}
}
