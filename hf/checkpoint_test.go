package hf

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

const fixtures = "../testdata"

func TestOpenFixtures(t *testing.T) {
	cases := []struct {
		dir        string
		modelType  string
		layers     int
		tied       bool
		nested     bool
		stored     int
		skipped    int
		params     int64
		dtypes     map[DType]int
		layerTypes string
	}{
		// Parameter counts are transformers' own n_params from the golden JSONs.
		{"tinyqwen35-code", "qwen3_5_text", 8, true, false, 108, 0, 2386592, map[DType]int{BF16: 102, F32: 6}, "LLLFLLLF"},
		{"random/tiny_tied_4L", "qwen3_5_text", 4, true, false, 0, 0, 225736, map[DType]int{F32: 0}, "LLLF"},
		{"random/tiny_untied_8L", "qwen3_5_text", 8, false, false, 0, 0, 422016, map[DType]int{F32: 0}, "LLLFLLLF"},
		{"random/tiny_untied_8L-multimodal", "qwen3_5", 8, false, true, 114, 5, 422016, map[DType]int{F32: 114}, "LLLFLLLF"},
	}
	for _, tc := range cases {
		t.Run(tc.dir, func(t *testing.T) {
			c, err := Open(filepath.Join(fixtures, tc.dir))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			cfg := c.Config
			if cfg.ModelType != tc.modelType || cfg.NumLayers != tc.layers || cfg.TieWordEmbeddings != tc.tied || cfg.Nested != tc.nested {
				t.Errorf("config: type %s layers %d tied %v nested %v", cfg.ModelType, cfg.NumLayers, cfg.TieWordEmbeddings, cfg.Nested)
			}
			var lt strings.Builder
			for _, l := range cfg.LayerTypes {
				lt.WriteByte(map[LayerType]byte{LinearAttention: 'L', FullAttention: 'F'}[l])
			}
			if lt.String() != tc.layerTypes {
				t.Errorf("layer types %s, want %s", lt.String(), tc.layerTypes)
			}
			if got := c.NumParams(); got != tc.params {
				t.Errorf("params %d, want %d", got, tc.params)
			}
			if tc.stored > 0 && len(c.Stored()) != tc.stored {
				t.Errorf("stored tensors %d, want %d", len(c.Stored()), tc.stored)
			}
			if len(c.Skipped) != tc.skipped {
				t.Errorf("skipped %d, want %d: %v", len(c.Skipped), tc.skipped, c.Skipped)
			}
			for _, s := range c.Skipped {
				if !strings.HasPrefix(s.Name, "model.visual.") && !strings.HasPrefix(s.Name, "mtp.") {
					t.Errorf("skipped %s", s.Name)
				}
			}
			if len(c.Unexpected) != 0 {
				t.Errorf("unexpected %v", c.Unexpected)
			}
			if tc.dtypes[BF16] > 0 {
				census := map[DType]int{}
				for _, tt := range c.Stored() {
					census[tt.DType]++
				}
				for d, n := range tc.dtypes {
					if census[d] != n {
						t.Errorf("%s tensors: %d, want %d", d, census[d], n)
					}
				}
				if a, _ := c.Tensor("layers.0.linear_attn.A_log"); a.DType != F32 {
					t.Errorf("A_log dtype %s, want F32 (mixed-dtype file)", a.DType)
				}
			}
			head := c.Head()
			if tc.tied && head.Name != "embed_tokens.weight" || !tc.tied && head.Name != "lm_head.weight" {
				t.Errorf("head is %s", head.Name)
			}
		})
	}
}

// The multimodal layout holds the same weights as the text one under other names.
func TestMultimodalSameWeights(t *testing.T) {
	a, err := Open(filepath.Join(fixtures, "random/tiny_untied_8L"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(filepath.Join(fixtures, "random/tiny_untied_8L-multimodal"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, s := range a.Specs {
		ta, _ := a.Tensor(s.Name)
		tb, err := b.Tensor(s.Name)
		if err != nil {
			t.Fatal(err)
		}
		if string(ta.Bytes()) != string(tb.Bytes()) {
			t.Errorf("%s differs between layouts", s.Name)
		}
		if s.Name != "lm_head.weight" && !strings.HasPrefix(tb.StoredName, "model.language_model.") {
			t.Errorf("%s stored as %s", s.Name, tb.StoredName)
		}
	}
}

// Row conversion against values decoded independently from the raw bytes.
func TestRowConversion(t *testing.T) {
	c, err := Open(filepath.Join(fixtures, "tinyqwen35-code"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	emb, _ := c.Tensor("embed_tokens.weight")
	row := make([]float32, emb.Cols())
	if err := emb.Row(7, row); err != nil {
		t.Fatal(err)
	}
	raw := emb.Bytes()[7*128*2:]
	for i, v := range row {
		bits := uint32(raw[2*i]) | uint32(raw[2*i+1])<<8
		if want := math.Float32frombits(bits << 16); v != want {
			t.Fatalf("row 7 col %d: %g, want %g", i, v, want)
		}
	}
	if err := emb.Row(1024, row); err == nil {
		t.Error("row out of range accepted")
	}
	if err := emb.Row(0, row[:5]); err == nil {
		t.Error("short buffer accepted")
	}
	alog, _ := c.Tensor("layers.0.linear_attn.A_log")
	v := alog.Values()
	if len(v) != 8 || v[0] == 0 {
		t.Errorf("A_log values %v", v)
	}
}

func TestF16Decode(t *testing.T) {
	dst := make([]float32, 4)
	decode(dst, F16, []byte{0x00, 0x3c, 0x00, 0xc0, 0x01, 0x00, 0x00, 0x7c})
	want := []float32{1, -2, float32(math.Ldexp(1, -24)), float32(math.Inf(1))}
	for i := range want {
		if dst[i] != want[i] {
			t.Errorf("f16 %d: %g, want %g", i, dst[i], want[i])
		}
	}
}

// --- bad input -----------------------------------------------------------------------------

type stTensor struct {
	name  string
	dtype string
	shape []int64
	data  []byte
	// overrides for malformed headers
	offsets *[2]int64
}

// writeSafetensors writes a safetensors file by hand so tests can also write malformed ones.
func writeSafetensors(t *testing.T, path string, tensors []stTensor, mutate func(header []byte, data []byte) ([]byte, []byte)) {
	t.Helper()
	h := map[string]any{"__metadata__": map[string]string{"format": "pt"}}
	var data []byte
	for _, tt := range tensors {
		off := [2]int64{int64(len(data)), int64(len(data) + len(tt.data))}
		if tt.offsets != nil {
			off = *tt.offsets
		}
		h[tt.name] = map[string]any{"dtype": tt.dtype, "shape": tt.shape, "data_offsets": off}
		data = append(data, tt.data...)
	}
	hdr, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	if mutate != nil {
		hdr, data = mutate(hdr, data)
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(hdr)))
	out = append(out, hdr...)
	out = append(out, data...)
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// copyFixture copies a fixture checkpoint directory to a temp dir for mutation.
func copyFixture(t *testing.T, name string) string {
	t.Helper()
	dst := t.TempDir()
	src := filepath.Join(fixtures, name)
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// fixtureTensors reads a fixture's tensors back as stTensors (in offset order) for rewriting.
func fixtureTensors(t *testing.T, name string) []stTensor {
	t.Helper()
	c, err := OpenWith(filepath.Join(fixtures, name), Options{AllowUnexpected: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var out []stTensor
	for _, tt := range c.Stored() {
		shape := make([]int64, len(tt.Shape))
		for i, d := range tt.Shape {
			shape[i] = int64(d)
		}
		out = append(out, stTensor{name: tt.StoredName, dtype: tt.DType.String(), shape: shape, data: append([]byte(nil), tt.Bytes()...)})
	}
	return out
}

func rewriteModel(t *testing.T, dir string, tensors []stTensor, mutate func([]byte, []byte) ([]byte, []byte)) {
	writeSafetensors(t, filepath.Join(dir, "model.safetensors"), tensors, mutate)
}

func without(ts []stTensor, name string) []stTensor {
	var out []stTensor
	for _, t := range ts {
		if t.name != name {
			out = append(out, t)
		}
	}
	return out
}

func TestBadInput(t *testing.T) {
	const base = "random/tiny_tied_4L"
	type setup func(t *testing.T) string
	cases := []struct {
		name  string
		setup setup
		want  []string // substrings the error must contain
	}{
		{"missing config.json", func(t *testing.T) string {
			d := copyFixture(t, base)
			os.Remove(filepath.Join(d, "config.json"))
			return d
		}, []string{"config.json", "missing"}},
		{"unsupported model_type", func(t *testing.T) string {
			d := copyFixture(t, base)
			editConfig(t, d, func(m map[string]any) { m["model_type"] = "llama" })
			return d
		}, []string{"config.json", "model_type", `"llama"`, "qwen3_5, qwen3_5_text"}},
		{"malformed JSON", func(t *testing.T) string {
			d := copyFixture(t, base)
			os.WriteFile(filepath.Join(d, "config.json"), []byte(`{"model_type": "qwen3_5_text", "hidden_size": 64,`), 0o644)
			return d
		}, []string{"config.json", "malformed JSON"}},
		{"wrong field type", func(t *testing.T) string {
			d := copyFixture(t, base)
			editConfig(t, d, func(m map[string]any) { m["hidden_size"] = "64" })
			return d
		}, []string{"config.json", "hidden_size"}},
		{"missing field", func(t *testing.T) string {
			d := copyFixture(t, base)
			editConfig(t, d, func(m map[string]any) { delete(m, "head_dim") })
			return d
		}, []string{"config.json", "head_dim", "missing"}},
		{"truncated safetensors", func(t *testing.T) string {
			d := copyFixture(t, base)
			p := filepath.Join(d, "model.safetensors")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)-100], 0o644)
			return d
		}, []string{"model.safetensors", "beyond", "truncated"}},
		{"tiny file", func(t *testing.T) string {
			d := copyFixture(t, base)
			os.WriteFile(filepath.Join(d, "model.safetensors"), []byte{1, 2, 3}, 0o644)
			return d
		}, []string{"model.safetensors", "truncated"}},
		{"header length beyond the file", func(t *testing.T) string {
			d := copyFixture(t, base)
			p := filepath.Join(d, "model.safetensors")
			b, _ := os.ReadFile(p)
			binary.LittleEndian.PutUint64(b, uint64(len(b)))
			os.WriteFile(p, b, 0o644)
			return d
		}, []string{"model.safetensors", "header length", "beyond the end of the file"}},
		{"overlapping offsets", func(t *testing.T) string {
			d := copyFixture(t, base)
			ts := fixtureTensors(t, base)
			ts[1].offsets = &[2]int64{4, 4 + int64(len(ts[1].data))}
			rewriteModel(t, d, ts, nil)
			return d
		}, []string{"model.safetensors", "overlap", ts0(t, base)}},
		{"out-of-range offsets", func(t *testing.T) string {
			d := copyFixture(t, base)
			ts := fixtureTensors(t, base)
			last := len(ts) - 1
			total := int64(0)
			for _, x := range ts {
				total += int64(len(x.data))
			}
			ts[last].offsets = &[2]int64{total, total + int64(len(ts[last].data))}
			rewriteModel(t, d, ts, nil)
			return d
		}, []string{"model.safetensors", "beyond", "data section"}},
		{"wrong shape", func(t *testing.T) string {
			d := copyFixture(t, base)
			ts := fixtureTensors(t, base)
			for i := range ts {
				if ts[i].name == "model.layers.0.mlp.up_proj.weight" {
					ts[i].shape = []int64{ts[i].shape[1], ts[i].shape[0]}
				}
			}
			rewriteModel(t, d, ts, nil)
			return d
		}, []string{"model.layers.0.mlp.up_proj.weight", "shape [64 128], expected [128 64]"}},
		{"shape disagrees with bytes", func(t *testing.T) string {
			d := copyFixture(t, base)
			ts := fixtureTensors(t, base)
			ts[0].shape = []int64{ts[0].shape[0] + 1}
			rewriteModel(t, d, ts, nil)
			return d
		}, []string{"model.safetensors", ts0(t, base), "needs"}},
		{"missing tensor", func(t *testing.T) string {
			d := copyFixture(t, base)
			rewriteModel(t, d, without(fixtureTensors(t, base), "model.layers.3.self_attn.k_norm.weight"), nil)
			return d
		}, []string{"model.layers.3.self_attn.k_norm.weight", "missing", "[32]"}},
		{"unexpected tensor", func(t *testing.T) string {
			d := copyFixture(t, base)
			ts := fixtureTensors(t, base)
			ts = append(ts, stTensor{name: "model.layers.0.mlp.up_proj.bias", dtype: "F32", shape: []int64{96}, data: make([]byte, 96*4)})
			rewriteModel(t, d, ts, nil)
			return d
		}, []string{"unexpected", "model.layers.0.mlp.up_proj.bias"}},
		{"tied head differs from the embedding", func(t *testing.T) string {
			d := copyFixture(t, base)
			ts := fixtureTensors(t, base)
			var emb stTensor
			for _, x := range ts {
				if x.name == "model.embed_tokens.weight" {
					emb = x
				}
			}
			head := stTensor{name: "lm_head.weight", dtype: emb.dtype, shape: emb.shape, data: append([]byte(nil), emb.data...)}
			head.data[100] ^= 0x40
			rewriteModel(t, d, append(ts, head), nil)
			return d
		}, []string{"lm_head.weight", "tie_word_embeddings=true", "differs from the embedding"}},
		{"unsupported dtype", func(t *testing.T) string {
			d := copyFixture(t, base)
			ts := fixtureTensors(t, base)
			for i := range ts {
				if ts[i].name == "model.norm.weight" {
					ts[i].dtype = "F8_E4M3"
					ts[i].data = ts[i].data[:len(ts[i].data)/4]
				}
			}
			rewriteModel(t, d, ts, nil)
			return d
		}, []string{"model.safetensors", "model.norm.weight", "F8_E4M3", "not supported"}},
		{"index names a missing shard", func(t *testing.T) string {
			d := copyFixture(t, base)
			os.Rename(filepath.Join(d, "model.safetensors"), filepath.Join(d, "model-00001-of-00002.safetensors"))
			writeIndex(t, d, fixtureTensors(t, base), func(i int) string {
				if i%2 == 0 {
					return "model-00001-of-00002.safetensors"
				}
				return "model-00002-of-00002.safetensors"
			})
			return d
		}, []string{"model-00002-of-00002.safetensors", "missing"}},
		{"index names a tensor absent from its shard", func(t *testing.T) string {
			d := copyFixture(t, base)
			os.Rename(filepath.Join(d, "model.safetensors"), filepath.Join(d, "model-00001-of-00001.safetensors"))
			ts := fixtureTensors(t, base)
			ts = append(ts, stTensor{name: "model.layers.9.ghost.weight"})
			writeIndex(t, d, ts, func(int) string { return "model-00001-of-00001.safetensors" })
			return d
		}, []string{"model.layers.9.ghost.weight", "absent from that shard", "model-00001-of-00001.safetensors"}},
		{"no weights", func(t *testing.T) string {
			d := copyFixture(t, base)
			os.Remove(filepath.Join(d, "model.safetensors"))
			return d
		}, []string{"no model.safetensors"}},
		{"a file, not a directory", func(t *testing.T) string {
			return filepath.Join(copyFixture(t, base), "config.json")
		}, []string{"config.json", "not a directory"}},
		{"neither a directory nor a cached repo id", func(t *testing.T) string {
			t.Setenv("HF_HUB_CACHE", t.TempDir())
			t.Setenv("HF_HOME", t.TempDir())
			return "Qwen/Qwen3.5-0.8B"
		}, []string{"Qwen/Qwen3.5-0.8B", "Hugging Face cache", "never downloads"}},
		{"not a path, not an id", func(t *testing.T) string {
			return "./no/such/dir"
		}, []string{"./no/such/dir", "neither a directory nor"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ref := tc.setup(t)
			c, err := Open(ref)
			if err == nil {
				c.Close()
				t.Fatalf("Open(%s) succeeded", ref)
			}
			t.Log(err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// ts0 names the first tensor (by offset) of a fixture, which the offset cases corrupt.
func ts0(t *testing.T, name string) string {
	return fixtureTensors(t, name)[0].name
}

func editConfig(t *testing.T, dir string, edit func(map[string]any)) {
	t.Helper()
	p := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, _ = json.Marshal(m)
	os.WriteFile(p, b, 0o644)
}

func writeIndex(t *testing.T, dir string, ts []stTensor, file func(i int) string) {
	t.Helper()
	wm := map[string]string{}
	for i, x := range ts {
		wm[x.name] = file(i)
	}
	b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"total_size": 0}, "weight_map": wm})
	os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), b, 0o644)
}

// A sharded copy of a fixture opens to the same tensors as the single file.
func TestSharded(t *testing.T) {
	const base = "random/tiny_untied_8L-multimodal"
	d := copyFixture(t, base)
	os.Remove(filepath.Join(d, "model.safetensors"))
	ts := fixtureTensors(t, base)
	sort.Slice(ts, func(i, j int) bool { return ts[i].name < ts[j].name })
	var a, b []stTensor
	for i, x := range ts {
		if i%3 == 0 {
			a = append(a, x)
		} else {
			b = append(b, x)
		}
	}
	writeSafetensors(t, filepath.Join(d, "model-00001-of-00002.safetensors"), a, nil)
	writeSafetensors(t, filepath.Join(d, "model-00002-of-00002.safetensors"), b, nil)
	writeIndex(t, d, ts, func(i int) string {
		if i%3 == 0 {
			return "model-00001-of-00002.safetensors"
		}
		return "model-00002-of-00002.safetensors"
	})
	c, err := Open(d)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ref, _ := Open(filepath.Join(fixtures, base))
	defer ref.Close()
	if !c.Sharded || len(c.Files) != 2 {
		t.Fatalf("sharded %v files %v", c.Sharded, c.Files)
	}
	for _, s := range ref.Specs {
		x, _ := ref.Tensor(s.Name)
		y, err := c.Tensor(s.Name)
		if err != nil || string(x.Bytes()) != string(y.Bytes()) {
			t.Errorf("%s differs in the sharded copy (%v)", s.Name, err)
		}
	}
	if len(c.Skipped) != len(ref.Skipped) {
		t.Errorf("skipped %d vs %d", len(c.Skipped), len(ref.Skipped))
	}
}

func TestResolveHFCache(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("HF_HUB_CACHE", cache)
	repo := filepath.Join(cache, "models--Qwen--Qwen3.5-Tiny")
	snap := filepath.Join(repo, "snapshots", "0123abcd")
	os.MkdirAll(filepath.Join(repo, "refs"), 0o755)
	os.MkdirAll(snap, 0o755)
	os.WriteFile(filepath.Join(repo, "refs", "main"), []byte("0123abcd\n"), 0o644)
	src := filepath.Join(fixtures, "random/tiny_tied_4L")
	for _, f := range []string{"config.json", "model.safetensors"} {
		abs, _ := filepath.Abs(filepath.Join(src, f))
		if err := os.Symlink(abs, filepath.Join(snap, f)); err != nil {
			t.Fatal(err)
		}
	}
	c, err := Open("Qwen/Qwen3.5-Tiny")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Dir != snap || c.RepoID != "Qwen/Qwen3.5-Tiny" || c.Revision != "0123abcd" {
		t.Errorf("resolved %s %s %s", c.Dir, c.RepoID, c.Revision)
	}
	// HF_HOME/hub is the second place looked in.
	t.Setenv("HF_HUB_CACHE", "")
	home := t.TempDir()
	t.Setenv("HF_HOME", home)
	os.Rename(cache, filepath.Join(home, "hub"))
	if dir, _, _, err := Resolve("Qwen/Qwen3.5-Tiny@0123abcd"); err != nil || dir != filepath.Join(home, "hub", "models--Qwen--Qwen3.5-Tiny", "snapshots", "0123abcd") {
		t.Errorf("HF_HOME lookup: %s %v", dir, err)
	}
	if _, _, _, err := Resolve("Qwen/Qwen3.5-Tiny@nope"); err == nil || !strings.Contains(err.Error(), "no snapshot") {
		t.Errorf("unknown revision: %v", err)
	}
}

func TestConfigLayouts(t *testing.T) {
	flat := `{"model_type":"qwen3_5_text","vocab_size":16,"hidden_size":8,"intermediate_size":8,"num_hidden_layers":8,
	"num_attention_heads":2,"num_key_value_heads":1,"head_dim":8,"linear_num_key_heads":1,"linear_num_value_heads":2,
	"linear_key_head_dim":4,"linear_value_head_dim":4,%s}`
	cases := []struct {
		name, extra string
		check       func(*Config) error
		wantErr     string
	}{
		{"interval default", `"rope_theta":10000`, func(c *Config) error {
			if c.LayerTypes[3] != FullAttention || c.LayerTypes[7] != FullAttention || c.LayerTypes[0] != LinearAttention {
				return fmt.Errorf("layer types %v", c.LayerTypes)
			}
			if c.PartialRotaryFactor != 0.25 || c.RopeTheta != 10000 || c.TieWordEmbeddings {
				return fmt.Errorf("rope %g %g tie %v", c.PartialRotaryFactor, c.RopeTheta, c.TieWordEmbeddings)
			}
			return nil
		}, ""},
		{"interval 2", `"rope_theta":10000,"full_attention_interval":2`, func(c *Config) error {
			if c.NumLayersOf(FullAttention) != 4 || c.LayerTypes[1] != FullAttention {
				return fmt.Errorf("layer types %v", c.LayerTypes)
			}
			return nil
		}, ""},
		{"rope_parameters", `"rope_parameters":{"rope_type":"default","rope_theta":1e7,"partial_rotary_factor":0.5,"mrope_section":[1,1,0]}`, func(c *Config) error {
			if c.RopeTheta != 1e7 || c.RotaryDim() != 4 {
				return fmt.Errorf("rope %g rotary %d", c.RopeTheta, c.RotaryDim())
			}
			return nil
		}, ""},
		{"no rope theta", `"rms_norm_eps":1e-6`, nil, "rope_theta: missing"},
		{"yarn", `"rope_parameters":{"rope_type":"yarn","rope_theta":1e7}`, nil, `"yarn" is not supported`},
		{"bad mrope", `"rope_parameters":{"rope_theta":1e7,"mrope_section":[3,3,3]}`, nil, "mrope_section: sums to 9"},
		{"layer_types length", `"rope_theta":1e4,"layer_types":["full_attention"]`, nil, "layer_types: 1 entries"},
		{"layer_types value", `"rope_theta":1e4,"layer_types":["full_attention","x","full_attention","full_attention","full_attention","full_attention","full_attention","full_attention"]`, nil, `layer_types[1]: "x"`},
		{"gelu", `"rope_theta":1e4,"hidden_act":"gelu"`, nil, `hidden_act: "gelu"`},
		{"nv not multiple", `"rope_theta":1e4,"linear_num_key_heads":2,"linear_num_value_heads":3`, nil, "linear_num_value_heads: 3 is not a multiple"},
		{"trailing", `"rope_theta":1e4} {`, nil, "trailing data"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ParseConfig([]byte(fmt.Sprintf(flat, tc.extra)))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.check(cfg); err != nil {
				t.Error(err)
			}
		})
	}
	nested := func(top, text string) string {
		return `{"model_type":"qwen3_5",` + top + `"text_config":` + fmt.Sprintf(flat, `"rope_theta":1e4`+text) + `}`
	}
	for _, tc := range []struct {
		cfg     string
		tie     bool
		wantErr string
	}{
		{nested(`"tie_word_embeddings":true,`, `,"tie_word_embeddings":true`), true, ""},
		{nested(`"tie_word_embeddings":true,`, ``), true, ""},
		{nested(``, `,"tie_word_embeddings":true`), true, ""},
		{nested(``, ``), false, ""},
		{nested(`"tie_word_embeddings":false,`, `,"tie_word_embeddings":true`), false, "disagree"},
		{`{"model_type":"qwen3_5"}`, false, "text_config: missing"},
	} {
		cfg, err := ParseConfig([]byte(tc.cfg))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: error %v, want %q", tc.cfg, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.cfg, err)
			continue
		}
		if cfg.TieWordEmbeddings != tc.tie || !cfg.Nested {
			t.Errorf("%s: tie %v nested %v", tc.cfg, cfg.TieWordEmbeddings, cfg.Nested)
		}
	}
}
