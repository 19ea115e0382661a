package interp

import (
	"testing"

	"qconv/graph"
	"qconv/internal/testfix"
	"qconv/lower"
)

// naiveHost is the host side of the host-cache contract as written, kept here as the yardstick
// of the session's windowed caches: every call gets all ctx slots of past_k/past_v and a mask over
// ctx+q columns, and the returned K/V columns are written at their positions. Whole blocks of q
// go through pre when given, the rest through dec one token at a time.
type naiveHost struct {
	dec, pre                *Interpreter
	ctx, q, pos             int
	pastK, pastV, conv, rec *Array
	cd                      graph.DType
}

func newNaiveHost(t *testing.T, dec, pre *graph.Module) *naiveHost {
	t.Helper()
	f := dec.Func("main")
	pk := f.Arg(graph.InPastK).Value.Type
	ct, rt := f.Arg(graph.InConvState).Value.Type, f.Arg(graph.InRecState).Value.Type
	h := &naiveHost{ctx: int(pk.Shape[3]), cd: pk.DType,
		pastK: NewArray(pk.DType, pk.Shape...), pastV: NewArray(pk.DType, pk.Shape...),
		conv: NewArray(ct.DType, ct.Shape...), rec: NewArray(rt.DType, rt.Shape...)}
	var err error
	if h.dec, err = New(dec, "main"); err != nil {
		t.Fatal(err)
	}
	if pre != nil {
		if h.pre, err = New(pre, "main"); err != nil {
			t.Fatal(err)
		}
		h.q = int(pre.Func("main").Arg(graph.InInputIDs).Value.Type.Shape[1])
	}
	return h
}

func (h *naiveHost) run(t *testing.T, it *Interpreter, ids []int) []float32 {
	t.Helper()
	q := len(ids)
	w := h.ctx + q
	mask := NewArray(h.cd, 1, 1, int64(q), int64(w))
	pos := NewArray(graph.SI32, 1, int64(q))
	in := NewArray(graph.SI32, 1, int64(q))
	for i := 0; i < q; i++ {
		in.I[i], pos.I[i] = int64(ids[i]), int64(h.pos+i)
		for j := 0; j < w; j++ {
			if !(j < h.pos || j >= h.ctx && j-h.ctx <= i) {
				mask.F[i*w+j] = graph.MaskedScore
			}
		}
	}
	out, err := it.Run(map[string]*Array{graph.InInputIDs: in, graph.InPositionIDs: pos, graph.InCausalMask: mask,
		graph.InPastK: h.pastK, graph.InPastV: h.pastV, graph.InConvState: h.conv, graph.InRecState: h.rec}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range [][2]*Array{{out[graph.OutKCur], h.pastK}, {out[graph.OutVCur], h.pastV}} {
		cur, past := p[0], p[1]
		L, H, D := int(past.Shape[0]*past.Shape[1]), int(past.Shape[2]), int(past.Shape[4])
		for l := 0; l < L; l++ {
			for hd := 0; hd < H; hd++ {
				for k := 0; k < q; k++ {
					copy(past.F[((l*H+hd)*h.ctx+h.pos+k)*D:][:D], cur.F[((l*H+hd)*q+k)*D:][:D])
				}
			}
		}
	}
	copy(h.conv.F, out[graph.OutConvCur].F)
	copy(h.rec.F, out[graph.OutRecCur].F)
	h.pos += q
	return append([]float32(nil), out[graph.OutLogits].F...)
}

// prefill feeds ids as Session.Prefill does and returns the logits after each call.
func (h *naiveHost) prefill(t *testing.T, ids []int) [][]float32 {
	var rows [][]float32
	i := 0
	for ; h.pre != nil && i+h.q <= len(ids); i += h.q {
		rows = append(rows, h.run(t, h.pre, ids[i:i+h.q]))
	}
	for ; i < len(ids); i++ {
		rows = append(rows, h.run(t, h.dec, ids[i:i+1]))
	}
	return rows
}

// The session runs host-cache graphs on caches only as wide as the tokens fed need (a window
// that grows 64, 128, 256, ...), and gives bit for bit the logits, K/V caches and SSM states of
// feeding all ctx slots every step, through window growths, for the device (fp16 activations)
// and fp32 forms, decode-only and with the prefill companion.
func TestHostWindowMatchesFullCache(t *testing.T) {
	ck := openFixture(t, "tinyqwen35-code")
	gf := loadGoldens(t, true)
	var ids []int
	for _, p := range gf.Models["tinyqwen35-code"].Prompts {
		ids = append(ids, p.IDs...)
		ids = append(ids, p.GenIDs...)
	}
	for len(ids) < 300 {
		ids = append(ids, ids...)
	}
	ids = ids[:300] // crosses the 64, 128 and 256 windows
	const ctx = 512
	for _, form := range []struct {
		name        string
		compute, st graph.DType
		withPrefill bool
	}{
		{"fp16 decode", graph.F16, graph.F32, false},
		{"fp16 with prefill", graph.F16, graph.F32, true},
		{"fp32 decode", graph.F32, graph.F32, false},
		{"fp32 with prefill", graph.F32, graph.F32, true},
	} {
		t.Run(form.name, func(t *testing.T) {
			wf := lower.DenseWeights{Checkpoint: ck, DType: form.compute}
			dec := lowerFor(t, ck, lower.Options{Contract: graph.HostDecode, Compute: form.compute, StateDType: form.st, Context: ctx, GreedyHead: true, Weights: wf})
			var pre *graph.Module
			if form.withPrefill {
				pre = lowerFor(t, ck, lower.Options{Contract: graph.HostPrefill, Compute: form.compute, StateDType: form.st, Context: ctx, PrefillTokens: 16, GreedyHead: true, Weights: wf})
			}
			s, err := NewSession(dec, pre)
			if err != nil {
				t.Fatal(err)
			}
			if s.windows == nil || s.win != minHostWindow {
				t.Fatalf("session runs with %d of %d slots, want the %d-slot window", s.win, ctx, minHostWindow)
			}
			naive := newNaiveHost(t, dec, pre)
			allSlots, err := NewSessionAllSlots(dec, pre) // the benchmarks' baseline
			if err != nil {
				t.Fatal(err)
			}
			if allSlots.win != ctx {
				t.Fatalf("NewSessionAllSlots runs with %d of %d slots", allSlots.win, ctx)
			}
			// The prompt (blocks through the companion when given), then one token at a time,
			// forking half way as the gate does.
			split := 150
			want := naive.prefill(t, ids[:split])
			got, err := s.Prefill(ids[:split])
			if err != nil {
				t.Fatal(err)
			}
			if i := testfix.FirstBitDiff(got, want[len(want)-1]); i >= 0 {
				t.Fatalf("prompt logits differ at %d: %v vs %v", i, got[i], want[len(want)-1][i])
			}
			if all, err := allSlots.Prefill(ids[:split]); err != nil || testfix.FirstBitDiff(all, got) >= 0 {
				t.Fatalf("NewSessionAllSlots differs from the windowed session (%v)", err)
			}
			s, err = s.Fork()
			if err != nil {
				t.Fatal(err)
			}
			for k, id := range ids[split:] {
				want := naive.run(t, naive.dec, []int{id})
				got, err := s.Step(id)
				if err != nil {
					t.Fatal(err)
				}
				if i := testfix.FirstBitDiff(got, want); i >= 0 {
					t.Fatalf("step %d (position %d, window %d): logits differ at %d: %v vs %v", k, split+k, s.win, i, got[i], want[i])
				}
			}
			if s.win != 512 || s.Pos() != len(ids) {
				t.Fatalf("after %d tokens the window is %d, want 512", s.Pos(), s.win)
			}
			conv, rec := s.SSMState()
			if testfix.FirstBitDiff(conv, naive.conv.F) >= 0 || testfix.FirstBitDiff(rec, naive.rec.F) >= 0 {
				t.Fatal("SSM states differ")
			}
			for _, p := range [][2]*Array{{s.pastK, naive.pastK}, {s.pastV, naive.pastV}} {
				if testfix.FirstBitDiff(p[0].F, p[1].F) >= 0 { // at 512 slots both are ctx wide
					t.Fatal("K/V caches differ")
				}
			}
		})
	}
}
