package hf

import "testing"

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
