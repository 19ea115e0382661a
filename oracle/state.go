package oracle

import (
	"slices"

	"qconv/hf"
)

// State is the decode state of one sequence: every layer's cache and the number of tokens fed.
// Layouts follow transformers' cache (docs/model-math.md#6-block-head-and-state) without the batch axis.
type State struct {
	Len    int // tokens consumed so far (the next token's position)
	Layers []LayerState

	model *Model
	ws    *workspace // scratch, never shared between States
}

// LayerState is one layer's cache. Linear-attention layers fill Conv and Recurrent,
// full-attention layers Keys and Values.
type LayerState struct {
	Type hf.LayerType
	// Conv is [conv_dim, K]: the last K pre-conv qkv columns, newest at index K-1, zeros before
	// the first token.
	Conv []float32
	// Recurrent is [nv, dk, dv]: the gated-delta state S of every value head, S[i][j] pairing
	// key dim i with value dim j.
	Recurrent []float32
	// Keys and Values hold one [T, D] slice per KV head; keys after k_norm and RoPE.
	Keys, Values [][]float32
}

// NewState returns the empty state of a sequence for m.
func (m *Model) NewState() *State {
	s := &State{model: m, Layers: make([]LayerState, len(m.layers))}
	for i, l := range m.layers {
		ls := &s.Layers[i]
		ls.Type = l.typ
		switch l.typ {
		case hf.LinearAttention:
			ls.Conv = make([]float32, m.convDim*m.kern)
			ls.Recurrent = make([]float32, m.nv*m.dk*m.dv)
		case hf.FullAttention:
			ls.Keys = make([][]float32, m.nKV)
			ls.Values = make([][]float32, m.nKV)
		}
	}
	return s
}

// Clone returns an independent copy of s, so a caller can branch a sequence (teacher forcing,
// rollouts from a common prefix).
func (s *State) Clone() *State {
	c := &State{Len: s.Len, model: s.model, Layers: make([]LayerState, len(s.Layers))}
	for i, l := range s.Layers {
		c.Layers[i] = LayerState{Type: l.Type, Conv: slices.Clone(l.Conv), Recurrent: slices.Clone(l.Recurrent)}
		if l.Keys != nil {
			c.Layers[i].Keys = make([][]float32, len(l.Keys))
			c.Layers[i].Values = make([][]float32, len(l.Values))
			for g := range l.Keys {
				c.Layers[i].Keys[g] = slices.Clone(l.Keys[g])
				c.Layers[i].Values[g] = slices.Clone(l.Values[g])
			}
		}
	}
	return c
}

// KeyCache is the key cache as transformers lays it out, [Hkv, T, D] (nil for a linear layer).
func (l *LayerState) KeyCache() []float32 { return slices.Concat(l.Keys...) }

// ValueCache is the value cache, [Hkv, T, D] (nil for a linear layer).
func (l *LayerState) ValueCache() []float32 { return slices.Concat(l.Values...) }

// workspace holds the activations of one chunk of up to n tokens.
type workspace struct {
	n                int
	x, xn, res       []float32 // [n, h]: residual stream, its norm, a mixer or MLP output
	qkv, z, b, a     []float32 // gated-delta projections
	mix              []float32 // mixer output before its output projection [n, max(H·D, nv·dv)]
	q, k, v          []float32 // attention projections
	gate, up         []float32 // [n, I]
	conv, mem, delta []float32 // per-token gated-delta scratch (mem, delta: dv per value head)
	heads            []float32 // one attention query head
	scores           []float32 // attention scores over the cache
}

func (s *State) workspace(n int) *workspace {
	if s.ws != nil && s.ws.n >= n {
		return s.ws
	}
	m := s.model
	mixW := max(m.nH*m.hd, m.nv*m.dv)
	s.ws = &workspace{
		n: n, x: make([]float32, n*m.h), xn: make([]float32, n*m.h), res: make([]float32, n*m.h),
		qkv: make([]float32, n*m.convDim), z: make([]float32, n*m.nv*m.dv), b: make([]float32, n*m.nv), a: make([]float32, n*m.nv),
		mix: make([]float32, n*mixW),
		q:   make([]float32, n*2*m.nH*m.hd), k: make([]float32, n*m.nKV*m.hd), v: make([]float32, n*m.nKV*m.hd),
		gate: make([]float32, n*m.inter), up: make([]float32, n*m.inter),
		conv:  make([]float32, m.convDim),
		mem:   make([]float32, m.nv*m.dv),
		delta: make([]float32, m.nv*m.dv),
		heads: make([]float32, m.hd),
	}
	return s.ws
}
