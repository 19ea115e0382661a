package hf

import (
	"fmt"
	"strings"
)

// Fused projections: Apple's Qwen3.5 export (the macos-stock contract, docs/apple-qwen35-contract.md)
// stores two concatenations of checkpoint projections, each multiplied once and sliced after:
//
//	layers.N.self_attn.qkv_gate_proj.weight = query | k_proj | v_proj | gate
//	layers.N.linear_attn.in_proj_all.weight = in_proj_qkv | in_proj_z | in_proj_b | in_proj_a
//
// where q_proj's rows, interleaved per head as [query_h (D rows), gate_h (D rows)], are split
// into the query rows of every head, then the gate rows of every head. This file is the one
// owner of those names and row orders; the lowering slices by the same order (FusedParts), and
// hf.KindOf classifies the fused names as Linear weights.

// Fused tensor roles (their names with the layer prefix dropped).
const (
	FusedQKVGate = "self_attn.qkv_gate_proj.weight"
	FusedInProj  = "linear_attn.in_proj_all.weight"
)

// FusedPart is one slice of a fused tensor: Rows rows starting at row Offset.
type FusedPart struct {
	Name   string // the part's role: "query", "key", "value", "gate", "qkv", "z", "b", "a"
	Offset int
	Rows   int
}

// FusedTensors lists the fused tensors of the config, in model order, as Linear specs.
func (c *Config) FusedTensors() []TensorSpec {
	var specs []TensorSpec
	for i, lt := range c.LayerTypes {
		role := FusedInProj
		if lt == FullAttention {
			role = FusedQKVGate
		}
		specs = append(specs, TensorSpec{Name: fmt.Sprintf("layers.%d.%s", i, role), Shape: []int{c.fusedRows(role), c.HiddenSize}, Kind: KindLinear, Layer: i})
	}
	return specs
}

// FusedParts is the row layout of a fused role, in order (nil for another role).
func (c *Config) FusedParts(role string) []FusedPart {
	var names []string
	var sizes []int
	switch role {
	case FusedQKVGate:
		HD, KD := c.NumHeads*c.HeadDim, c.NumKVHeads*c.HeadDim
		names, sizes = []string{"query", "key", "value", "gate"}, []int{HD, KD, KD, HD}
	case FusedInProj:
		nv := c.LinearNumValueHeads
		names, sizes = []string{"qkv", "z", "b", "a"}, []int{c.ConvDim(), c.ValueDim(), nv, nv}
	default:
		return nil
	}
	parts := make([]FusedPart, len(names))
	off := 0
	for i, n := range names {
		parts[i] = FusedPart{Name: n, Offset: off, Rows: sizes[i]}
		off += sizes[i]
	}
	return parts
}

func (c *Config) fusedRows(role string) int {
	n := 0
	for _, p := range c.FusedParts(role) {
		n += p.Rows
	}
	return n
}

// fusedRole splits a canonical name into its layer prefix and fused role ("" when not fused).
func fusedRole(name string) (layer, role string) {
	for _, r := range []string{FusedQKVGate, FusedInProj} {
		if p, ok := strings.CutSuffix(name, "."+r); ok && strings.HasPrefix(p, "layers.") {
			return p, r
		}
	}
	return "", ""
}

// fusedTensor builds the fused tensor name from the checkpoint's projections: a row map onto
// the parts' stored rows, nothing copied (Row reads through it; Bytes assembles a copy).
func (c *Checkpoint) fusedTensor(name string) (*Tensor, error) {
	layer, role := fusedRole(name)
	if role == "" {
		return nil, fmt.Errorf("%s: no tensor %q", c.Dir, name)
	}
	get := func(n string) (*Tensor, error) {
		t, ok := c.tensors[layer+"."+n]
		if !ok {
			return nil, fmt.Errorf("%s: fused tensor %s needs %s.%s, which the checkpoint lacks", c.Dir, name, layer, n)
		}
		return t, nil
	}
	var srcs []string
	if role == FusedQKVGate {
		srcs = []string{"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight"}
	} else {
		srcs = []string{"linear_attn.in_proj_qkv.weight", "linear_attn.in_proj_z.weight", "linear_attn.in_proj_b.weight", "linear_attn.in_proj_a.weight"}
	}
	parts := make([]*Tensor, len(srcs))
	var stored []string
	for i, s := range srcs {
		t, err := get(s)
		if err != nil {
			return nil, err
		}
		if i > 0 && (t.DType != parts[0].DType || t.Cols() != parts[0].Cols()) {
			return nil, fmt.Errorf("%s: fused tensor %s: %s is %s with %d columns, %s is %s with %d", c.Dir, name, t.StoredName, t.DType, t.Cols(), parts[0].StoredName, parts[0].DType, parts[0].Cols())
		}
		parts[i] = t
		stored = append(stored, t.StoredName)
	}
	var rows []rowRef
	add := func(t *Tensor, from, n int) {
		for r := from; r < from+n; r++ {
			rows = append(rows, rowRef{t, r})
		}
	}
	if role == FusedQKVGate {
		H, D := c.Config.NumHeads, c.Config.HeadDim
		if parts[0].Rows() != 2*H*D {
			return nil, fmt.Errorf("%s: %s has %d rows, want 2·heads·head_dim = %d", c.Dir, parts[0].StoredName, parts[0].Rows(), 2*H*D)
		}
		for h := 0; h < H; h++ { // the query rows of every head
			add(parts[0], 2*h*D, D)
		}
		add(parts[1], 0, parts[1].Rows())
		add(parts[2], 0, parts[2].Rows())
		for h := 0; h < H; h++ { // then the gate rows of every head
			add(parts[0], 2*h*D+D, D)
		}
	} else {
		for _, t := range parts {
			add(t, 0, t.Rows())
		}
	}
	if want := c.Config.fusedRows(role); len(rows) != want {
		return nil, fmt.Errorf("%s: fused tensor %s has %d rows, the config implies %d", c.Dir, name, len(rows), want)
	}
	return &Tensor{
		Name: name, StoredName: name + " (fused from " + strings.Join(stored, ", ") + ")", File: parts[0].File,
		DType: parts[0].DType, Shape: []int{len(rows), parts[0].Cols()}, rows: rows,
	}, nil
}

// rowRef is one row of a fused tensor: row r of the stored tensor t.
type rowRef struct {
	t *Tensor
	r int
}
