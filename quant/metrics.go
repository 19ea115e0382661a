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

// Row sums are accumulated in 8 interleaved float64 lanes (element i of a
// row in lane i%8, in order), folded per row as (s0+s2)+(s1+s3) with
// s_j = l_j + l_{j+4}: the order the AVX2 kernels use, so both paths give the
// same bits. Products are rounded to float64 before adding (no FMA), and rows
// add into fixed chunks in order, so the metrics do not depend on the build or
// the number of workers.
type lanes8 struct {
	ww, ee, dd, wd [8]float64
	me             float64
}

func (l *lanes8) add(j int, w, d float32) {
	fw, fd := float64(w), float64(d)
	e := fw - fd
	l.ww[j] += float64(fw * fw)
	l.ee[j] += float64(e * e)
	l.dd[j] += float64(fd * fd)
	l.wd[j] += float64(fw * fd)
	if a := math.Abs(e); a > l.me {
		l.me = a
	}
}

func fold8(l *[8]float64) float64 {
	return ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]))
}

func (l *lanes8) fold(out *[5]float64) {
	*out = [5]float64{fold8(&l.ww), fold8(&l.ee), fold8(&l.dd), fold8(&l.wd), l.me}
}

// rowSumsLinear computes a row's sums (ww, ee, dd, wd, max|e|) for q with one
// scale per block.
func rowSumsLinear(w []float32, q []int8, scales []uint16, block int, out *[5]float64) {
	if block == 32 && useAsm && len(w) > 0 {
		metrics32F32AVX2(&w[0], &q[0], &scales[0], len(w)/32, out)
		return
	}
	var l lanes8
	q = q[:len(w)]
	for b, j := 0, 0; b < len(w); b, j = b+block, j+1 {
		s := F16ToFloat32(scales[j])
		for i := b; i < b+block; i++ {
			l.add(i&7, w[i], float32(q[i])*s)
		}
	}
	l.fold(out)
}

// rowSumsLinearBF16 is rowSumsLinear for a bf16 row.
func rowSumsLinearBF16(w []byte, q []int8, scales []uint16, block int, out *[5]float64) {
	if block == 32 && useAsm && len(w) > 0 {
		metrics32BF16AVX2(&w[0], &q[0], &scales[0], len(w)/64, out)
		return
	}
	var l lanes8
	n := len(w) / 2
	q = q[:n]
	for b, j := 0, 0; b < n; b, j = b+block, j+1 {
		s := F16ToFloat32(scales[j])
		for i := b; i < b+block; i++ {
			v := math.Float32frombits(uint32(w[2*i])<<16 | uint32(w[2*i+1])<<24)
			l.add(i&7, v, float32(q[i])*s)
		}
	}
	l.fold(out)
}

// addLinear accumulates a row quantized with one scale per block.
func (p *partial) addLinear(w []float32, q []int8, scales []uint16, block int) {
	var s [5]float64
	rowSumsLinear(w, q, scales, block, &s)
	p.addRow(len(w), &s)
}

// addLinearBF16 is addLinear for a bf16 row.
func (p *partial) addLinearBF16(w []byte, q []int8, scales []uint16, block int) {
	var s [5]float64
	rowSumsLinearBF16(w, q, scales, block, &s)
	p.addRow(len(w)/2, &s)
}

// addLUT accumulates weights palettized to lut entries idx.
func (p *partial) addLUT(w []float32, idx []uint8, lut []float32) {
	var l lanes8
	idx = idx[:len(w)]
	for i, v := range w {
		l.add(i&7, v, lut[idx[i]])
	}
	var s [5]float64
	l.fold(&s)
	p.addRow(len(w), &s)
}

func (p *partial) addRow(n int, s *[5]float64) {
	p.n += int64(n)
	p.ww += s[0]
	p.ee += s[1]
	p.dd += s[2]
	p.wd += s[3]
	p.me = max(p.me, s[4])
}
