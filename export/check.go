package export

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"qconv/bundle"
	"qconv/graph/mlir"
	"qconv/hf"
	"qconv/recipe"
)

// What `export --check` compares (docs/cli.md, "--check"): the bundle bytes a run would publish,
// regenerated in a staging directory under $TMPDIR, against the tree on disk. A bundle records
// its source by content (the files' SHA-256 and one identity over them, plus the repo id and
// revision when read from the Hugging Face cache), never by the path the user typed, and the
// dates in its metadata are not compared: a re-run on another day, from another directory, or
// through another spelling of the same checkpoint finds no drift.

// sourceInfo is what a bundle records about its checkpoint: content, not location.
func sourceInfo(ck *hf.Checkpoint, digests []bundle.FileDigestJSON) bundle.SourceInfo {
	return bundle.SourceInfo{
		Name: recipe.CheckpointName(ck), RepoID: ck.RepoID, Revision: ck.Revision,
		Identity: bundle.SourceIdentity(digests), Files: digests,
	}
}

// dateFields are the metadata fields that say when a bundle was made, or which Hub revision
// name pointed at the (identical) files; --check does not compare them: a re-run on another day,
// or a new revision with the same bytes, is not drift. The content is compared in full.
var dateFields = [][]string{{"compilation", "date"}, {"creationDate"}, {"qconv", "checkpoint", "revision"}}

// sameIgnoringDates reports whether two JSON documents are equal once their date fields are
// removed.
func sameIgnoringDates(x, y []byte) bool {
	var a, b map[string]any
	if json.Unmarshal(x, &a) != nil || json.Unmarshal(y, &b) != nil {
		return false
	}
	for _, path := range dateFields {
		dropField(a, path)
		dropField(b, path)
	}
	return reflect.DeepEqual(a, b)
}

func dropField(m map[string]any, path []string) {
	for i, k := range path {
		if i == len(path)-1 {
			delete(m, k)
			return
		}
		next, ok := m[k].(map[string]any)
		if !ok {
			return
		}
		m = next
	}
}

// compareDirs lists differences between the regenerated tree a and the tree on disk b, naming
// the file and, inside main.mlirb, the tensor; a changed source is named by file first.
func compareDirs(a, b string) ([]string, error) {
	files := map[string]bool{}
	for _, root := range []string{a, b} {
		err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				if root == b && errors.Is(err, os.ErrNotExist) {
					return nil
				}
				return err
			}
			if !d.IsDir() {
				rel, _ := filepath.Rel(root, p)
				files[rel] = true
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	var names []string
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var diffs []string
	if _, err := os.Stat(b); errors.Is(err, os.ErrNotExist) {
		return []string{fmt.Sprintf("%s: missing on disk (this checkpoint and recipe produce it)", b)}, nil
	}
	diffs = append(diffs, sourceChanges(filepath.Join(a, "metadata.json"), filepath.Join(b, "metadata.json"))...)
	for _, n := range names {
		x, errA := os.ReadFile(filepath.Join(a, n))
		y, errB := os.ReadFile(filepath.Join(b, n))
		switch {
		case errA != nil:
			diffs = append(diffs, fmt.Sprintf("%s: on disk but no longer produced", filepath.Join(b, n)))
		case errB != nil:
			diffs = append(diffs, fmt.Sprintf("%s: missing on disk", filepath.Join(b, n)))
		case bytes.Equal(x, y):
		case strings.HasSuffix(n, ".json") && sameIgnoringDates(x, y):
			// Only the dates differ: not drift.
		case strings.HasSuffix(n, ".json") && jsonDifference(x, y) != "":
			diffs = append(diffs, fmt.Sprintf("%s: %s", filepath.Join(b, n), jsonDifference(x, y)))
		case filepath.Base(n) == "main.mlirb":
			diffs = append(diffs, fmt.Sprintf("%s: %s", filepath.Join(b, n), mlirbDifference(x, y)))
		default:
			diffs = append(diffs, fmt.Sprintf("%s: %s", filepath.Join(b, n), firstDifference(x, y)))
		}
	}
	return diffs, nil
}

// sourceChanges names the checkpoint files whose content differs between the source recorded in
// the regenerated metadata (now) and the one on disk (then).
func sourceChanges(now, then string) []string {
	read := func(p string) *bundle.SourceInfo {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		var md bundle.BundleMetadata
		if json.Unmarshal(b, &md) != nil || md.QConv == nil {
			return nil
		}
		return &md.QConv.Checkpoint
	}
	x, y := read(now), read(then)
	if x == nil || y == nil {
		return nil
	}
	old := map[string]bundle.FileDigestJSON{}
	for _, f := range y.Files {
		old[f.Name] = f
	}
	var out []string
	for _, f := range x.Files {
		o, ok := old[f.Name]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("source file %s: new in the checkpoint (sha256 %.12s)", f.Name, f.SHA256))
		case o.SHA256 != f.SHA256:
			out = append(out, fmt.Sprintf("source file %s: content changed (sha256 %.12s, the bundle was made from %.12s)", f.Name, f.SHA256, o.SHA256))
		}
		delete(old, f.Name)
	}
	var gone []string
	for n := range old {
		gone = append(gone, n)
	}
	sort.Strings(gone)
	for _, n := range gone {
		out = append(out, fmt.Sprintf("source file %s: no longer in the checkpoint", n))
	}
	return out
}

// mlirbDifference names the tensors (weight resources) whose bytes differ between two
// main.mlirb files, or the first differing offset when they do not both parse.
func mlirbDifference(x, y []byte) string {
	mx, errX := mlir.ReadBytecode(x)
	my, errY := mlir.ReadBytecode(y)
	if errX != nil || errY != nil {
		return firstDifference(x, y)
	}
	var keys []string
	for _, r := range mx.Resources {
		o := my.Resource(r.Key)
		if o == nil || !bytes.Equal(r.Data, o.Data) {
			keys = append(keys, r.Key)
		}
	}
	for _, r := range my.Resources {
		if mx.Resource(r.Key) == nil {
			keys = append(keys, r.Key)
		}
	}
	switch {
	case len(keys) == 0:
		return "the graph differs from the regenerated one (" + firstDifference(x, y) + "); every tensor is identical"
	case len(keys) > 4:
		return fmt.Sprintf("tensors %s and %d more differ from the regenerated bytes", strings.Join(keys[:4], ", "), len(keys)-4)
	case len(keys) == 1:
		return "tensor " + keys[0] + " differs from the regenerated bytes"
	}
	return "tensors " + strings.Join(keys, ", ") + " differ from the regenerated bytes"
}

func firstDifference(x, y []byte) string {
	n := min(len(x), len(y))
	for i := 0; i < n; i++ {
		if x[i] != y[i] {
			return fmt.Sprintf("differs from the regenerated bytes at offset %d", i)
		}
	}
	return fmt.Sprintf("regenerated %d bytes, on disk %d", len(x), len(y))
}

// staleBundles lists what the output tree holds that this run did not produce: bundle
// directories left from an earlier recipe or name, and staging directories a killed run left
// behind. produced holds the bundle directories of this run.
func staleBundles(outDir string, produced map[string]bool) ([]string, error) {
	requested := map[string]bool{}
	for p := range produced {
		requested[filepath.Base(filepath.Dir(p))] = true
	}
	var out []string
	for _, t := range recipe.TargetNames() {
		parent := filepath.Join(outDir, t)
		entries, err := os.ReadDir(parent)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", parent, err)
		}
		for _, e := range entries {
			p := filepath.Join(parent, e.Name())
			switch {
			case !e.IsDir() || produced[p]:
			case strings.HasPrefix(e.Name(), ".qconv-tmp-"):
				out = append(out, fmt.Sprintf("%s: a staging directory left by an interrupted run (safe to delete)", p))
			case strings.HasPrefix(e.Name(), "."):
			case !requested[t]:
				out = append(out, fmt.Sprintf("%s: stale bundle, target %s was not requested (add it to --target if one command makes the tree, else delete it or pass --ignore-stale)", p, t))
			default:
				out = append(out, fmt.Sprintf("%s: stale bundle, not produced by this checkpoint and recipe (left from an earlier recipe or name; delete it, or pass --ignore-stale)", p))
			}
		}
	}
	return out, nil
}

// jsonDifference names the first field (in key order, dates excluded) whose value differs
// between the regenerated document x and the one on disk y, or "" when either does not parse.
func jsonDifference(x, y []byte) string {
	var a, b any
	if json.Unmarshal(x, &a) != nil || json.Unmarshal(y, &b) != nil {
		return ""
	}
	for _, d := range [...]any{a, b} {
		if m, ok := d.(map[string]any); ok {
			for _, path := range dateFields {
				dropField(m, path)
			}
		}
	}
	path, va, vb := firstJSONDifference(a, b, "")
	if path == "" {
		return ""
	}
	show := func(v any) string {
		if v == nil {
			return "absent"
		}
		j, _ := json.Marshal(v)
		if len(j) > 80 {
			return string(j[:77]) + "..."
		}
		return string(j)
	}
	return fmt.Sprintf("field %s differs (regenerated %s, on disk %s)", path, show(va), show(vb))
}

func firstJSONDifference(a, b any, path string) (string, any, any) {
	name := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok {
			break
		}
		keys := map[string]bool{}
		for k := range x {
			keys[k] = true
		}
		for k := range y {
			keys[k] = true
		}
		var sorted []string
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		for _, k := range sorted {
			if p, va, vb := firstJSONDifference(x[k], y[k], name(k)); p != "" {
				return p, va, vb
			}
		}
		return "", nil, nil
	case []any:
		y, ok := b.([]any)
		if !ok {
			break
		}
		for i := 0; i < min(len(x), len(y)); i++ {
			if p, va, vb := firstJSONDifference(x[i], y[i], fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p, va, vb
			}
		}
		if len(x) != len(y) {
			return fmt.Sprintf("%s (length %d, on disk %d)", path, len(x), len(y)), nil, nil
		}
		return "", nil, nil
	}
	if reflect.DeepEqual(a, b) {
		return "", nil, nil
	}
	if path == "" {
		path = "(document)"
	}
	return path, a, b
}
