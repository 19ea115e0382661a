package quant_test

import (
	"slices"
	"testing"

	"qconv/hf"
	"qconv/internal/benchutil"
	"qconv/quant"
)

// BenchmarkQuantizeCheckpoint quantizes every weight an int8 block-32 export quantizes, on a
// synthetic checkpoint with the real Qwen3.5-0.8B dimensions, the way export calls the quantizer
// (raw bf16 rows, fresh outputs, error metrics on):
//
//	go run ./testdata/synth -o /tmp/qwen35-synth
//	QCONV_SYNTH=/tmp/qwen35-synth go test ./quant -run '^$' -bench QuantizeCheckpoint -cpu 1,2
//
// Each iteration alternates the quantization with one streaming pass over the same mapped bytes
// (the read baseline), so both see the same machine load; frac-of-read is read time over quantize
// time (1 would mean quantization runs at the speed of merely reading its input). body is every
// Linear weight (the default recipe); body+head adds the tied embedding quantized as the head
// (--head-sym); body+head/reuse quantizes into one reused output, which isolates the cost of
// touching fresh output memory per tensor (about 0.3 GB/s on a first touch in the CI VMs).
func BenchmarkQuantizeCheckpoint(b *testing.B) {
	dir := benchutil.SynthDir(b)
	ck, err := hf.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer ck.Close()
	var body []*hf.Tensor
	for _, s := range ck.Specs {
		if s.Kind != hf.KindLinear {
			continue
		}
		t, err := ck.Tensor(s.Name)
		if err != nil {
			b.Fatal(err)
		}
		body = append(body, t)
	}
	spec := quant.Linear{Bits: 8, Scheme: quant.Absmax, Granularity: quant.Block32}
	withHead := append(slices.Clone(body), ck.Head())
	for _, set := range []struct {
		name    string
		tensors []*hf.Tensor
		reuse   bool // QuantizeLinearInto one reused output: no fresh memory per tensor
	}{
		{"body", body, false},
		{"body+head", withHead, false},
		{"body+head/reuse", withHead, true},
	} {
		b.Run(set.name, func(b *testing.B) {
			var total int64
			bufs := make([][]byte, len(set.tensors))
			for i, t := range set.tensors {
				if t.DType != hf.BF16 {
					b.Fatalf("%s: dtype %s, the benchmark expects the synthetic checkpoint's bf16", t.StoredName, t.DType)
				}
				bufs[i] = t.Bytes()
				total += int64(len(bufs[i]))
			}
			b.SetBytes(total)
			var out quant.LinearTensor
			var clocks benchutil.TwoClocks
			for b.Loop() {
				clocks.Pair(func() {
					for _, t := range set.tensors {
						src := &quant.BF16Matrix{R: t.Rows(), C: t.Cols(), Data: t.Bytes()}
						qt := &out
						if set.reuse {
							err = quant.QuantizeLinearInto(qt, src, spec, quant.Options{})
						} else {
							qt, err = quant.QuantizeLinear(src, spec, quant.Options{})
						}
						if err != nil {
							b.Fatalf("%s: %v", t.StoredName, err)
						}
						if qt.Skipped {
							b.Fatalf("%s: skipped: %s", t.StoredName, qt.SkipReason)
						}
					}
				}, func() { benchutil.StreamRead(bufs) })
			}
			n := clocks.N()
			b.ReportMetric(float64(total)*n/clocks.Work.Seconds()/1e9, "quant-GB/s")
			b.ReportMetric(float64(total)*n/clocks.Base.Seconds()/1e9, "read-GB/s")
			b.ReportMetric(clocks.Work.Seconds()/n, "quant-s/op")
			b.ReportMetric(float64(clocks.Base)/float64(clocks.Work), "frac-of-read")
			b.ReportMetric(clocks.MedianBaseOverWork(), "median-frac")
			b.ReportMetric(float64(total)/1e9, "input-GB")
			benchutil.LogMemory(b)
		})
	}
}
