package quant

import "math"

// Metrics compare a tensor's original weights w with their dequantized values d.
type Metrics struct {
	N         int64
	SNR       float64 // dB: 10*log10(sum w^2 / sum (w-d)^2); +Inf when d == w
	MaxAbsErr float64 // max |w-d|
	Cosine    float64 // sum w*d / sqrt(sum w^2 * sum d^2); 1 when both are all zero
	MSE       float64 // sum (w-d)^2 / N
}

// partial holds float64 sums over a fixed range of weights; partials combine in
// a fixed order so metrics do not depend on the number of workers.
type partial struct {
	n                  int64
	ww, ee, dd, wd, me float64
}

func (p *partial) merge(o *partial) {
	p.n += o.n
	p.ww += o.ww
	p.ee += o.ee
	p.dd += o.dd
	p.wd += o.wd
	p.me = max(p.me, o.me)
}

func (p *partial) metrics() Metrics {
	m := Metrics{N: p.n, MaxAbsErr: p.me}
	if p.n > 0 {
		m.MSE = p.ee / float64(p.n)
	}
	switch {
	case p.ee == 0:
		m.SNR = math.Inf(1)
	default:
		m.SNR = 10 * math.Log10(p.ww/p.ee)
	}
	switch {
	case p.ww == 0 && p.dd == 0:
		m.Cosine = 1
	case p.ww == 0 || p.dd == 0:
		m.Cosine = 0
	default:
		m.Cosine = p.wd / math.Sqrt(p.ww*p.dd)
	}
	return m
}

// addValue accumulates one weight w and its dequantized value d.
func (p *partial) addValue(w, d float32) {
	fw, fd := float64(w), float64(d)
	e := fw - fd
	p.ww += fw * fw
	p.ee += e * e
	p.dd += fd * fd
	p.wd += fw * fd
	p.me = max(p.me, math.Abs(e))
}

// addLinear accumulates a row quantized with one scale per block.
func (p *partial) addLinear(w []float32, q []int8, scales []uint16, block int) {
	p.n += int64(len(w))
	for b := 0; b < len(w); b += block {
		s := F16ToFloat32(scales[b/block])
		qb := q[b : b+block]
		for i, v := range w[b : b+block] {
			p.addValue(v, float32(qb[i])*s)
		}
	}
}

// addLinearBF16 is addLinear for a bf16 row.
func (p *partial) addLinearBF16(w []byte, q []int8, scales []uint16, block int) {
	n := len(w) / 2
	p.n += int64(n)
	for b := 0; b < n; b += block {
		s := F16ToFloat32(scales[b/block])
		qb := q[b : b+block]
		wb := w[2*b : 2*(b+block)]
		for i := range qb {
			v := math.Float32frombits(uint32(wb[2*i])<<16 | uint32(wb[2*i+1])<<24)
			p.addValue(v, float32(qb[i])*s)
		}
	}
}

// addLUT accumulates weights palettized to lut entries idx.
func (p *partial) addLUT(w []float32, idx []uint8, lut []float32) {
	p.n += int64(len(w))
	for i, v := range w {
		p.addValue(v, lut[idx[i]])
	}
}
