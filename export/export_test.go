package export

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"qconv/hf"
	"qconv/internal/exitcode"
)

func openCk(t testing.TB, name string) *hf.Checkpoint {
	t.Helper()
	ck, err := hf.Open(filepath.Join("..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	return ck
}

func exportTargets(t testing.TB, ck *hf.Checkpoint, out string, targets string, f Flags, mod func(*Options)) (*Result, error) {
	t.Helper()
	ts, err := ParseTargets(targets)
	if err != nil {
		t.Fatal(err)
	}
	opt := Options{Checkpoint: ck, Targets: ts, Flags: f, OutDir: out, Version: "test"}
	if mod != nil {
		mod(&opt)
	}
	return Run(context.Background(), opt)
}

func TestExportSmoke(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	ck := openCk(t, "tinyqwen35-code")
	out := t.TempDir()
	res, err := exportTargets(t, ck, out, "gpu-pipelined", Flags{HeadSym: true}, nil)
	if err != nil {
		t.Fatalf("%v (exit %d)", err, exitcode.Of(err))
	}
	for _, b := range res.Bundles {
		t.Logf("%s %s %d bytes gate %+v phases %v", b.Target, b.Name, b.Bytes, b.Gate, b.Phases)
		ents, _ := os.ReadDir(b.Path)
		for _, e := range ents {
			t.Log("  ", e.Name())
		}
	}
}
