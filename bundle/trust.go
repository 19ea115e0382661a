package bundle

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"qconv/hf"
	"qconv/internal/exitcode"
	"qconv/oracle"
)

// AssetHint is the error for a path that names a bundle's .aimodel asset (or a file inside it)
// where the bundle directory is wanted: it says which directory to give instead. nil otherwise.
func AssetHint(path string) error {
	clean := filepath.Clean(path)
	for p := clean; p != "." && p != string(filepath.Separator) && p != filepath.Dir(p); p = filepath.Dir(p) {
		if strings.HasSuffix(p, ".aimodel") {
			if st, err := os.Stat(filepath.Join(p, "main.mlirb")); err == nil && !st.IsDir() {
				if isBareAsset(p) {
					// An asset published alone (qconv release's bare layout) is the bundle itself.
					if p == clean {
						return nil
					}
					return exitcode.Badf("%s is inside the .aimodel asset published alone; give the asset directory: %s", path, p)
				}
				return exitcode.Badf("%s is inside the bundle's .aimodel asset; give the bundle directory above it: %s", path, filepath.Dir(p))
			}
		}
	}
	return nil
}

// isBareAsset reports whether dir is an .aimodel asset published without a bundle around it: its
// own metadata.json carries the qconv block (bareMetadata) and no bundle metadata above names it.
func isBareAsset(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "metadata.json"))
	if err != nil {
		return false
	}
	if _, ok := BareMetadata(dir, b); !ok {
		return false
	}
	if up, err := os.ReadFile(filepath.Join(filepath.Dir(dir), "metadata.json")); err == nil {
		var md BundleMetadata
		if json.Unmarshal(up, &md) == nil && md.Assets["main"] == filepath.Base(dir) {
			return false
		}
	}
	return true
}

// CheckHash refuses a bundle (or its decode companion) whose main.mlirb is not the bytes its
// main.hash names: bytes changed after export are never run or verified as if they were the
// published ones.
func (b *Bundle) CheckHash() error {
	for bd := b; bd != nil; bd = bd.Companion {
		asset := filepath.Join(bd.Dir, bd.Metadata.Assets["main"])
		want, err := os.ReadFile(filepath.Join(asset, "main.hash"))
		if err != nil {
			return exitcode.Badf("%s: %v (refusing bytes that cannot be checked; --trust-bytes runs them anyway)", filepath.Join(asset, "main.hash"), err)
		}
		got := sha256.Sum256(bd.mapping)
		if !bytes.Equal(want, got[:]) {
			return exitcode.Badf("%s: main.mlirb (sha256 %x) is not the file main.hash names (%x): the bytes changed after export; refusing to run them (--trust-bytes runs them anyway)", asset, got, want)
		}
	}
	return nil
}

// ReferenceMismatch says plainly how ck differs from the checkpoint the bundle records it was
// made from (source identity, files, dimensions), or "" when it is the same checkpoint.
func ReferenceMismatch(b *Bundle, ck *hf.Checkpoint) (string, error) {
	q := b.Metadata.QConv
	if q == nil || len(q.Checkpoint.Files) == 0 {
		return "", nil
	}
	ds, err := ck.Digests(nil)
	if err != nil {
		return "", fmt.Errorf("hashing --reference: %w", err)
	}
	var got []FileDigestJSON
	for _, d := range ds {
		got = append(got, FileDigestJSON(d))
	}
	if SourceIdentity(got) == SourceIdentity(q.Checkpoint.Files) {
		return "", nil
	}
	var why []string
	if v := ck.Config.VocabSize; v != b.Metadata.Language.VocabSize {
		why = append(why, fmt.Sprintf("vocabulary %d, the bundle's %d", v, b.Metadata.Language.VocabSize))
	}
	old := map[string]string{}
	for _, f := range q.Checkpoint.Files {
		old[f.Name] = f.SHA256
	}
	for _, f := range got {
		if h, ok := old[f.Name]; !ok || h != f.SHA256 {
			why = append(why, f.Name+" differs")
		}
		delete(old, f.Name)
	}
	var missing []string
	for n := range old {
		missing = append(missing, n+" missing")
	}
	sort.Strings(missing)
	why = append(why, missing...)
	return fmt.Sprintf("the reference is NOT the checkpoint this bundle was made from (source sha256 %.12s, the bundle's %.12s: %s)",
		SourceIdentity(got), SourceIdentity(q.Checkpoint.Files), strings.Join(why, ", ")), nil
}

// RecordedGate is the prompts and thresholds the bundle was gated with at export, so a re-run
// (verify, card --reference) judges it by the same rule; ok is false for a bundle that was not
// gated.
func RecordedGate(b *Bundle) (prompts []oracle.GatePrompt, opt oracle.GateOptions, ok bool, err error) {
	q := b.Metadata.QConv
	if q == nil || q.Gate == nil || q.Gate.Skipped || q.GateReport == nil {
		return nil, oracle.GateOptions{}, false, nil
	}
	for _, p := range q.GateReport.Report.Prompts {
		prompts = append(prompts, p.Prompt)
	}
	return prompts, q.GateReport.Report.Options, true, nil
}
