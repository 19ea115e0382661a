package interp

import (
	"fmt"
	"slices"
	"sync"

	"qconv/graph"
)

// Host-cache windows. The host-cache graphs (ios-gpu) take past_k/past_v with all ctx slots
// (2048 by default) and a mask over ctx+q columns, and concatenate the whole past with the new
// block in every attention layer: a session feeding them as written copies and attends over
// every slot at every step, although only the first pos are visible. The session instead runs
// the same function specialized to a window of W slots (W the smallest power of two, at least
// minHostWindow, that holds pos+q tokens, and at most ctx), keeping its caches W slots wide and
// growing them as the engine's caches fill. The host side of the contract is unchanged: the
// session writes k_cur/v_cur at the token's position, carries conv/rec, masks every slot at or
// beyond pos.
//
// The result is bit-identical to feeding all ctx slots: a hidden slot holds zeros and its mask
// column is graph.MaskedScore, so its softmax weight is exp(-1e4 - max) = 0 exactly (float64
// underflow; the softmax sums in float64 in column order), it adds an exact zero to the weighted
// sum of values (accumulated row by row in slot order), and every visible score is a dot product
// that does not depend on how many slots there are. Dropping hidden slots removes exact zeros
// from sums whose other terms keep their order. session_window_test.go checks this against a
// naive ctx-slot host loop and the transformers goldens.

// minHostWindow is the smallest window a host-cache session runs with.
const minHostWindow = 64

// hostWindow returns the window for n tokens in a context of ctx slots.
func hostWindow(n, ctx int) int {
	w := minHostWindow
	for w < n {
		w *= 2
	}
	return min(w, ctx)
}

// windowModule returns m with @main specialized from ctx cache slots to w: past_k/past_v get w
// slots and causal_mask w+q columns, and every op downstream of them has ctx (and ctx+q) replaced
// by w (w+q) in its result types and integer constant operands (slice ends, reshape shapes). It
// returns nil when that substitution would be ambiguous (a dimension elsewhere on the path
// equals ctx or ctx+q), in which case the session feeds all ctx slots.
func windowModule(m *graph.Module, ctx, w int64) (*graph.Module, error) {
	f := m.Func("main")
	mask := f.Arg(graph.InCausalMask)
	if f == nil || mask == nil || mask.Value.Type.Rank() != 4 {
		return nil, nil
	}
	q := mask.Value.Type.Shape[2]
	if ctx <= minHostWindow || q == ctx || q == ctx+q {
		return nil, nil
	}
	sub := func(d int64) int64 {
		switch d {
		case ctx:
			return w
		case ctx + q:
			return w + q
		}
		return d
	}
	subType := func(t graph.Type) graph.Type {
		t.Shape = slices.Clone(t.Shape)
		for i, d := range t.Shape {
			t.Shape[i] = sub(d)
		}
		return t
	}
	nf := &graph.Func{Name: f.Name, Private: f.Private, NoInline: f.NoInline, Composite: f.Composite}
	vmap := make(map[*graph.Value]*graph.Value, f.NumValues())
	windowed := map[*graph.Value]bool{}
	for _, a := range f.Args {
		t := a.Value.Type
		if a.Name == graph.InPastK || a.Name == graph.InPastV || a.Name == graph.InCausalMask {
			axis := 3
			for i, d := range t.Shape {
				if i != axis && (d == ctx || d == ctx+q) {
					return nil, nil // ambiguous
				}
			}
			t = subType(t)
			vmap[a.Value] = nf.AddArg(a.Name, t)
			windowed[vmap[a.Value]] = true
		} else {
			vmap[a.Value] = nf.AddArg(a.Name, t)
		}
		nf.Args[len(nf.Args)-1].Mutation = a.Mutation
	}
	for _, op := range f.Body {
		operands := make([]*graph.Value, len(op.Operands))
		hit := false
		for i, o := range op.Operands {
			operands[i] = vmap[o]
			if operands[i] == nil {
				return nil, fmt.Errorf("window: operand %s of %s defined after its use", o, op.Name)
			}
			hit = hit || windowed[operands[i]]
		}
		if hit {
			for i, o := range op.Operands {
				if windowed[operands[i]] {
					continue
				}
				vals, isInts := graph.ConstInts(o)
				if !isInts {
					// A value from outside the window's path: none of its dims may look like ours.
					for _, d := range o.Type.Shape {
						if d == ctx || d == ctx+q {
							return nil, nil
						}
					}
					continue
				}
				nv := make([]int64, len(vals))
				changed := false
				for k, v := range vals {
					nv[k] = sub(v)
					changed = changed || nv[k] != v
				}
				if !changed {
					continue
				}
				d := o.Def.Attrs["value"].(graph.DenseAttr)
				c := graph.NewOp(graph.OpConstant, nil, []graph.Type{o.Type}, map[string]graph.Attr{"value": graph.DenseInts(d.Type.DType, d.Type.Shape, nv)})
				nf.Append(c)
				operands[i] = c.Result()
			}
		}
		types := make([]graph.Type, len(op.Results))
		for i, r := range op.Results {
			types[i] = r.Type
			if hit {
				types[i] = subType(r.Type)
			}
		}
		nop := graph.NewOp(op.Name, operands, types, op.Attrs)
		nf.Append(nop)
		for i, r := range op.Results {
			vmap[r] = nop.Results[i]
			// Still on the window's path while the window's dims are in the type (the attention
			// output [Hkv, g*q, D] has left it).
			if hit && !types[i].Equal(r.Type) {
				windowed[nop.Results[i]] = true
			}
		}
	}
	for _, r := range f.Results {
		nf.AddResult(r.Name, vmap[r.Value])
	}
	nm := &graph.Module{Resources: m.Resources}
	for _, g := range m.Funcs {
		if g == f {
			g = nf
		}
		nm.Funcs = append(nm.Funcs, g)
	}
	return nm, nil
}

// hostWindows holds a decode graph and its prefill companion specialized to each window size a
// session has used; forks share it (the modules are immutable once built).
type hostWindows struct {
	dec, pre *graph.Module
	ctx      int64
	mu       sync.Mutex
	mods     map[hostWindowKey]*graph.Module
}

type hostWindowKey struct {
	prefill bool
	w       int
}

// newHostWindows returns the windows of dec (and pre), or nil when a window is not smaller than
// ctx or the specialization does not apply to either graph.
func newHostWindows(dec, pre *graph.Module, ctx int) (*hostWindows, error) {
	if hostWindow(1, ctx) >= ctx {
		return nil, nil
	}
	h := &hostWindows{dec: dec, pre: pre, ctx: int64(ctx), mods: map[hostWindowKey]*graph.Module{}}
	for _, prefill := range []bool{false, true} {
		if prefill && pre == nil {
			continue
		}
		m, err := h.module(prefill, hostWindow(1, ctx))
		if err != nil || m == nil {
			return nil, err
		}
	}
	return h, nil
}

// module returns the graph (the decode graph, or the companion when prefill) for w slots.
func (h *hostWindows) module(prefill bool, w int) (*graph.Module, error) {
	if int64(w) == h.ctx {
		if prefill {
			return h.pre, nil
		}
		return h.dec, nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	k := hostWindowKey{prefill, w}
	if m, ok := h.mods[k]; ok {
		return m, nil
	}
	src := h.dec
	if prefill {
		src = h.pre
	}
	m, err := windowModule(src, h.ctx, int64(w))
	if err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("session: the host-cache graph cannot run with a %d-slot window", w)
	}
	h.mods[k] = m
	return m, nil
}

// hostInterp returns the interpreter for the decode graph (or the companion) at the session's
// window.
func (s *Session) hostInterp(prefill bool) (*Interpreter, error) {
	if s.win == s.ctx {
		if prefill {
			return s.preIt, nil
		}
		return s.decIt, nil
	}
	slot := &s.decWin
	if prefill {
		slot = &s.preWin
	}
	if *slot == nil {
		m, err := s.windows.module(prefill, s.win)
		if err != nil {
			return nil, err
		}
		if *slot, err = NewNumerics(m, "main", s.numerics); err != nil {
			return nil, err
		}
	}
	return *slot, nil
}

// growHost widens the K/V caches to w slots (the filled slots keep their positions, the new ones
// are empty) and drops the interpreters of the old window.
func (s *Session) growHost(w int) {
	for _, p := range []**Array{&s.pastK, &s.pastV} {
		old := *p
		shape := slices.Clone(old.Shape)
		shape[3] = int64(w)
		n := NewArray(old.DType, shape...)
		inner, oldW := old.Shape[4], old.Shape[3]
		outer := old.Shape[0] * old.Shape[1] * old.Shape[2]
		for o := int64(0); o < outer; o++ {
			copy(n.F[o*int64(w)*inner:], old.F[o*oldW*inner:(o+1)*oldW*inner])
		}
		*p = n
	}
	s.win = w
	s.decWin, s.preWin = nil, nil
}

// NewSessionAllSlots is NewSession feeding the host-cache graphs all ctx cache slots at every
// call, as the contract is written, instead of a window: the baseline the windowed session is
// measured against (export's BenchmarkHostWindow). Its results are the same bit for bit.
func NewSessionAllSlots(dec, pre *graph.Module) (*Session, error) {
	s, err := NewSession(dec, pre)
	if err != nil || s.windows == nil {
		return s, err
	}
	s.windows, s.decWin, s.preWin = nil, nil, nil
	s.growHost(s.ctx)
	return s, nil
}
