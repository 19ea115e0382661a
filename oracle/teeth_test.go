package oracle

import (
	"encoding/binary"
	"math"
	"slices"
	"strings"
	"testing"

	"qconv/hf"
	"qconv/internal/golden"
	"qconv/internal/kernels"
)

// The conventions test: each case rewrites the built model's parameters so that this package's
// (correct) code computes exactly what an implementation with one convention flipped would,
// and the golden comparison must then fail by a wide margin. This proves TestGoldens can tell
// every convention of docs/model-math.md that the fixtures exercise from its plausible mistake.
func TestFlippedConventionsFailGoldens(t *testing.T) {
	fixtures, err := golden.Fixtures()
	if err != nil {
		t.Fatal(err)
	}
	fx := fixtures[0] // tinyqwen35-code: 4 key → 8 value heads, so head grouping is visible
	if fx.Name != "tinyqwen35-code" {
		t.Fatalf("fixture order changed: %s", fx.Name)
	}
	prompt, _ := fx.Golden.Prompt("h0")
	cases := []struct {
		name string
		flip func(m *Model)
	}{
		{"correct", func(*Model) {}},
		{"x·w instead of x·(1+w)", flipZeroCentredNorms},
		{"(1+w) in the gated norm", flipGatedNorm},
		{"reversed conv taps", flipConvTaps},
		{"q/gate as global halves of q_proj", flipQGateHalves},
		{"interleaved-pair RoPE", flipRoPEPairs},
		{"value head j reads key head j%nk", flipHeadGrouping},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, m := openModel(t, fx.Dir, Options{})
			c.flip(m)
			d := goldenLogitDiff(t, m, prompt)
			t.Logf("%s: max |Δlogit| vs transformers %.3g", c.name, d)
			if c.name == "correct" {
				if !(d <= tol) {
					t.Errorf("unflipped model differs by %g", d)
				}
			} else if !(d > 1) {
				t.Errorf("flipped convention still within %g of the goldens: the golden test has no teeth here", d)
			}
		})
	}
}

// goldenLogitDiff is the worst |Δ| over prefill and the 17 next-logit rows of one prompt.
func goldenLogitDiff(t *testing.T, m *Model, p *golden.Prompt) float64 {
	r := runPrompt(t, m, p)
	pl, _ := p.Tensor("prefill_logits")
	nl, _ := p.Tensor("next_logits")
	d := golden.MaxAbsDiff(r.prefill, pl.Data)
	for s := range 17 {
		d = math.Max(d, golden.MaxAbsDiff(r.next[s], nl.Row(s)))
	}
	return d
}

func flipZeroCentredNorms(m *Model) {
	minusOne := func(w []float32) {
		for i := range w {
			w[i]--
		}
	}
	minusOne(m.norm)
	for i := range m.layers {
		l := &m.layers[i]
		minusOne(l.inNorm)
		minusOne(l.postNorm)
		minusOne(l.qNorm)
		minusOne(l.kNorm)
	}
}

func flipGatedNorm(m *Model) {
	for i := range m.layers {
		for j := range m.layers[i].gnorm {
			m.layers[i].gnorm[j]++
		}
	}
}

func flipConvTaps(m *Model) {
	for i := range m.layers {
		w := m.layers[i].conv
		for c := 0; c < len(w); c += m.kern {
			slices.Reverse(w[c : c+m.kern])
		}
	}
}

// flipQGateHalves: reading q_proj as [all queries | all gates] is the correct reading of a
// matrix whose rows were interleaved per head from those halves.
func flipQGateHalves(m *Model) {
	H, D := m.nH, m.hd
	for i := range m.layers {
		l := &m.layers[i]
		if l.q == nil {
			continue
		}
		l.q = permuteRows(l.q, func(r int) int {
			n, d := r/(2*D), r%(2*D)
			if d < D {
				return n*D + d // query row of head n
			}
			return H*D + n*D + d - D // its gate row
		})
	}
}

// flipRoPEPairs: rotating pairs (2i, 2i+1) is NeoX rotation of (i, i+r/2) after permuting the
// rotary dims of every query and key head (and their norm weights) the same way; q·k is
// unchanged by a common permutation.
func flipRoPEPairs(m *Model) {
	D, half := m.hd, m.rot/2
	perm := func(d int) int { // new dim d reads old dim perm(d)
		switch {
		case d < half:
			return 2 * d
		case d < m.rot:
			return 2*(d-half) + 1
		}
		return d
	}
	for i := range m.layers {
		l := &m.layers[i]
		if l.q == nil {
			continue
		}
		l.q = permuteRows(l.q, func(r int) int {
			n, d := r/(2*D), r%(2*D)
			if d >= D {
				return r // gate rows are not rotated
			}
			return n*2*D + perm(d)
		})
		l.k = permuteRows(l.k, func(r int) int { return r/D*D + perm(r%D) })
		for _, w := range [][]float32{l.qNorm, l.kNorm} {
			old := slices.Clone(w)
			for d := range w {
				w[d] = old[perm(d)]
			}
		}
	}
}

// flipHeadGrouping: with value head j reading key head j%nk, moving every value head's
// parameters to slot σ(j) = (j%nk)·r + j/nk makes the correct j/r grouping read the same key
// head.
func flipHeadGrouping(m *Model) {
	r := m.nv / m.nk
	sigma := func(j int) int { return (j%m.nk)*r + j/m.nk }
	inv := make([]int, m.nv) // slot → old head
	for j := range m.nv {
		inv[sigma(j)] = j
	}
	dv, kd := m.dv, m.keyDim
	for i := range m.layers {
		l := &m.layers[i]
		if l.qkv == nil {
			continue
		}
		vRow := func(r int) int { // value rows/channels move head-wise; q and k stay
			if r < 2*kd {
				return r
			}
			s := (r - 2*kd) / dv
			return 2*kd + inv[s]*dv + (r-2*kd)%dv
		}
		l.qkv = permuteRows(l.qkv, vRow)
		old := slices.Clone(l.conv)
		for c := range m.convDim {
			copy(l.conv[c*m.kern:(c+1)*m.kern], old[vRow(c)*m.kern:(vRow(c)+1)*m.kern])
		}
		l.z = permuteRows(l.z, func(r int) int { return inv[r/dv]*dv + r%dv })
		l.b = permuteRows(l.b, func(r int) int { return inv[r] })
		l.a = permuteRows(l.a, func(r int) int { return inv[r] })
		for _, w := range [][]float32{l.dtBias, l.negExpA} {
			o := slices.Clone(w)
			for s := range w {
				w[s] = o[inv[s]]
			}
		}
		l.out = permuteCols(l.out, func(c int) int { return inv[c/dv]*dv + c%dv })
	}
}

// permuteRows returns the matrix whose row r is row from(r) of a.
func permuteRows(a kernels.Matrix, from func(r int) int) kernels.Matrix {
	rows := make([][]float32, a.Rows())
	for r := range rows {
		rows[r] = make([]float32, a.Cols())
		a.Row(from(r), rows[r])
	}
	return f32Matrix(rows)
}

// permuteCols returns the matrix whose column c is column from(c) of a.
func permuteCols(a kernels.Matrix, from func(c int) int) kernels.Matrix {
	rows := make([][]float32, a.Rows())
	buf := make([]float32, a.Cols())
	for r := range rows {
		a.Row(r, buf)
		rows[r] = make([]float32, a.Cols())
		for c := range rows[r] {
			rows[r][c] = buf[from(c)]
		}
	}
	return f32Matrix(rows)
}

func f32Matrix(rows [][]float32) kernels.Matrix {
	cols := len(rows[0])
	data := make([]byte, 0, 4*len(rows)*cols)
	for _, row := range rows {
		for _, v := range row {
			data = binary.LittleEndian.AppendUint32(data, math.Float32bits(v))
		}
	}
	m, err := kernels.NewF32Matrix(data, len(rows), cols)
	if err != nil {
		panic(err)
	}
	return m
}

// TestWeightsOption: a substituted matrix is used (here every Linear and the untied head
// replaced by exact fp32 copies must reproduce the stored-weight logits bit for bit), and a
// wrong shape is an error naming the tensor.
func TestWeightsOption(t *testing.T) {
	fixtures, err := golden.Fixtures()
	if err != nil {
		t.Fatal(err)
	}
	fx := fixtures[0]
	_, ref := openModel(t, fx.Dir, Options{})
	var asked []string
	copyAll := Options{Weights: func(spec hf.TensorSpec, tn *hf.Tensor) (kernels.Matrix, error) {
		asked = append(asked, spec.Name)
		if spec.Kind != hf.KindLinear && spec.Kind != hf.KindHead {
			return nil, nil
		}
		stored, err := StoredMatrix(tn)
		if err != nil {
			return nil, err
		}
		return permuteRows(stored, func(r int) int { return r }), nil
	}}
	_, sub := openModel(t, fx.Dir, copyAll)
	if sub.head == sub.embed {
		t.Error("a substituted head of a tied model is still the embedding")
	}
	if !slices.Contains(asked, "lm_head.weight") || !slices.Contains(asked, "layers.3.self_attn.q_proj.weight") || !slices.Contains(asked, "embed_tokens.weight") {
		t.Errorf("Weights was asked for %d tensors, missing the head, embedding or a q_proj", len(asked))
	}
	p, _ := fx.Golden.Prompt("h0")
	a, b := runPrompt(t, ref, p), runPrompt(t, sub, p)
	if !slices.Equal(a.prefill, b.prefill) || !slices.Equal(a.next[16], b.next[16]) {
		t.Errorf("exact fp32 copies changed the logits by %g", golden.MaxAbsDiff(a.prefill, b.prefill))
	}

	// A zeroed head must change the logits to exactly zero: the substitution is really used.
	zeroHead := Options{Weights: func(spec hf.TensorSpec, tn *hf.Tensor) (kernels.Matrix, error) {
		if spec.Kind != hf.KindHead {
			return nil, nil
		}
		return kernels.NewF32Matrix(make([]byte, 4*spec.Shape[0]*spec.Shape[1]), spec.Shape[0], spec.Shape[1])
	}}
	_, z := openModel(t, fx.Dir, zeroHead)
	logits, err := z.Prefill(z.NewState(), p.IDs)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Max(logits) != 0 || slices.Min(logits) != 0 {
		t.Error("zero head gave nonzero logits")
	}

	ck, err := hf.Open(fx.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	_, err = New(ck, Options{Weights: func(spec hf.TensorSpec, tn *hf.Tensor) (kernels.Matrix, error) {
		if spec.Name == "layers.0.mlp.up_proj.weight" {
			return kernels.NewF32Matrix(make([]byte, 4*8), 2, 4)
		}
		return nil, nil
	}})
	if err == nil || !strings.Contains(err.Error(), "layers.0.mlp.up_proj.weight") {
		t.Errorf("wrong-shape substitution: err = %v", err)
	}
}
