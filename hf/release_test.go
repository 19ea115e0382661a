package hf

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A snapshot directory of the hub cache given as a path is identified by repo id and revision.
func TestCacheSnapshot(t *testing.T) {
	for _, c := range []struct{ dir, repo, rev string }{
		{"/c/hub/models--Qwen--Qwen3.5-0.8B/snapshots/abc123", "Qwen/Qwen3.5-0.8B", "abc123"},
		{"/c/models--Org--Model/snapshots/0123", "Org/Model", "0123"},
		{"/c/models--Org--Model/refs/main", "", ""},
		{"/c/datasets--Org--Data/snapshots/0123", "", ""},
		{"/c/models--Org/snapshots/0123", "", ""},
		{"/work/tinyqwen35-code", "", ""},
	} {
		repo, rev := cacheSnapshot(c.dir)
		if repo != c.repo || rev != c.rev {
			t.Errorf("%s: %q @ %q, want %q @ %q", c.dir, repo, rev, c.repo, c.rev)
		}
	}
}

// A bad index gives the same message on every run (the entry first in name order).
func TestIndexErrorsDeterministic(t *testing.T) {
	dir := t.TempDir()
	cfg, err := os.ReadFile(filepath.Join("..", "testdata", "tinyqwen35-code", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644)
	m := map[string]string{}
	for i := 0; i < 40; i++ {
		m[fmt.Sprintf("model.t%02d.weight", i)] = "../elsewhere.safetensors"
	}
	idx, _ := json.Marshal(map[string]any{"weight_map": m})
	os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), idx, 0o644)
	var first string
	for i := 0; i < 8; i++ {
		_, err := Open(dir)
		if err == nil {
			t.Fatal("opened a checkpoint whose index points outside it")
		}
		if i == 0 {
			first = err.Error()
			if !strings.Contains(first, `weight_map["model.t00.weight"]`) {
				t.Fatalf("error does not name the first entry: %v", err)
			}
		} else if err.Error() != first {
			t.Fatalf("run %d: %v; run 0: %s", i, err, first)
		}
	}
}
