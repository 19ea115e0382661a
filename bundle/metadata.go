// Package bundle is the on-disk format of a qconv bundle: the metadata types (Apple's schema and
// qconv's own block), reading a bundle or a bare asset back (its module, hash and trust checks),
// and Inspect, which holds the bytes to their name and metadata. Writers (export) and readers
// (gating, card, the CLI) share these types, so a field means one thing everywhere.
package bundle

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"qconv/graph"
	"qconv/oracle"
	"qconv/recipe"
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
	Version       string            `json:"version"`
	Target        string            `json:"target"`
	Device        string            `json:"device"`
	Contract      graph.Contract    `json:"contract"`
	Recipe        recipe.Recipe     `json:"recipe"`
	Function      FunctionIO        `json:"io"`
	Tensors       []TensorPlan      `json:"tensors"`
	Checkpoint    SourceInfo        `json:"checkpoint"`
	Gate          *GateSummary      `json:"gate,omitempty"`
	GateReport    *GateReportRecord `json:"gate_report,omitempty"`
	GateStress    *StressGate       `json:"gate_stress,omitempty"` // the fp16-accumulation stress verdict (export/stress.go)
	Companion     string            `json:"companion,omitempty"`   // the other bundle of an ios-gpu pair
	MainHash      string            `json:"main_mlirb_sha256"`
	MainBytes     int64             `json:"main_mlirb_bytes"`
	PrefillTokens int               `json:"prefill_tokens,omitempty"`
	Notes         []string          `json:"notes,omitempty"`
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

// DecodeStrict decodes JSON, rejecting trailing data.
func DecodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data after the JSON document")
	}
	return nil
}

// BareMetadata reads a bare asset's metadata.json (assetVersion and a qconv block, no bundle
// metadata) and returns the bundle metadata it stands for, for the checks Inspect runs.
func BareMetadata(dir string, b []byte) (*BundleMetadata, bool) {
	var am AssetMetadata
	if err := DecodeStrict(b, &am); err != nil || am.AssetVersion == "" || am.QConv == nil {
		return nil, false
	}
	q := am.QConv
	name := strings.TrimSuffix(filepath.Base(dir), ".aimodel")
	tokenizer := q.Checkpoint.RepoID
	md := &BundleMetadata{
		MetadataVersion: "0.2", Kind: "llm", Name: name,
		Assets: map[string]string{"main": name + ".aimodel"},
		Language: LanguageMetadata{
			Tokenizer: tokenizer, MaxContextLength: q.Recipe.Context,
			FunctionMap: map[string][]string{"main": {"main"}}, States: LanguageStates(q.Contract),
		},
		Source:      SourceMetadata{ModelDefinition: "qconv", HFModelID: q.Checkpoint.RepoID},
		Compilation: CompilationInfo{Date: am.CreationDate, Targets: []string{}},
		QConv:       q,
	}
	for _, o := range q.Function.Outputs {
		if o.Name == graph.OutLogits && len(o.Shape) > 0 {
			md.Language.VocabSize = int(o.Shape[len(o.Shape)-1])
		}
	}
	return md, true
}

// LanguageStates is the bundle metadata's state kinds for a contract (nil: no states).
func LanguageStates(c graph.Contract) map[string]string {
	switch c {
	case graph.Pipelined:
		return map[string]string{graph.StateKey: "kv_cache", graph.StateValue: "kv_cache", graph.StateConv: "fixed", graph.StateRec: "fixed"}
	case graph.Stock:
		return StockStates()
	}
	return nil
}

// StockStates is the bundle metadata's language.states for the stock contract.
func StockStates() map[string]string {
	return map[string]string{graph.StateKey: "kv_cache", graph.StateValue: "kv_cache", graph.StateConvStates: "fixed", graph.StateRecurrentStates: "fixed"}
}

// HasQConvBlock reports whether dir's metadata.json carries qconv's block (a bundle qconv wrote).
func HasQConvBlock(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "metadata.json"))
	if err != nil {
		return false
	}
	var md struct {
		QConv json.RawMessage `json:"qconv"`
	}
	return json.Unmarshal(b, &md) == nil && len(md.QConv) > 0 && string(md.QConv) != "null"
}

// SourceIdentity is the content identity of a checkpoint: the SHA-256 over its defining files'
// names, sizes and SHA-256 digests (config, index, safetensors, tokenizer files), in name order.
func SourceIdentity(files []FileDigestJSON) string {
	fs := append([]FileDigestJSON(nil), files...)
	sort.Slice(fs, func(i, k int) bool { return fs[i].Name < fs[k].Name })
	h := sha256.New()
	for _, f := range fs {
		fmt.Fprintf(h, "%s\x00%d\x00%s\n", f.Name, f.Size, f.SHA256)
	}
	return hex.EncodeToString(h.Sum(nil))
}
