package interp

import (
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"qconv/graph"
	"qconv/internal/kernels"
)

// The interpreter's overhead on a linear-layer-heavy step with the real Qwen3.5-0.8B matrix
// sizes: one DeltaNet-sized block (in_proj_qkv [6144,1024], z [2048,1024], out_proj
// [1024,2048], MLP gate/up [3584,1024], down [1024,3584], all int8 block-32 with fp16 scales)
// and optionally the fp16 [248320,1024] head. Each iteration times one interpreter step and the
// same matrices' raw kernels.MatVec calls, and reports both and their ratio. Run with
// -cpu 1,2; the head needs about 0.5 GB and is skipped with -short.

type benchLinear struct {
	name       string
	rows, cols int
	f16        bool // dense fp16 (the head), else int8 block-32
}

var benchLayers = []benchLinear{
	{"qkv", 6144, 1024, false},
	{"z", 2048, 1024, false},
	{"out", 1024, 2048, false},
	{"gate", 3584, 1024, false},
	{"up", 3584, 1024, false},
	{"down", 1024, 3584, false},
	{"head", 248320, 1024, true},
}

type benchWeight struct {
	data, scales []byte
	m            kernels.Matrix
}

var (
	benchWeightsOnce sync.Once
	benchWeightsMap  map[string]*benchWeight
)

// benchWeights generates the weights once: int8 data, fp16 scales in [2^-9, 2^-8), fp16 head
// values in ±[2^-4, 2^-3).
func benchWeights(withHead bool) map[string]*benchWeight {
	benchWeightsOnce.Do(func() { benchWeightsMap = map[string]*benchWeight{} })
	s := uint64(0x9e3779b97f4a7c15)
	next := func() uint64 {
		s ^= s << 13
		s ^= s >> 7
		s ^= s << 17
		return s
	}
	for _, l := range benchLayers {
		if benchWeightsMap[l.name] != nil || l.f16 && !withHead {
			continue
		}
		w := &benchWeight{}
		if l.f16 {
			w.data = make([]byte, 2*l.rows*l.cols)
			for i := 0; i < len(w.data); i += 8 {
				binary.LittleEndian.PutUint64(w.data[i:], next()&0x83ff83ff83ff83ff|0x2c002c002c002c00)
			}
			w.m, _ = kernels.NewF16Matrix(w.data, l.rows, l.cols)
		} else {
			w.data = make([]byte, l.rows*l.cols)
			for i := 0; i < len(w.data); i += 8 {
				binary.LittleEndian.PutUint64(w.data[i:], next())
			}
			w.scales = make([]byte, 2*l.rows*l.cols/32)
			for i := 0; i < len(w.scales); i += 8 {
				binary.LittleEndian.PutUint64(w.scales[i:], next()&0x03ff03ff03ff03ff|0x1800180018001800)
			}
			w.m, _ = kernels.NewQ8Matrix(w.data, w.scales, l.rows, l.cols, 1, 32)
		}
		benchWeightsMap[l.name] = w
	}
	return benchWeightsMap
}

// benchBlockGraph is x -> (qkv, z -> out) + x -> MLP -> [head]: every matrix in fp16 compute.
func benchBlockGraph(ws map[string]*benchWeight, withHead bool) *graph.Module {
	m, f, b := interpModule()
	linear := func(x *graph.Value, name string) *graph.Value {
		var l benchLinear
		for _, c := range benchLayers {
			if c.name == name {
				l = c
			}
		}
		w := ws[name]
		R, C := int64(l.rows), int64(l.cols)
		var wv *graph.Value
		if l.f16 {
			r, _ := m.AddResource(&graph.Resource{Key: name, Size: int64(len(w.data)), Data: w.data})
			wv = b.Resource(graph.Tensor(graph.F16, R, C), r)
		} else {
			rd, _ := m.AddResource(&graph.Resource{Key: name + ".q", Size: int64(len(w.data)), Data: w.data})
			rs, _ := m.AddResource(&graph.Resource{Key: name + ".s", Size: int64(len(w.scales)), Data: w.scales})
			data := b.Resource(graph.Tensor(graph.SI8, R, C), rd)
			scale := b.Resource(graph.Tensor(graph.F16, R, C/32), rs)
			wv = b.Op(graph.OpBlockwise, data, scale, b.SplatInt(graph.SI8, 0, R, C/32), b.Splat(graph.F16, 0, R, C/32))
		}
		return b.Matmul(x, b.Transpose(wv, 1, 0))
	}
	x := f.AddArg("x", graph.Tensor(graph.F16, 1, 1, 1024))
	qkv := linear(x, "qkv")
	o := linear(linear(x, "z"), "out")
	h := b.Add(o, x)
	mlp := linear(b.Mul(b.Op(graph.OpSilu, linear(h, "gate")), linear(h, "up")), "down")
	h = b.Add(h, mlp)
	f.AddResult("qkv", b.ReduceSum(qkv, 2))
	if withHead {
		f.AddResult("logits", linear(h, "head"))
	} else {
		f.AddResult("h", h)
	}
	if b.Err() != nil {
		panic(b.Err())
	}
	return m
}

func BenchmarkInterpOverhead(b *testing.B) {
	for _, withHead := range []bool{false, true} {
		name := "block"
		if withHead {
			name = "block+head"
		}
		b.Run(name, func(b *testing.B) {
			if withHead && testing.Short() {
				b.Skip("the head needs 0.5 GB")
			}
			ws := benchWeights(withHead)
			it, err := New(benchBlockGraph(ws, withHead), "main")
			if err != nil {
				b.Fatal(err)
			}
			x := NewArray(graph.F16, 1, 1, 1024)
			for i := range x.F {
				x.F[i] = float32(i%7-3) / 64
			}
			inputs := map[string]*Array{"x": x}
			// raw baseline buffers
			var mats []kernels.Matrix
			for _, l := range benchLayers {
				if l.f16 && !withHead {
					continue
				}
				mats = append(mats, ws[l.name].m)
			}
			xin := make([]float32, 248320)
			out := make([]float32, 248320)
			for i := range xin {
				xin[i] = float32(i%7-3) / 64
			}
			if _, err := it.Run(inputs, nil); err != nil {
				b.Fatal(err)
			}
			var tInterp, tRaw time.Duration
			b.ResetTimer()
			for b.Loop() {
				t0 := time.Now()
				if _, err := it.Run(inputs, nil); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				for _, m := range mats {
					kernels.MatVec(m, out[:m.Rows()], xin[:m.Cols()], 1)
				}
				t2 := time.Now()
				tInterp += t1.Sub(t0)
				tRaw += t2.Sub(t1)
			}
			b.ReportMetric(float64(tInterp.Nanoseconds())/float64(b.N)/1e6, "interp-ms/step")
			b.ReportMetric(float64(tRaw.Nanoseconds())/float64(b.N)/1e6, "matvec-ms/step")
			b.ReportMetric(float64(tInterp)/float64(tRaw), "interp/matvec")
		})
	}
}
