package hf

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// repoIDPattern is a Hugging Face "org/name" id, optionally with "@revision".
var repoIDPattern = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9._-]*)/([A-Za-z0-9][A-Za-z0-9._-]*)(?:@([A-Za-z0-9._/-]+))?$`)

// HubCacheDirs lists the Hugging Face hub cache directories in lookup order: HF_HUB_CACHE,
// HF_HOME/hub, ~/.cache/huggingface/hub (XDG_CACHE_HOME honoured as huggingface_hub does).
func HubCacheDirs() []string {
	var dirs []string
	if d := os.Getenv("HF_HUB_CACHE"); d != "" {
		dirs = append(dirs, d)
	}
	if d := os.Getenv("HF_HOME"); d != "" {
		dirs = append(dirs, filepath.Join(d, "hub"))
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		dirs = append(dirs, filepath.Join(d, "huggingface", "hub"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, ".cache", "huggingface", "hub"))
	}
	return dirs
}

// Resolve turns a checkpoint reference into a directory. A reference that exists on disk must be
// a directory; otherwise an "org/name[@revision]" id is looked up offline in the HF hub cache
// (models--org--name/refs/<revision or main> -> snapshots/<commit>/). Nothing is downloaded.
func Resolve(ref string) (dir, repoID, revision string, err error) {
	if st, statErr := os.Stat(ref); statErr == nil {
		if !st.IsDir() {
			return "", "", "", fmt.Errorf("%s: not a directory (a checkpoint is a directory holding config.json and safetensors)", ref)
		}
		abs, err := filepath.Abs(ref)
		if err != nil {
			return "", "", "", err
		}
		repoID, revision = cacheSnapshot(abs)
		return abs, repoID, revision, nil
	}
	m := repoIDPattern.FindStringSubmatch(ref)
	if m == nil || strings.HasPrefix(ref, ".") || strings.HasPrefix(ref, "/") {
		return "", "", "", fmt.Errorf("%s: neither a directory nor a Hugging Face repo id (org/name)", ref)
	}
	repoID, revision = m[1]+"/"+m[2], m[3]
	folder := "models--" + m[1] + "--" + m[2]
	caches := HubCacheDirs()
	for _, cache := range caches {
		repoDir := filepath.Join(cache, folder)
		if _, err := os.Stat(repoDir); err != nil {
			continue
		}
		commit := revision
		if commit == "" {
			commit = "main"
		}
		// A ref name resolves through refs/; a commit hash names the snapshot directly.
		if data, err := os.ReadFile(filepath.Join(repoDir, "refs", commit)); err == nil {
			commit = strings.TrimSpace(string(data))
		}
		snap := filepath.Join(repoDir, "snapshots", commit)
		if st, err := os.Stat(snap); err == nil && st.IsDir() {
			return snap, repoID, commit, nil
		}
		return "", "", "", fmt.Errorf("%s: found %s in the Hugging Face cache, but no snapshot for revision %q (%s); qconv never downloads", ref, repoDir, commit, snap)
	}
	return "", "", "", fmt.Errorf("%s: neither a directory nor a repo id in the local Hugging Face cache (searched %s); qconv never downloads", ref, strings.Join(caches, ", "))
}

// cacheSnapshot recognises a directory given by path that is a snapshot in a Hugging Face hub
// cache (<cache>/models--Org--Name/snapshots/<commit>), so it is identified exactly as the same
// checkpoint given as Org/Name: by repo id and revision, not by its path.
func cacheSnapshot(dir string) (repoID, revision string) {
	snapshots := filepath.Dir(dir)
	folder := filepath.Base(filepath.Dir(snapshots))
	if filepath.Base(snapshots) != "snapshots" || !strings.HasPrefix(folder, "models--") {
		return "", ""
	}
	org, name, ok := strings.Cut(strings.TrimPrefix(folder, "models--"), "--")
	if !ok || org == "" || name == "" || strings.Contains(name, "--") {
		return "", ""
	}
	if !repoIDPattern.MatchString(org + "/" + name) {
		return "", ""
	}
	return org + "/" + name, filepath.Base(dir)
}
