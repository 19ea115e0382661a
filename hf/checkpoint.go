// Package hf opens Hugging Face Qwen3.5 checkpoints: config.json in either layout, single-file or
// sharded safetensors through mmap, with every tensor the config implies checked by name and shape.
// Tensor data is never read at open time (except to check that a redundant lm_head of a tied
// model equals the embedding); rows are converted to float32 on demand.
package hf

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Checkpoint is an opened, validated checkpoint. Close releases its mappings.
type Checkpoint struct {
	Dir      string // resolved directory
	Ref      string // what the user passed (a path or a repo id)
	RepoID   string // "Org/Name" when resolved from the HF cache, else ""
	Revision string // snapshot revision when resolved from the HF cache
	Config   *Config
	Sharded  bool
	Files    []FileInfo // safetensors files, in name order

	Specs      []TensorSpec       // what the config implies, in model order
	Skipped    []SkippedTensor    // stored tensors a text export leaves out
	Unexpected []string           // stored names that are not part of the text stack's specs
	tensors    map[string]*Tensor // canonical name -> handle
	stored     []*Tensor          // every stored tensor, in (file, offset) order
	shards     []*shard
}

// FileInfo describes one safetensors file of the checkpoint.
type FileInfo struct {
	Name    string `json:"name"`
	Size    int64  `json:"size"`
	Tensors int    `json:"tensors"`
}

// SkippedTensor is a stored tensor a text export does not use, with the reason.
type SkippedTensor struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// Options adjust Open's strictness.
type Options struct {
	// AllowUnexpected keeps tensors that no spec names (listed in Unexpected) instead of failing:
	// for describing a checkpoint, never for converting one.
	AllowUnexpected bool
}

// Open resolves ref (a directory, or a repo id in the local HF cache), parses its config and maps
// and validates its safetensors. Unexpected text-stack tensors are an error.
func Open(ref string) (*Checkpoint, error) { return OpenWith(ref, Options{}) }

// OpenWith is Open with options.
func OpenWith(ref string, opt Options) (*Checkpoint, error) {
	dir, repo, rev, err := Resolve(ref)
	if err != nil {
		return nil, err
	}
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	c := &Checkpoint{Dir: dir, Ref: ref, RepoID: repo, Revision: rev, Config: cfg, tensors: map[string]*Tensor{}}
	if err := c.load(opt); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Close unmaps every file. Tensors and their Bytes must not be used afterwards.
func (c *Checkpoint) Close() error {
	var first error
	for _, s := range c.shards {
		if err := s.close(); err != nil && first == nil {
			first = err
		}
	}
	c.shards = nil
	return first
}

// Tensor returns the tensor with canonical name (e.g. "layers.0.mlp.up_proj.weight").
func (c *Checkpoint) Tensor(name string) (*Tensor, error) {
	t, ok := c.tensors[name]
	if !ok {
		return c.fusedTensor(name) // Apple's fused projections (fused.go), or an error naming name
	}
	return t, nil
}

// Head is the output projection: lm_head when untied, the embedding when tied.
func (c *Checkpoint) Head() *Tensor {
	if c.Config.TieWordEmbeddings {
		return c.tensors["embed_tokens.weight"]
	}
	return c.tensors[headName]
}

// Stored lists every tensor in the files (including skipped ones), in file and offset order.
func (c *Checkpoint) Stored() []*Tensor { return c.stored }

// NumParams counts the elements of the tensors the text model uses (a tied head counted once).
func (c *Checkpoint) NumParams() int64 {
	var n int64
	for _, s := range c.Specs {
		n += int64(c.tensors[s.Name].NumElements())
	}
	return n
}

type indexFile struct {
	WeightMap map[string]string `json:"weight_map"`
}

func (c *Checkpoint) load(opt Options) error {
	single := filepath.Join(c.Dir, "model.safetensors")
	indexPath := filepath.Join(c.Dir, "model.safetensors.index.json")
	var want map[string]string // stored name -> file, for sharded checkpoints
	var files []string
	if data, err := os.ReadFile(indexPath); err == nil {
		var idx indexFile
		if err := decodeJSON(data, &idx); err != nil {
			return fmt.Errorf("%s: %w", indexPath, err)
		}
		if len(idx.WeightMap) == 0 {
			return fmt.Errorf("%s: field weight_map: missing or empty", indexPath)
		}
		want = idx.WeightMap
		seen := map[string]bool{}
		for _, name := range sortedKeys(idx.WeightMap) { // name order: the same message every run
			f := idx.WeightMap[name]
			if f == "" || filepath.Base(f) != f {
				return fmt.Errorf("%s: weight_map[%q] = %q is not a file name in the checkpoint directory", indexPath, name, f)
			}
			if !seen[f] {
				seen[f] = true
				files = append(files, f)
			}
		}
		sort.Strings(files)
		c.Sharded = true
	} else if !os.IsNotExist(err) {
		return fmt.Errorf("%s: %w", indexPath, err)
	} else if _, err := os.Stat(single); err == nil {
		files = []string{"model.safetensors"}
	} else {
		return fmt.Errorf("%s: no model.safetensors or model.safetensors.index.json", c.Dir)
	}

	where := map[string]string{} // stored name -> file actually holding it
	for _, f := range files {
		path := filepath.Join(c.Dir, f)
		if _, err := os.Stat(path); err != nil {
			if os.IsNotExist(err) && c.Sharded {
				return fmt.Errorf("%s: shard %s named by model.safetensors.index.json is missing", c.Dir, f)
			}
			return err
		}
		s, err := openShard(path)
		if err != nil {
			return err
		}
		c.shards = append(c.shards, s)
		c.Files = append(c.Files, FileInfo{Name: f, Size: s.size, Tensors: len(s.tensors)})
		for _, t := range s.tensors {
			if prev, dup := where[t.StoredName]; dup {
				return fmt.Errorf("%s: tensor %q is stored in both %s and %s", c.Dir, t.StoredName, prev, f)
			}
			where[t.StoredName] = f
			c.stored = append(c.stored, t)
		}
	}
	for _, name := range sortedKeys(want) {
		f := want[name]
		got, ok := where[name]
		if !ok {
			return fmt.Errorf("%s: tensor %q is mapped to %s by model.safetensors.index.json but absent from that shard", c.Dir, name, f)
		}
		if got != f {
			return fmt.Errorf("%s: tensor %q is mapped to %s by model.safetensors.index.json but stored in %s", c.Dir, name, f, got)
		}
	}

	byCanon := map[string]*Tensor{}
	for _, t := range c.stored {
		name, skip, ok := canonicalName(t.StoredName)
		switch {
		case skip != "":
			c.Skipped = append(c.Skipped, SkippedTensor{Name: t.StoredName, Reason: skip})
			continue
		case !ok:
			c.Unexpected = append(c.Unexpected, t.StoredName)
			continue
		}
		if prev, dup := byCanon[name]; dup {
			return fmt.Errorf("%s: tensors %q and %q are both the text stack's %q", c.Dir, prev.StoredName, t.StoredName, name)
		}
		t.Name = name
		byCanon[name] = t
	}
	return c.validate(byCanon, opt)
}

// validate checks every implied tensor by name and exact shape, and accounts for every other one.
func (c *Checkpoint) validate(byCanon map[string]*Tensor, opt Options) error {
	cfg := c.Config
	c.Specs = cfg.ExpectedTensors()
	prefix := c.textPrefix(byCanon)
	var problems []string
	for _, s := range c.Specs {
		t, ok := byCanon[s.Name]
		if !ok {
			stored := prefix + s.Name
			if s.Name == headName {
				stored = headName
			}
			problems = append(problems, fmt.Sprintf("tensor %s: missing (expected shape %v)", stored, s.Shape))
			continue
		}
		if !slices.Equal(t.Shape, s.Shape) {
			problems = append(problems, fmt.Sprintf("tensor %s: shape %v, expected %v", t.StoredName, t.Shape, s.Shape))
		}
		c.tensors[s.Name] = t
		delete(byCanon, s.Name)
	}
	if t, ok := byCanon[headName]; ok && cfg.TieWordEmbeddings {
		// A tied checkpoint may still carry lm_head; it is only harmless if it is the embedding.
		delete(byCanon, headName)
		if emb, ok := c.tensors["embed_tokens.weight"]; ok {
			if err := sameValues(t, emb); err != nil {
				problems = append(problems, fmt.Sprintf("tensor %s: present in a checkpoint with tie_word_embeddings=true but %v", t.StoredName, err))
			} else {
				c.Skipped = append(c.Skipped, SkippedTensor{Name: t.StoredName, Reason: "tied head: equal to the embedding, which is used instead"})
			}
		}
	}
	for _, t := range byCanon {
		c.Unexpected = append(c.Unexpected, t.StoredName)
	}
	sort.Strings(c.Unexpected)
	if len(problems) > 0 {
		const show = 12
		more := ""
		if len(problems) > show {
			more = fmt.Sprintf("\n  ... and %d more", len(problems)-show)
			problems = problems[:show]
		}
		return fmt.Errorf("%s: checkpoint does not match its config:\n  %s%s", c.Dir, strings.Join(problems, "\n  "), more)
	}
	if len(c.Unexpected) > 0 && !opt.AllowUnexpected {
		return fmt.Errorf("%s: unexpected tensors that a Qwen3.5 text decoder does not use (refusing to guess their role): %s", c.Dir, strings.Join(c.Unexpected, ", "))
	}
	return nil
}

// textPrefix is the stored prefix of this checkpoint's text stack, for naming missing tensors.
func (c *Checkpoint) textPrefix(byCanon map[string]*Tensor) string {
	for _, t := range byCanon {
		if t.Name != headName {
			return strings.TrimSuffix(t.StoredName, t.Name)
		}
	}
	if c.Config.Nested {
		return textPrefixes[0]
	}
	return textPrefixes[1]
}

// sameValues compares two tensors element by element as float32, row by row.
func sameValues(a, b *Tensor) error {
	if !slices.Equal(a.Shape, b.Shape) {
		return fmt.Errorf("its shape %v differs from the embedding's %v", a.Shape, b.Shape)
	}
	ra, rb := make([]float32, a.Cols()), make([]float32, b.Cols())
	for r := 0; r < a.Rows(); r++ {
		a.Row(r, ra)
		b.Row(r, rb)
		for i := range ra {
			if ra[i] != rb[i] && !(math.IsNaN(float64(ra[i])) && math.IsNaN(float64(rb[i]))) {
				return fmt.Errorf("it differs from the embedding at [%d, %d] (%g vs %g)", r, i, ra[i], rb[i])
			}
		}
	}
	return nil
}

// FileDigest identifies one source file by content.
type FileDigest struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Digests hashes the files that define the model (config, index, safetensors, tokenizer files),
// so a bundle can record exactly which source it came from. It reads every byte once; progress,
// if non-nil, is told how many bytes each file added.
func (c *Checkpoint) Digests(progress func(n int64)) ([]FileDigest, error) {
	names := []string{"config.json", "generation_config.json", "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json"}
	for _, f := range c.Files {
		names = append(names, f.Name)
	}
	sort.Strings(names)
	var out []FileDigest
	for _, n := range names {
		f, err := os.Open(filepath.Join(c.Dir, n))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		h := sha256.New()
		size, err := io.Copy(h, f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(c.Dir, n), err)
		}
		out = append(out, FileDigest{Name: n, Size: size, SHA256: hex.EncodeToString(h.Sum(nil))})
		if progress != nil {
			progress(size)
		}
	}
	return out, nil
}

// sortedKeys is m's keys in order, so a validation error names the same entry on every run.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
