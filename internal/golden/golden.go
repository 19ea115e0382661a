// Package golden loads the Hugging Face reference outputs in qconv's testdata (transformers 5.17,
// float32, see testdata/FIXTURES.md) for the tests of oracle, quant, graph and gate:
// prompts with their ids, text, greedy continuation and per-variant statistics from the JSON
// files, and float32 tensors by key from the safetensors files.
//
// The safetensors files are parsed here rather than through package hf: the trained fixture
// stores ids as F32 and the random one as I64, a dtype the checkpoint loader rightly refuses.
package golden

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// File is one golden pair: a JSON document and the safetensors file beside it.
type File struct {
	JSONPath, TensorPath string
	// QuantRule is the fake-quantization rule the variants used (trained fixture only).
	QuantRule string
	Models    map[string]*Model
	tensors   map[string]rawTensor
}

// Model is the goldens of one model of a File.
type Model struct {
	Name    string
	Prompts []*Prompt // in file order: p1, h0..h3 (trained) or p1, p7, p33, p70 (random)
}

// Prompt is one golden prompt and what transformers produced for it.
type Prompt struct {
	Model, Name string
	IDs         []int
	Text        string // trained fixture only
	GenIDs      []int  // 16 greedy ids (cached decode)
	GenText     string // trained fixture only: the tokenizer's decoding of GenIDs
	// LogitMargins[s] is the top-1 minus top-2 logit of next_logits row s (17 rows).
	LogitMargins []float64
	Top5IDs      [][]int     // per next_logits row
	Top5Logits   [][]float32 // per next_logits row (random fixture only)
	// FullVsCachedMaxAbs is transformers' own gap between cached decode and a no-cache forward
	// (random fixture only): the tolerance floor.
	FullVsCachedMaxAbs float64
	Variants           map[string]*Variant // q8, q8hu, q4, q4hu (trained fixture only)

	file *File
}

// Variant is the JSON summary of one fake-quantized variant on one prompt.
type Variant struct {
	Name                   string
	GenIDs                 []int
	GreedyMatch            int // greedy ids equal to the fp32 ones, out of 16
	FirstDivergence        int // first step whose id differs, -1 when none
	TeacherForcedTop1Match int
	TeacherForcedSteps     int
	PrefillCosine          float64
	NextLogitsMaxAbsDiff   float64
}

// Tensor is a golden tensor converted to float32.
type Tensor struct {
	Key   string
	Shape []int
	Data  []float32
}

// Row returns row i of a tensor viewed as [Shape[0], rest].
func (t *Tensor) Row(i int) []float32 {
	n := len(t.Data) / t.Shape[0]
	return t.Data[i*n : (i+1)*n]
}

type rawTensor struct {
	dtype string
	shape []int
	data  []byte
}

// Tensor returns the float32 tensor stored under key (F32, or I64 converted exactly).
func (f *File) Tensor(key string) (*Tensor, error) {
	rt, ok := f.tensors[key]
	if !ok {
		return nil, fmt.Errorf("%s: no tensor %q", f.TensorPath, key)
	}
	t := &Tensor{Key: key, Shape: rt.shape, Data: make([]float32, numElements(rt.shape))}
	switch rt.dtype {
	case "F32":
		for i := range t.Data {
			t.Data[i] = math.Float32frombits(binary.LittleEndian.Uint32(rt.data[4*i:]))
		}
	case "I64":
		for i := range t.Data {
			v := int64(binary.LittleEndian.Uint64(rt.data[8*i:]))
			if float64(float32(v)) != float64(v) {
				return nil, fmt.Errorf("%s: tensor %q: element %d = %d has no exact float32", f.TensorPath, key, i, v)
			}
			t.Data[i] = float32(v)
		}
	default:
		return nil, fmt.Errorf("%s: tensor %q: dtype %s is not supported", f.TensorPath, key, rt.dtype)
	}
	return t, nil
}

// Ints returns the integer tensor stored under key: I64, or F32 holding whole numbers (the
// trained fixture stores ids that way).
func (f *File) Ints(key string) ([]int, error) {
	rt, ok := f.tensors[key]
	if !ok {
		return nil, fmt.Errorf("%s: no tensor %q", f.TensorPath, key)
	}
	out := make([]int, numElements(rt.shape))
	switch rt.dtype {
	case "I64":
		for i := range out {
			out[i] = int(int64(binary.LittleEndian.Uint64(rt.data[8*i:])))
		}
	case "F32":
		for i := range out {
			v := math.Float32frombits(binary.LittleEndian.Uint32(rt.data[4*i:]))
			if float32(int(v)) != v {
				return nil, fmt.Errorf("%s: tensor %q: element %d = %g is not an integer", f.TensorPath, key, i, v)
			}
			out[i] = int(v)
		}
	default:
		return nil, fmt.Errorf("%s: tensor %q: dtype %s is not an id type", f.TensorPath, key, rt.dtype)
	}
	return out, nil
}

// Has reports whether key is stored.
func (f *File) Has(key string) bool { _, ok := f.tensors[key]; return ok }

// Keys lists every tensor key, sorted.
func (f *File) Keys() []string {
	keys := make([]string, 0, len(f.tensors))
	for k := range f.tensors {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Key is the tensor key of one of the prompt's tensors, e.g. Key("next_logits").
func (p *Prompt) Key(suffix string) string { return p.Model + "." + p.Name + "." + suffix }

// Tensor returns one of the prompt's tensors, e.g. "prefill_logits", "next_logits",
// "q8.teacher_forced_logits".
func (p *Prompt) Tensor(suffix string) (*Tensor, error) { return p.file.Tensor(p.Key(suffix)) }

// Has reports whether the prompt has the tensor.
func (p *Prompt) Has(suffix string) bool { return p.file.Has(p.Key(suffix)) }

// StateKinds are the per-layer cache tensors: conv and recurrent for linear-attention layers,
// key and value for full-attention layers.
var StateKinds = []string{"conv", "recurrent", "key", "value"}

// StateAfterPrompt returns layer's cache tensor kind ("conv", "recurrent", "key", "value") as
// transformers held it after the prompt (conv [1, conv_dim, K], recurrent [1, nv, dk, dv],
// key/value [1, Hkv, T, D]), and false when the goldens do not have it.
func (p *Prompt) StateAfterPrompt(layer int, kind string) (*Tensor, bool) {
	for _, stem := range []string{"state_after_prompt", "state"} {
		key := fmt.Sprintf("%s.layer%d.%s", stem, layer, kind)
		if p.Has(key) {
			t, err := p.Tensor(key)
			return t, err == nil
		}
	}
	return nil, false
}

// StateAfterGen is StateAfterPrompt after the 16 generated tokens were fed too (random fixture,
// layers 0 and 3 only).
func (p *Prompt) StateAfterGen(layer int, kind string) (*Tensor, bool) {
	key := fmt.Sprintf("state_after_gen.layer%d.%s", layer, kind)
	if !p.Has(key) {
		return nil, false
	}
	t, err := p.Tensor(key)
	return t, err == nil
}

// Prompt returns the named prompt of a model.
func (m *Model) Prompt(name string) (*Prompt, bool) {
	for _, p := range m.Prompts {
		if p.Name == name {
			return p, true
		}
	}
	return nil, false
}

// TestdataDir finds qconv's testdata directory by walking up from the working directory to the
// module root (the directory whose go.mod declares module qconv).
func TestdataDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.HasPrefix(strings.TrimSpace(string(data)), "module qconv") {
			return filepath.Join(dir, "testdata"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("golden: no go.mod of module qconv above the working directory")
		}
		dir = parent
	}
}

var (
	cacheMu sync.Mutex
	cache   = map[string]*File{}
)

// LoadTrained loads testdata/tinyqwen35-code.golden.{json,safetensors} (cached: callers must not
// modify what it returns).
func LoadTrained() (*File, error) {
	return loadCached("tinyqwen35-code.golden.json", "tinyqwen35-code.golden.safetensors")
}

// LoadRandom loads testdata/random/golden.{json,safetensors} (cached).
func LoadRandom() (*File, error) {
	return loadCached(filepath.Join("random", "golden.json"), filepath.Join("random", "golden.safetensors"))
}

func loadCached(jsonRel, stRel string) (*File, error) {
	td, err := TestdataDir()
	if err != nil {
		return nil, err
	}
	cacheMu.Lock()
	defer cacheMu.Unlock()
	key := filepath.Join(td, jsonRel)
	if f, ok := cache[key]; ok {
		return f, nil
	}
	f, err := Load(key, filepath.Join(td, stRel))
	if err != nil {
		return nil, err
	}
	cache[key] = f
	return f, nil
}

// Fixture is a checkpoint in testdata and the golden model whose outputs it must reproduce.
type Fixture struct {
	Name   string // checkpoint directory name
	Dir    string // checkpoint directory
	File   *File
	Golden *Model // tiny_untied_8L-multimodal reproduces tiny_untied_8L
}

// Fixtures lists every checkpoint with goldens: tinyqwen35-code, tiny_tied_4L, tiny_untied_8L
// and tiny_untied_8L-multimodal.
func Fixtures() ([]Fixture, error) {
	td, err := TestdataDir()
	if err != nil {
		return nil, err
	}
	trained, err := LoadTrained()
	if err != nil {
		return nil, err
	}
	random, err := LoadRandom()
	if err != nil {
		return nil, err
	}
	list := []struct {
		name, dir, model string
		file             *File
	}{
		{"tinyqwen35-code", "tinyqwen35-code", "tinyqwen35-code", trained},
		{"tiny_tied_4L", "random/tiny_tied_4L", "tiny_tied_4L", random},
		{"tiny_untied_8L", "random/tiny_untied_8L", "tiny_untied_8L", random},
		{"tiny_untied_8L-multimodal", "random/tiny_untied_8L-multimodal", "tiny_untied_8L", random},
	}
	var out []Fixture
	for _, l := range list {
		m, ok := l.file.Models[l.model]
		if !ok {
			return nil, fmt.Errorf("%s: no model %q", l.file.JSONPath, l.model)
		}
		out = append(out, Fixture{Name: l.name, Dir: filepath.Join(td, filepath.FromSlash(l.dir)), File: l.file, Golden: m})
	}
	return out, nil
}

// Load reads a golden JSON document and its safetensors file, and checks that the ids in the
// JSON agree with the ids in the tensors.
func Load(jsonPath, tensorPath string) (*File, error) {
	data, err := os.ReadFile(jsonPath)
	if err != nil {
		return nil, err
	}
	var doc docJSON
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", jsonPath, err)
	}
	f := &File{JSONPath: jsonPath, TensorPath: tensorPath, QuantRule: doc.Meta.QuantRule, Models: map[string]*Model{}}
	if f.tensors, err = readSafetensors(tensorPath); err != nil {
		return nil, err
	}
	for name, raw := range doc.Models {
		m, err := f.parseModel(name, raw)
		if err != nil {
			return nil, fmt.Errorf("%s: model %s: %w", jsonPath, name, err)
		}
		f.Models[name] = m
	}
	return f, nil
}

type docJSON struct {
	Meta struct {
		QuantRule string `json:"quant_rule"`
	} `json:"meta"`
	Models map[string]json.RawMessage `json:"models"`
}

type promptJSON struct {
	IDs          []int       `json:"ids"`
	PromptIDs    []int       `json:"prompt_ids"`
	Text         string      `json:"text"`
	GenIDs       []int       `json:"gen_ids"`
	GenText      string      `json:"gen_text"`
	Top1Margin   []float64   `json:"top1_margin"`
	Top5IDs      [][]int     `json:"top5_ids"`
	Top5Vals     [][]float32 `json:"top5_vals"`
	FullVsCached float64     `json:"max_abs_diff_full_vs_cached"`
}

type variantJSON struct {
	GenIDs                 []int   `json:"gen_ids"`
	GreedyMatch            int     `json:"greedy_match"`
	FirstDivergence        *int    `json:"first_divergence"`
	TeacherForcedTop1Match int     `json:"teacher_forced_top1_match"`
	TeacherForcedSteps     int     `json:"teacher_forced_steps"`
	PrefillCosine          float64 `json:"prefill_cosine"`
	NextLogitsMaxAbsDiff   float64 `json:"next_logits_max_abs_diff"`
}

func (f *File) parseModel(name string, raw json.RawMessage) (*Model, error) {
	var m struct {
		Prompts json.RawMessage `json:"prompts"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	order, err := objectKeys(m.Prompts)
	if err != nil {
		return nil, fmt.Errorf("prompts: %w", err)
	}
	var byName map[string]json.RawMessage
	if err := json.Unmarshal(m.Prompts, &byName); err != nil {
		return nil, fmt.Errorf("prompts: %w", err)
	}
	model := &Model{Name: name}
	for _, pn := range order {
		p, err := f.parsePrompt(name, pn, byName[pn])
		if err != nil {
			return nil, fmt.Errorf("prompt %s: %w", pn, err)
		}
		model.Prompts = append(model.Prompts, p)
	}
	return model, nil
}

func (f *File) parsePrompt(model, name string, raw json.RawMessage) (*Prompt, error) {
	var pj promptJSON
	if err := json.Unmarshal(raw, &pj); err != nil {
		return nil, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, err
	}
	p := &Prompt{Model: model, Name: name, IDs: pj.IDs, Text: pj.Text, GenIDs: pj.GenIDs, GenText: pj.GenText,
		LogitMargins: pj.Top1Margin, Top5IDs: pj.Top5IDs, Top5Logits: pj.Top5Vals, FullVsCachedMaxAbs: pj.FullVsCached, file: f}
	if p.IDs == nil {
		p.IDs = pj.PromptIDs
	}
	if p.LogitMargins == nil {
		for _, v := range pj.Top5Vals {
			if len(v) < 2 {
				return nil, fmt.Errorf("top5_vals: a row with %d values", len(v))
			}
			p.LogitMargins = append(p.LogitMargins, float64(v[0])-float64(v[1]))
		}
	}
	// The ids in the JSON and in the tensors are the same data twice: insist they agree.
	for _, c := range []struct {
		suffix string
		ids    []int
	}{{"prompt_ids", p.IDs}, {"gen_ids", p.GenIDs}} {
		got, err := f.Ints(p.Key(c.suffix))
		if err != nil {
			return nil, err
		}
		if !equalInts(got, c.ids) {
			return nil, fmt.Errorf("%s: tensor %s %v disagrees with the JSON %v", f.TensorPath, p.Key(c.suffix), got, c.ids)
		}
	}
	for _, vn := range []string{"q8", "q8hu", "q4", "q4hu"} {
		rv, ok := fields[vn]
		if !ok {
			continue
		}
		var vj variantJSON
		if err := json.Unmarshal(rv, &vj); err != nil {
			return nil, fmt.Errorf("%s: %w", vn, err)
		}
		v := &Variant{Name: vn, GenIDs: vj.GenIDs, GreedyMatch: vj.GreedyMatch, FirstDivergence: -1,
			TeacherForcedTop1Match: vj.TeacherForcedTop1Match, TeacherForcedSteps: vj.TeacherForcedSteps,
			PrefillCosine: vj.PrefillCosine, NextLogitsMaxAbsDiff: vj.NextLogitsMaxAbsDiff}
		if vj.FirstDivergence != nil {
			v.FirstDivergence = *vj.FirstDivergence
		}
		if p.Variants == nil {
			p.Variants = map[string]*Variant{}
		}
		p.Variants[vn] = v
	}
	return p, nil
}

// objectKeys lists the keys of a JSON object in document order.
func objectKeys(raw json.RawMessage) ([]string, error) {
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("not a JSON object")
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// readSafetensors parses a whole safetensors file: an 8-byte little-endian header length, a JSON
// header of {name: {dtype, shape, data_offsets}}, then the data section.
func readSafetensors(path string) (map[string]rawTensor, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(data) < 8 {
		return nil, fmt.Errorf("%s: truncated: %d bytes", path, len(data))
	}
	n := binary.LittleEndian.Uint64(data)
	if n > uint64(len(data)-8) {
		return nil, fmt.Errorf("%s: header length %d exceeds the file", path, n)
	}
	var header map[string]json.RawMessage
	if err := json.Unmarshal(data[8:8+n], &header); err != nil {
		return nil, fmt.Errorf("%s: header: %w", path, err)
	}
	body := data[8+n:]
	out := map[string]rawTensor{}
	for name, raw := range header {
		if name == "__metadata__" {
			continue
		}
		var e struct {
			DType   string   `json:"dtype"`
			Shape   []int    `json:"shape"`
			Offsets [2]int64 `json:"data_offsets"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, fmt.Errorf("%s: tensor %q: %w", path, name, err)
		}
		size := map[string]int{"F32": 4, "I64": 8}[e.DType]
		if size == 0 {
			return nil, fmt.Errorf("%s: tensor %q: dtype %q is not supported (F32, I64)", path, name, e.DType)
		}
		for _, d := range e.Shape {
			if d < 0 {
				return nil, fmt.Errorf("%s: tensor %q: negative dimension in %v", path, name, e.Shape)
			}
		}
		want := int64(numElements(e.Shape) * size)
		if e.Offsets[0] < 0 || e.Offsets[1] > int64(len(body)) || e.Offsets[1]-e.Offsets[0] != want {
			return nil, fmt.Errorf("%s: tensor %q: data_offsets %v do not hold %d bytes inside a %d-byte data section", path, name, e.Offsets, want, len(body))
		}
		out[name] = rawTensor{dtype: e.DType, shape: e.Shape, data: body[e.Offsets[0]:e.Offsets[1]]}
	}
	return out, nil
}

func numElements(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// MaxAbsDiff is max |a[i] - b[i]| (+Inf when the lengths differ or a value is NaN).
func MaxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var m float64
	for i := range a {
		d := math.Abs(float64(a[i]) - float64(b[i]))
		if math.IsNaN(d) {
			return math.Inf(1)
		}
		m = max(m, d)
	}
	return m
}
