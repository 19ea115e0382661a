package export

import (
	"encoding/binary"
	"fmt"
	"math"
	"sort"
	"sync"

	"qconv/bundle"
	"qconv/graph"
	"qconv/hf"
	"qconv/internal/exitcode"
	"qconv/lower"
	"qconv/quant"
	"qconv/recipe"
)

// storage is the decision for one tensor.
type storage struct {
	dense   graph.DType // f16/bf16/f32 when stored dense
	linear  *quant.Linear
	palette *quant.Palette
}

// weightSource serves the graph form of every tensor under a recipe: dense tensors are
// converted, quantized ones quantized on demand (when the writer streams them, or when a caller
// materializes them), and each decision is recorded for the scheme table.
type weightSource struct {
	ck     *hf.Checkpoint
	target *recipe.Target
	recipe *recipe.Recipe

	mu      sync.Mutex
	plans   map[string]*bundle.TensorPlan
	weights map[string]*graph.Weight
	sigs    map[string]string // resource key -> what its bytes are (see signature)

	// reuse, when set, returns the bytes (and the quantization metrics) another bundle of the
	// same run already wrote for a resource with this key, size and signature, so identical
	// tensors are quantized once per run (ios-gpu's two graphs and the ANE share LUT weights).
	reuse func(key, sig string, size int64) ([]byte, *quant.Metrics)
}

var _ lower.WeightSource = (*weightSource)(nil)

func newWeightSource(ck *hf.Checkpoint, t *recipe.Target, r *recipe.Recipe) *weightSource {
	return &weightSource{ck: ck, target: t, recipe: r, plans: map[string]*bundle.TensorPlan{}, weights: map[string]*graph.Weight{}, sigs: map[string]string{}}
}

// decide is the per-target storage table: which kind of tensor is stored how.
func (s *weightSource) decide(spec hf.TensorSpec) storage {
	r := s.recipe
	compute := r.Compute
	switch spec.Kind {
	case hf.KindLinear:
		if row, ok := recipe.WeightSchemeOf(r.Weights); ok {
			if lin, pal := row.Quantizer(r.BodyScheme); lin != nil || pal != nil {
				return storage{linear: lin, palette: pal}
			}
			return storage{dense: compute}
		}
	case hf.KindHead:
		if !r.IntHead() {
			return storage{dense: compute}
		}
		g, _ := recipe.ParseGranularity(r.HeadGranularity)
		bits := 8
		if r.Head == "int4" {
			bits = 4
		}
		return storage{linear: &quant.Linear{Bits: bits, Scheme: r.IntHeadScheme(), Granularity: g}}
	case hf.KindEmbedding, hf.KindConv, hf.KindGatedNorm:
		// Embeddings are gathered, the conv taps are 4 wide: both stay float (as published).
		return storage{dense: compute}
	case hf.KindNorm:
		return storage{dense: s.target.NormDType(r)}
	case hf.KindALog, hf.KindDtBias:
		return storage{dense: graph.F32}
	}
	return storage{dense: compute}
}

// Weight implements lower.WeightSource. A request for lm_head.weight from a tied checkpoint
// (an int head unties it) quantizes a copy of the embedding.
func (s *weightSource) Weight(spec hf.TensorSpec) (*graph.Weight, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w, ok := s.weights[spec.Name]; ok {
		return w, nil
	}
	src := spec.Name
	if spec.Name == "lm_head.weight" && s.ck.Config.TieWordEmbeddings {
		src = "embed_tokens.weight"
	}
	t, err := s.ck.Tensor(src)
	if err != nil {
		return nil, err
	}
	st := s.decide(spec)
	plan := &bundle.TensorPlan{Name: spec.Name, Kind: spec.Kind, Shape: spec.Shape}
	if src != spec.Name {
		plan.Note = "untied from the embedding"
	}
	var w *graph.Weight
	switch {
	case st.linear != nil:
		if why := st.linear.Check(t.Rows(), t.Cols()); why != "" {
			plan.Note = join(plan.Note, "kept "+s.recipe.Compute.String()+": "+why)
			w, err = s.dense(t, spec, s.recipe.Compute, plan)
		} else {
			w, err = s.linear(t, spec, *st.linear, plan)
		}
	case st.palette != nil:
		pal := *st.palette
		if why := pal.Check(t.Rows(), t.Cols()); why != "" && pal.GroupRows > 0 {
			// Too few rows for groups of 32 (in_proj_a/b have nv rows): one LUT for the tensor.
			pal.GroupRows = 0
			plan.Note = join(plan.Note, "one LUT for the whole tensor: "+why)
		}
		if why := pal.Check(t.Rows(), t.Cols()); why != "" {
			plan.Note = join(plan.Note, "kept "+s.recipe.Compute.String()+": "+why)
			w, err = s.dense(t, spec, s.recipe.Compute, plan)
		} else {
			w, err = s.palette(t, spec, pal, plan)
		}
	default:
		w, err = s.dense(t, spec, st.dense, plan)
	}
	if err != nil {
		return nil, err
	}
	w.Name = spec.Name
	s.plans[spec.Name] = plan
	s.weights[spec.Name] = w
	sig := planSignature(plan, s.recipe.Compute)
	for _, r := range []*graph.Resource{w.Data, w.Scale, w.LUT} {
		if r == nil {
			continue
		}
		s.sigs[r.Key] = sig
		fill, key, size := r.Fill, r.Key, r.Size
		r.Fill = func(dst []byte) error {
			if s.reuse != nil {
				if b, m := s.reuse(key, sig, size); b != nil {
					copy(dst, b)
					if m != nil {
						s.mu.Lock()
						mm := *m
						plan.Metrics = &mm
						s.mu.Unlock()
					}
					return nil
				}
			}
			return fill(dst)
		}
	}
	return w, nil
}

// signature identifies what a tensor's stored bytes are: the same signature, key and size mean
// the same bytes (source tensor, format, granularity, scheme, float dtype).
func planSignature(p *bundle.TensorPlan, compute graph.DType) string {
	return fmt.Sprintf("%s|%s|%s|%d|%s|%s|%s", p.Name, p.Format, p.Granularity, p.BlockSize, p.Scheme, compute, p.Note)
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

func (s *weightSource) dense(t *hf.Tensor, spec hf.TensorSpec, dt graph.DType, plan *bundle.TensorPlan) (*graph.Weight, error) {
	w, err := lower.DenseWeight(t, dt)
	if err != nil {
		return nil, err
	}
	w.Data.Key = graph.SanitizeKey(spec.Name)
	plan.Format = dt.String()
	plan.Bytes = w.Data.Size
	return w, nil
}

// rowSource adapts a checkpoint tensor for the quantizers; bf16 tensors expose their raw rows so
// the int8 kernel reads bf16 directly.
func rowSource(t *hf.Tensor) quant.RowSource {
	if t.DType == hf.BF16 {
		return &quant.BF16Matrix{R: t.Rows(), C: t.Cols(), Data: t.Bytes()}
	}
	return t
}

// lazyQuant computes a tensor's quantization once, when the first of its resources is filled,
// and drops it once every resource has copied its part, so streaming a model holds one tensor's
// quantized bytes at a time.
type lazyQuant struct {
	mu      sync.Mutex
	run     func() ([][]byte, error)
	parts   [][]byte
	pending int
}

func (l *lazyQuant) fill(part int, dst []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.parts == nil {
		parts, err := l.run()
		if err != nil {
			return err
		}
		l.parts, l.pending = parts, len(parts)
	}
	if len(dst) != len(l.parts[part]) {
		return fmt.Errorf("part %d: %d bytes, want %d", part, len(l.parts[part]), len(dst))
	}
	copy(dst, l.parts[part])
	if l.pending--; l.pending == 0 {
		l.parts = nil
	}
	return nil
}

// weightErr names the tensor in a quantizer error; a bad weight is the input's fault.
func weightErr(t *hf.Tensor, err error) error {
	if _, ok := err.(*quant.WeightError); ok {
		return exitcode.Badf("tensor %s: %w", t.StoredName, err)
	}
	return fmt.Errorf("tensor %s: %w", t.StoredName, err)
}

func (s *weightSource) linear(t *hf.Tensor, spec hf.TensorSpec, lin quant.Linear, plan *bundle.TensorPlan) (*graph.Weight, error) {
	rows, cols := t.Rows(), t.Cols()
	compute := s.recipe.Compute
	var scaleShape []int64
	switch lin.Granularity {
	case quant.PerTensor:
		scaleShape = []int64{1, 1}
	case quant.PerChannel:
		scaleShape = []int64{int64(rows), 1}
	default:
		scaleShape = []int64{int64(rows), int64(cols / int(lin.Granularity))}
	}
	nScales := int(scaleShape[0] * scaleShape[1])
	dataBytes := int64((rows*cols*lin.Bits + 7) / 8)
	var dtype graph.DType
	dtype, plan.Format = recipe.StoredAs(lin.Bits, false)
	plan.Granularity = lin.Granularity.String()
	if lin.Granularity > 0 {
		plan.BlockSize = int(lin.Granularity)
	}
	plan.Scheme = lin.Scheme.String()
	if scaleShape[1] == 1 && lin.Granularity != quant.PerTensor && graph.OneBlockRows(int64(cols)) {
		// One scale per row of at most 32 weights: one block of block-32 (docs/naming.md).
		plan.Note = join(plan.Note, fmt.Sprintf("rows of %d: one block per row", cols))
	}
	scaleBytes := int64(nScales * compute.Bits() / 8)
	plan.Bytes = dataBytes + scaleBytes
	lq := s.lazyParts(t, plan, func() ([]byte, []byte, quant.Metrics, error) {
		qt, err := quant.QuantizeLinear(rowSource(t), lin, quant.Options{})
		if err != nil {
			return nil, nil, quant.Metrics{}, err
		}
		return qt.Data, qt.Scales, qt.Metrics, nil
	})
	key := graph.SanitizeKey(spec.Name)
	return &graph.Weight{
		Format: graph.Blockwise, Shape: []int64{int64(rows), int64(cols)},
		Data:       &graph.Resource{Key: key + ".q", Size: dataBytes, Fill: func(b []byte) error { return lq.fill(0, b) }},
		DataType:   dtype,
		Scale:      &graph.Resource{Key: key + ".scale", Size: scaleBytes, Fill: func(b []byte) error { return lq.fill(1, b) }},
		ScaleShape: scaleShape, FloatType: compute,
	}, nil
}

func (s *weightSource) palette(t *hf.Tensor, spec hf.TensorSpec, pal quant.Palette, plan *bundle.TensorPlan) (*graph.Weight, error) {
	rows, cols := t.Rows(), t.Cols()
	compute := s.recipe.Compute
	groups := pal.Groups(rows)
	entries := pal.Entries()
	idxBytes := int64((rows*cols*pal.Bits + 7) / 8)
	var dtype graph.DType
	dtype, plan.Format = recipe.StoredAs(pal.Bits, true)
	plan.Granularity = fmt.Sprintf("g%d", pal.GroupRows)
	if pal.GroupRows == 0 {
		plan.Granularity = "pertensor"
	}
	lutBytes := int64(groups * entries * compute.Bits() / 8)
	plan.Bytes = idxBytes + lutBytes
	lq := s.lazyParts(t, plan, func() ([]byte, []byte, quant.Metrics, error) {
		lt, err := quant.QuantizeLUT(rowSource(t), pal, quant.Options{})
		if err != nil {
			return nil, nil, quant.Metrics{}, err
		}
		return lt.Indices, lt.LUT, lt.Metrics, nil
	})
	key := graph.SanitizeKey(spec.Name)
	return &graph.Weight{
		Format: graph.Palette, Shape: []int64{int64(rows), int64(cols)},
		Data:     &graph.Resource{Key: key + ".idx", Size: idxBytes, Fill: func(b []byte) error { return lq.fill(0, b) }},
		DataType: dtype,
		LUT:      &graph.Resource{Key: key + ".lut", Size: lutBytes, Fill: func(b []byte) error { return lq.fill(1, b) }},
		LUTShape: []int64{int64(groups), 1, int64(entries), 1}, FloatType: compute,
	}, nil
}

// lazyParts quantizes t on first use with run, records its metrics in plan, and serves the two
// parts a decompression op reads: the data, and its fp16 scales or LUT in the compute dtype.
func (s *weightSource) lazyParts(t *hf.Tensor, plan *bundle.TensorPlan, run func() (data, f16 []byte, m quant.Metrics, err error)) *lazyQuant {
	compute := s.recipe.Compute
	return &lazyQuant{run: func() ([][]byte, error) {
		data, f16, m, err := run()
		if err != nil {
			return nil, weightErr(t, err)
		}
		s.mu.Lock()
		plan.Metrics = &m
		s.mu.Unlock()
		return [][]byte{data, scaleBytesOf(f16, compute)}, nil
	}}
}

// scaleBytesOf returns fp16 patterns as stored for an f16 graph, or widened exactly to f32 for
// the fp32 validation form (the values are the same: fp16 embeds exactly in f32), or rounded to
// bf16 for a bf16 graph (the dequantization's scale takes its result dtype, as Apple's
// blockwise_shift_scale does; docs/apple-qwen35-contract.md, section 6).
func scaleBytesOf(f16 []byte, dt graph.DType) []byte {
	switch dt {
	case graph.F16:
		return f16
	case graph.BF16:
		out := make([]byte, len(f16))
		for i := 0; i < len(f16)/2; i++ {
			binary.LittleEndian.PutUint16(out[2*i:], graph.BF16FromFloat32(quant.F16ToFloat32(binary.LittleEndian.Uint16(f16[2*i:]))))
		}
		return out
	}
	out := make([]byte, 2*len(f16))
	for i := 0; i < len(f16)/2; i++ {
		v := quant.F16ToFloat32(binary.LittleEndian.Uint16(f16[2*i:]))
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
	}
	return out
}

// Plans returns the scheme table in model order (tensors the lowering asked for).
func (s *weightSource) Plans(specs []hf.TensorSpec) []bundle.TensorPlan {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []bundle.TensorPlan
	seen := map[string]bool{}
	for _, sp := range specs {
		if p, ok := s.plans[sp.Name]; ok {
			out = append(out, *p)
			seen[sp.Name] = true
		}
	}
	var rest []string
	for n := range s.plans {
		if !seen[n] {
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	for _, n := range rest {
		out = append(out, *s.plans[n])
	}
	return out
}
