package export

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"qconv/graph"
	"qconv/oracle"
)

// BundleMetadata is a LanguageBundle's metadata.json (schema 0.2, as Apple's runtime reads it)
// plus qconv's own block, which the runtime ignores.
type BundleMetadata struct {
	MetadataVersion string            `json:"metadata_version"`
	Kind            string            `json:"kind"`
	Name            string            `json:"name"`
	Assets          map[string]string `json:"assets"`
	Language        LanguageMetadata  `json:"language"`
	Source          SourceMetadata    `json:"source"`
	Compression     *string           `json:"compression"`
	Compilation     CompilationInfo   `json:"compilation"`
	UserData        map[string]string `json:"user_data,omitempty"`
	QConv           *QConvBlock       `json:"qconv,omitempty"`
}

// LanguageMetadata is the bundle's "language" object.
type LanguageMetadata struct {
	Tokenizer         string              `json:"tokenizer"`
	VocabSize         int                 `json:"vocab_size"`
	MaxContextLength  int                 `json:"max_context_length"`
	EmbeddedTokenizer bool                `json:"embedded_tokenizer"`
	FunctionMap       map[string][]string `json:"function_map"`
	States            map[string]string   `json:"states,omitempty"`
}

// SourceMetadata is written by exporters, not read by the runtime.
type SourceMetadata struct {
	ModelDefinition string `json:"model_definition"`
	HFModelID       string `json:"hf_model_id,omitempty"`
}

// CompilationInfo is written by exporters, not read by the runtime.
type CompilationInfo struct {
	Date    string   `json:"date"`
	Targets []string `json:"targets"`
}

// QConvBlock records what qconv applied and measured, so inspect and card can check the bytes
// against it.
type QConvBlock struct {
	Version       string       `json:"version"`
	Target        string       `json:"target"`
	Device        string       `json:"device"`
	Contract      string       `json:"contract"`
	Recipe        Recipe       `json:"recipe"`
	Function      FunctionIO   `json:"io"`
	Tensors       []TensorPlan `json:"tensors"`
	Checkpoint    SourceInfo   `json:"checkpoint"`
	Gate          *GateSummary `json:"gate,omitempty"`
	GateReport    any          `json:"gate_report,omitempty"`
	GateStress    *StressGate  `json:"gate_stress,omitempty"` // the fp16-accumulation stress verdict (stress.go)
	Companion     string       `json:"companion,omitempty"`   // the other bundle of an ios-gpu pair
	MainHash      string       `json:"main_mlirb_sha256"`
	MainBytes     int64        `json:"main_mlirb_bytes"`
	PrefillTokens int          `json:"prefill_tokens,omitempty"`
	Notes         []string     `json:"notes,omitempty"`
	// PublishedAs is set when the bundle is published under a legacy name (qconv release).
	PublishedAs *PublishedAs `json:"published_as,omitempty"`
}

// GateSummary is the gate's verdict and counts; the full report sits beside it. A bundle
// published with --no-gate records Passed false and Skipped true (see gaterecord.go).
type GateSummary struct {
	Passed           bool    `json:"passed"`
	Skipped          bool    `json:"skipped,omitempty"`
	Prompts          int     `json:"prompts"`
	TeacherForced    string  `json:"teacher_forced"` // e.g. "62/62"
	Greedy           string  `json:"greedy"`         // e.g. "64/64"
	MinPrefillCosine float64 `json:"min_prefill_cosine"`
	FirstFailure     string  `json:"first_failure,omitempty"`
	// Stats are the distribution figures over every teacher-forced position (docs/gate.md).
	Stats *oracle.GateStats `json:"stats,omitempty"`

	GateRecord // weakened thresholds (gaterecord.go)
}

// SourceInfo identifies the checkpoint a bundle came from by content (see SourceIdentity), with
// its name and, when read from the Hugging Face cache, repo id and revision; never a local path.
type SourceInfo struct {
	Ref      string           `json:"ref,omitempty"` // older bundles: the path as typed (no longer written)
	Name     string           `json:"name,omitempty"`
	RepoID   string           `json:"repo_id,omitempty"`
	Revision string           `json:"revision,omitempty"`
	Identity string           `json:"source_sha256,omitempty"`
	Files    []FileDigestJSON `json:"files"`
}

// FileDigestJSON is a source file's identity.
type FileDigestJSON struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// FunctionIO describes @main's contract as written.
type FunctionIO struct {
	Name    string   `json:"name"`
	Inputs  []IOSpec `json:"inputs"`
	Outputs []IOSpec `json:"outputs"`
	States  []IOSpec `json:"states"`
}

// IOSpec is one input, output or state.
type IOSpec struct {
	Name  string  `json:"name"`
	Type  string  `json:"type"`
	DType string  `json:"dtype"`
	Shape []int64 `json:"shape"`
}

// DescribeIO reads a function's contract from the IR.
func DescribeIO(f *graph.Func) FunctionIO {
	io := FunctionIO{Name: f.Name, Inputs: []IOSpec{}, Outputs: []IOSpec{}, States: []IOSpec{}}
	spec := func(name string, t graph.Type) IOSpec {
		tt := t.TensorType()
		return IOSpec{Name: name, Type: tt.String(), DType: tt.DType.String(), Shape: append([]int64{}, tt.Shape...)}
	}
	for _, a := range f.Args {
		if a.Value.Type.Kind == graph.HandleKind {
			io.States = append(io.States, spec(a.Name, a.Value.Type))
		} else {
			io.Inputs = append(io.Inputs, spec(a.Name, a.Value.Type))
		}
	}
	for _, r := range f.Results {
		if r.Value.Type.Kind == graph.TokenKind {
			continue
		}
		io.Outputs = append(io.Outputs, spec(r.Name, r.Value.Type))
	}
	return io
}

// AssetMetadata is the .aimodel's metadata.json.
type AssetMetadata struct {
	Producer     string `json:"producer"`
	AssetVersion string `json:"assetVersion"`
	CreationDate string `json:"creationDate"`
	Description  string `json:"description"`
	// QConv is set on a bare asset (published without its bundle directory): the block the
	// bundle's metadata.json would carry. The runtime ignores it.
	QConv *QConvBlock `json:"qconv,omitempty"`
}

// creationTime is SOURCE_DATE_EPOCH when set (reproducible builds), else now.
func creationTime() (time.Time, error) {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil || sec < 0 {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a non-negative integer of seconds", s)
		}
		return time.Unix(sec, 0).UTC(), nil
	}
	return time.Now().UTC().Truncate(time.Second), nil
}

// marshalJSON is the one JSON encoding qconv writes: indented, no HTML escaping, newline-terminated.
func marshalJSON(v any) ([]byte, error) {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return []byte(b.String()), nil
}

// hashCounter hashes and counts what passes through to w.
type hashCounter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func newHashCounter(w io.Writer) *hashCounter { return &hashCounter{w: w, h: sha256.New()} }

func (c *hashCounter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	return n, err
}

func bufioWriter(w io.Writer) *bufio.Writer { return bufio.NewWriterSize(w, 4<<20) }

// decodeStrict decodes JSON, rejecting trailing data.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data after the JSON document")
	}
	return nil
}

// tokenizerFiles are copied from the checkpoint into <bundle>/tokenizer/ when present.
var tokenizerFiles = []string{"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja", "generation_config.json"}

func copyTokenizer(srcDir, dstDir string) ([]string, error) {
	if err := os.MkdirAll(dstDir, dirPerm); err != nil {
		return nil, err
	}
	var copied []string
	for _, name := range tokenizerFiles {
		b, err := os.ReadFile(filepath.Join(srcDir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dstDir, name), b, filePerm); err != nil {
			return nil, err
		}
		copied = append(copied, name)
	}
	sort.Strings(copied)
	return copied, nil
}

// writeFile writes data to path, failing if it exists (everything goes into a fresh temp dir).
func writeFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, filePerm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// publish moves the finished bundle directory tmp to dst. An existing dst is swapped out
// atomically (renameat2 RENAME_EXCHANGE) and then removed, so at every instant dst is either the
// complete old bundle or the complete new one. Where the exchange is unsupported it falls back to
// rename-aside, rename-in, remove-old; if the second rename fails the old bundle is put back.
func publish(tmp, dst string) error {
	if _, err := os.Lstat(dst); errors.Is(err, os.ErrNotExist) {
		if err := os.Rename(tmp, dst); err != nil {
			return err
		}
		return syncDir(filepath.Dir(dst))
	}
	err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dst, unix.RENAME_EXCHANGE)
	if err == nil {
		// tmp now holds the old bundle.
		if err := syncDir(filepath.Dir(dst)); err != nil {
			return err
		}
		return os.RemoveAll(tmp)
	}
	aside := tmp + ".old"
	if err := os.Rename(dst, aside); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		if rerr := os.Rename(aside, dst); rerr != nil {
			return fmt.Errorf("%v; restoring the previous bundle from %s also failed: %v", err, aside, rerr)
		}
		return err
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return err
	}
	return os.RemoveAll(aside)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
