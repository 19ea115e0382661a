package oracle

import "math"

// Scalar and row helpers. Transcendentals run in float64 and round once to float32; sums of
// squares and softmax denominators accumulate in float64 (see the package comment).

func exp32(x float32) float32 { return float32(math.Exp(float64(x))) }

func sigmoid(x float32) float32 { return float32(1 / (1 + math.Exp(-float64(x)))) }

func silu(x float32) float32 { return x * sigmoid(x) }

// softplus is torch's softplus with beta 1 and threshold 20: x itself above the threshold.
func softplus(x float32) float32 {
	if x > 20 {
		return x
	}
	return float32(math.Log1p(math.Exp(float64(x))))
}

// rmsNorm sets dst = (x / sqrt(mean(x²) + eps)) ⊙ scale, where scale is a zero-centred norm's
// (1+w). dst may alias x.
func rmsNorm(dst, x, scale []float32, eps float64) {
	r := invRMS(x, eps)
	for i, v := range x {
		dst[i] = v * r * scale[i]
	}
}

func invRMS(x []float32, eps float64) float32 {
	var ss float64
	for _, v := range x {
		ss += float64(v) * float64(v)
	}
	return float32(1 / math.Sqrt(ss/float64(len(x))+eps))
}

// gatedRMSNorm is Qwen3_5RMSNormGated on one value head, in place: the norm first, then the
// weight as is (no 1+), then the SiLU gate.
func gatedRMSNorm(x, z, w []float32, eps float64) {
	r := invRMS(x, eps)
	for i, v := range x {
		x[i] = w[i] * (v * r) * silu(z[i])
	}
}

// l2Norm scales x in place to unit length: x · rsqrt(Σx² + 1e-6). The eps is fixed by
// transformers' l2norm, independent of rms_norm_eps.
func l2Norm(x []float32) {
	var ss float64
	for _, v := range x {
		ss += float64(v) * float64(v)
	}
	r := float32(1 / math.Sqrt(ss+1e-6))
	for i := range x {
		x[i] *= r
	}
}

// softmax replaces x by its softmax.
func softmax(x []float32) {
	mx := x[0]
	for _, v := range x[1:] {
		mx = max(mx, v)
	}
	var sum float64
	for _, v := range x {
		sum += math.Exp(float64(v - mx))
	}
	inv := 1 / sum
	for i, v := range x {
		x[i] = float32(math.Exp(float64(v-mx)) * inv) // one rounding per weight
	}
}

func addTo(dst, x []float32) {
	x = x[:len(dst)]
	for i := range dst {
		dst[i] += x[i]
	}
}
