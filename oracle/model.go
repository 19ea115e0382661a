// Package oracle is qconv's fp32 reference model of the Qwen3.5 text decoder: the independent
// check every lowered graph is gated against. It follows docs/model-math.md (the
// transformers 5.17 math) convention by convention, shares no code with package graph, and
// runs every weight product through the shared kernels with the weights left in their stored
// encoding (bf16 rows are widened inside the kernel; nothing holds an fp32 copy of a matrix).
//
// Arithmetic is float32 throughout, as transformers runs an fp32 model, with two deliberate
// exceptions that only remove rounding noise: sums of squares (RMSNorm, gated RMSNorm, l2norm)
// and softmax denominators accumulate in float64, and transcendental functions (exp, log1p,
// cos, sin, sqrt) are evaluated in float64 and rounded once to float32.
//
// The gated-delta layers always run the recurrent form token by token; transformers runs the
// chunked form for prefill, which is the same function up to rounding (the goldens in testdata
// agree with this package to about 1e-4, see oracle_test.go).
package oracle

import (
	"fmt"
	"math"

	"qconv/hf"
	"qconv/internal/kernels"
)

// Options adjust how a Model is built.
type Options struct {
	// Weights, when set, is asked for every matrix the model multiplies by or gathers from:
	// every decoder Linear weight (spec.Kind hf.KindLinear), the embedding (hf.KindEmbedding)
	// and the head (hf.KindHead). For a tied checkpoint the head is offered as the spec
	// "lm_head.weight" backed by the embedding tensor; returning a matrix for it unties the
	// head, returning nil keeps it tied to the (possibly substituted) embedding. Returning nil
	// keeps the stored weights; a returned matrix must have the spec's [out, in] shape.
	// Quantization tests use it to run the model on dequantized weights.
	Weights func(spec hf.TensorSpec, t *hf.Tensor) (kernels.Matrix, error)
}

// Model is the reference decoder of one checkpoint. It holds no per-sequence state (that lives
// in State), so one Model may serve several States, though not concurrently on one State.
type Model struct {
	cfg    *hf.Config
	embed  kernels.Matrix // [V, h], rows gathered
	head   kernels.Matrix // [V, h]
	norm   []float32      // final norm as (1+w)
	layers []layer

	// Derived dimensions, named as in docs/model-math.md.
	h, vocab, inter      int
	nH, nKV, hd, rot     int // full attention: query heads, KV heads, head_dim, rotary dim
	nk, nv, dk, dv, kern int // gated delta: key heads, value heads, key/value head dims, conv width
	keyDim, convDim      int
	invFreq              []float32 // [rot/2]: θ^(-2j/rot)
	eps                  float64   // rms_norm_eps

	shared *trajMemo // reference trajectories kept for later gates (ShareTrajectories); nil: none
}

// layer is one decoder layer; the fields of the other mixer kind are nil.
type layer struct {
	typ      hf.LayerType
	inNorm   []float32 // input_layernorm as (1+w)
	postNorm []float32 // post_attention_layernorm as (1+w)

	// Gated DeltaNet.
	qkv, z, b, a, out kernels.Matrix
	conv              []float32 // [conv_dim, K], tap K-1 on the current token
	dtBias            []float32 // [nv]
	negExpA           []float32 // [nv]: -exp(A_log), fp32 as transformers computes it
	gnorm             []float32 // [dv]: gated-norm weight, applied as is

	// Gated full attention.
	q, k, v, o   kernels.Matrix
	qNorm, kNorm []float32 // [D] as (1+w)

	gate, up, down kernels.Matrix
}

// Config is the checkpoint's normalised configuration.
func (m *Model) Config() *hf.Config { return m.cfg }

// VocabSize is the number of logits per position.
func (m *Model) VocabSize() int { return m.vocab }

// New builds the reference model of an opened checkpoint. The model reads the checkpoint's
// mapped bytes: ck must stay open while the model is used.
func New(ck *hf.Checkpoint, opt Options) (*Model, error) {
	cfg := ck.Config
	m := &Model{
		cfg: cfg, h: cfg.HiddenSize, vocab: cfg.VocabSize, inter: cfg.IntermediateSize,
		nH: cfg.NumHeads, nKV: cfg.NumKVHeads, hd: cfg.HeadDim, rot: cfg.RotaryDim(),
		nk: cfg.LinearNumKeyHeads, nv: cfg.LinearNumValueHeads, dk: cfg.LinearKeyHeadDim, dv: cfg.LinearValueHeadDim,
		kern: cfg.ConvKernel, keyDim: cfg.KeyDim(), convDim: cfg.ConvDim(), eps: cfg.RMSNormEps,
	}
	if m.nKV <= 0 || m.nH%m.nKV != 0 || m.nk <= 0 || m.nv%m.nk != 0 || m.rot <= 0 || m.rot%2 != 0 || m.rot > m.hd {
		return nil, fmt.Errorf("%s: config: unsupported head layout (heads %d/%d, delta heads %d/%d, rotary %d of %d)", ck.Dir, m.nH, m.nKV, m.nk, m.nv, m.rot, m.hd)
	}
	specs := map[string]hf.TensorSpec{}
	for _, s := range ck.Specs {
		specs[s.Name] = s
	}
	b := builder{ck: ck, opt: opt, specs: specs}

	m.embed = b.matrix("embed_tokens.weight")
	m.norm = b.normPlusOne("norm.weight")
	if cfg.TieWordEmbeddings {
		emb, _ := ck.Tensor("embed_tokens.weight")
		m.head = b.substitute(hf.TensorSpec{Name: "lm_head.weight", Shape: []int{m.vocab, m.h}, Kind: hf.KindHead, Layer: -1}, emb)
		if m.head == nil {
			m.head = m.embed
		}
	} else {
		m.head = b.matrix("lm_head.weight")
	}
	for i, typ := range cfg.LayerTypes {
		p := fmt.Sprintf("layers.%d.", i)
		l := layer{typ: typ, inNorm: b.normPlusOne(p + "input_layernorm.weight"), postNorm: b.normPlusOne(p + "post_attention_layernorm.weight")}
		switch typ {
		case hf.LinearAttention:
			l.qkv = b.matrix(p + "linear_attn.in_proj_qkv.weight")
			l.z = b.matrix(p + "linear_attn.in_proj_z.weight")
			l.b = b.matrix(p + "linear_attn.in_proj_b.weight")
			l.a = b.matrix(p + "linear_attn.in_proj_a.weight")
			l.out = b.matrix(p + "linear_attn.out_proj.weight")
			l.conv = b.vector(p + "linear_attn.conv1d.weight")
			l.dtBias = b.vector(p + "linear_attn.dt_bias")
			l.gnorm = b.vector(p + "linear_attn.norm.weight")
			aLog := b.vector(p + "linear_attn.A_log")
			l.negExpA = make([]float32, len(aLog))
			for j, v := range aLog {
				l.negExpA[j] = -exp32(v)
			}
		case hf.FullAttention:
			l.q = b.matrix(p + "self_attn.q_proj.weight")
			l.k = b.matrix(p + "self_attn.k_proj.weight")
			l.v = b.matrix(p + "self_attn.v_proj.weight")
			l.o = b.matrix(p + "self_attn.o_proj.weight")
			l.qNorm = b.normPlusOne(p + "self_attn.q_norm.weight")
			l.kNorm = b.normPlusOne(p + "self_attn.k_norm.weight")
		default:
			return nil, fmt.Errorf("%s: layer %d: unsupported layer type %q", ck.Dir, i, typ)
		}
		l.gate = b.matrix(p + "mlp.gate_proj.weight")
		l.up = b.matrix(p + "mlp.up_proj.weight")
		l.down = b.matrix(p + "mlp.down_proj.weight")
		m.layers = append(m.layers, l)
	}
	if b.err != nil {
		return nil, b.err
	}

	// inv_freq_j = 1 / θ^(2j/r), with the exponent and the power rounded to fp32 as transformers
	// computes them.
	m.invFreq = make([]float32, m.rot/2)
	for j := range m.invFreq {
		e := float32(2*j) / float32(m.rot)
		m.invFreq[j] = float32(1 / float64(float32(math.Pow(cfg.RopeTheta, float64(e)))))
	}
	return m, nil
}

// builder collects the model's tensors, remembering the first error.
type builder struct {
	ck    *hf.Checkpoint
	opt   Options
	specs map[string]hf.TensorSpec
	err   error
}

func (b *builder) tensor(name string) (*hf.Tensor, hf.TensorSpec, bool) {
	if b.err != nil {
		return nil, hf.TensorSpec{}, false
	}
	t, err := b.ck.Tensor(name)
	if err != nil {
		b.err = err
		return nil, hf.TensorSpec{}, false
	}
	spec, ok := b.specs[name]
	if !ok {
		b.err = fmt.Errorf("%s: tensor %s is not among the config's tensors", b.ck.Dir, t.StoredName)
		return nil, hf.TensorSpec{}, false
	}
	// A NaN/Inf weight is bad input (exit 2 naming tensor, row and column), found here before
	// the reference runs rather than as a NaN logit.
	if err := t.CheckFinite(); err != nil {
		b.err = err
		return nil, hf.TensorSpec{}, false
	}
	return t, spec, true
}

// substitute asks Options.Weights for a replacement of t; nil means keep the stored weights.
func (b *builder) substitute(spec hf.TensorSpec, t *hf.Tensor) kernels.Matrix {
	if b.err != nil || b.opt.Weights == nil {
		return nil
	}
	mat, err := b.opt.Weights(spec, t)
	if err != nil {
		b.err = fmt.Errorf("weights for %s: %w", spec.Name, err)
		return nil
	}
	if mat == nil {
		return nil
	}
	if len(spec.Shape) != 2 || mat.Rows() != spec.Shape[0] || mat.Cols() != spec.Shape[1] {
		b.err = fmt.Errorf("weights for %s: substituted matrix is [%d, %d], want %v", spec.Name, mat.Rows(), mat.Cols(), spec.Shape)
		return nil
	}
	return mat
}

func (b *builder) matrix(name string) kernels.Matrix {
	t, spec, ok := b.tensor(name)
	if !ok {
		return nil
	}
	if mat := b.substitute(spec, t); mat != nil || b.err != nil {
		return mat
	}
	mat, err := StoredMatrix(t)
	if err != nil {
		b.err = err
	}
	return mat
}

func (b *builder) vector(name string) []float32 {
	t, _, ok := b.tensor(name)
	if !ok {
		return nil
	}
	return t.Values()
}

// normPlusOne reads a zero-centred RMSNorm weight as the factor (1+w) it is applied as, rounded
// to fp32 as transformers' `1.0 + weight.float()` is.
func (b *builder) normPlusOne(name string) []float32 {
	w := b.vector(name)
	for i := range w {
		w[i] = 1 + w[i]
	}
	return w
}

// StoredMatrix wraps a stored 2-D tensor ([out, in]) as a kernels.Matrix over its mapped bytes.
func StoredMatrix(t *hf.Tensor) (kernels.Matrix, error) {
	if len(t.Shape) != 2 {
		return nil, fmt.Errorf("tensor %s: shape %v is not a matrix", t.StoredName, t.Shape)
	}
	rows, cols := t.Shape[0], t.Shape[1]
	var (
		mat kernels.Matrix
		err error
	)
	switch t.DType {
	case hf.BF16:
		mat, err = kernels.NewBF16Matrix(t.Bytes(), rows, cols)
	case hf.F16:
		mat, err = kernels.NewF16Matrix(t.Bytes(), rows, cols)
	case hf.F32:
		mat, err = kernels.NewF32Matrix(t.Bytes(), rows, cols)
	default:
		return nil, fmt.Errorf("tensor %s: dtype %s has no matrix kernel", t.StoredName, t.DType)
	}
	if err != nil {
		return nil, fmt.Errorf("tensor %s: %w", t.StoredName, err)
	}
	return mat, nil
}
