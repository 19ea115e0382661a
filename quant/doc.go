// Package quant implements every weight quantization scheme qconv offers, as pure
// functions over float32 rows with exact, documented rounding, plus tensor-level
// drivers that run them in parallel over a RowSource.
//
// All weights are [out, in] matrices stored row-major; "row" means one output
// channel and "column" one input feature. Nothing here reads files: rows come
// through the RowSource interface (the checkpoint reader implements it), and the
// optional BF16RowSource lets bf16 checkpoints skip the float32 conversion.
//
// # Linear (scale) quantization
//
// A Linear spec names the integer width (int8: qmax = 127, int4: qmax = 7), the
// scheme (Absmax or Clip) and the granularity: blocks of 32, 16 or 8 consecutive
// weights along the input axis, one scale per output row (PerChannel) or one per
// tensor (PerTensor). For each set of weights w sharing a scale:
//
//	m     = max|w|                               (exact)
//	scale = fp16(c / qmax)                       c/qmax in float32, then fp16 round-half-even
//	q     = clamp(rne(w / float32(scale)), -qmax, qmax)   division in float32
//	deq   = q * scale
//
// where c = m for Absmax (the goldens' rule; nothing is clipped) and, for Clip,
// c is the candidate c_i = float32(m * (32-i)/32), i = 0..16 (so 1.0 down to
// 0.5 of m, m itself first) whose block squared error
// sum((float64(w) - float64(deq))^2), summed in index order with the fp16 scale
// actually stored, is smallest; ties go to the larger c. Since c_0 = m is the
// absmax candidate, Clip never has a larger squared error than Absmax on the same
// block. Values beyond c saturate at ±qmax.
//
// Edge cases, decided:
//   - all-zero weights: scale 0, q 0.
//   - a NaN or Inf weight: *WeightError naming its row and column.
//   - c/qmax >= 65520 (fp16 would round the scale to Inf; for int8 that is
//     max|w| above about 8.32e6): *WeightError naming the row and the column of
//     the largest weight. Nothing is saturated silently.
//   - tiny scales follow the rule as written: c/qmax in fp16's subnormal range
//     gives a subnormal scale (quotients can then exceed qmax by up to 1.5x and
//     are clamped); c/qmax <= 2^-25 rounds the scale to 0 and every q to 0, the
//     same dequantized zeros the rule yields.
//   - an input dimension that is not a multiple of the block size is not
//     quantized: QuantizeLinear returns the tensor with Skipped set and a reason
//     (Linear.Check reports the same without reading data). Nothing is padded.
//
// Layouts (what the caller writes into a bundle):
//   - int8 data: one byte per weight, two's complement, row-major [out, in].
//   - int4 data: the row-major flattened index k = row*in + col goes to byte k/2,
//     the LOW nibble holding even k and the high nibble odd k; each nibble is
//     two's complement (-8..7, only -7..7 used). An odd element count leaves the
//     high nibble of the last byte zero.
//   - scales: fp16 bit patterns, little-endian, row-major: [out, in/block] for
//     blocks, [out] per channel, [1] per tensor.
//
// # Palettization (k-means LUT)
//
// A Palette spec names the index width (8 bits: 256 entries, one byte per index;
// 4 bits: 16 entries, packed exactly like int4 but unsigned 0..15) and the rows
// sharing one LUT: groups of 32 output channels (rows [32g, 32g+32)) or the whole
// tensor. A row count that is not a multiple of the group size is reported as
// skipped, like a block mismatch. LUTs are fp16, little-endian, [groups, entries].
//
// Fitting (KMeans.Palettize for one group of weights) is an exact 1-D Lloyd
// iteration on the histogram of distinct values:
//   - histogram: if every value is a bf16 value (low 16 bits of the float32
//     pattern zero) counts go into a 65536-entry table indexed by the bf16
//     pattern; else if every value is exactly an fp16 value, by the fp16 pattern;
//     else (fp32 checkpoints) the distinct values are found by sorting (a
//     per-tensor LUT then holds a float32 copy of the tensor). -0 and +0 are
//     one value. Each iteration costs O(k log D) on exact prefix sums, not O(n).
//   - initialisation: with D distinct values and k entries, D <= k uses the
//     distinct values themselves. Otherwise Ward agglomeration: start from one
//     cluster per distinct value and repeatedly merge the adjacent pair whose
//     merge adds the least squared error, n_a*n_b/(n_a+n_b)*(mean_a-mean_b)^2
//     in float64 (ties to the leftmost pair), until k clusters remain; their
//     exact means are the k (strictly increasing) starting centroids. On the
//     fixture's bf16 weights (groups of 32 rows, 256 entries) Lloyd from Ward
//     ends within 10% of the optimal clustering's MSE (found by dynamic
//     programming), whereas from weighted quantiles it stops at fixed points
//     8-45x the optimum and from a uniform grid 2-6x: discrete data leaves
//     Lloyd little room to move.
//   - assignment: boundaries b_i = (c_i + c_{i+1})/2 in float64; a value v goes to
//     the first cluster i with v <= b_i (ties to the lower centroid).
//   - update: the new centroid is fl(fl(S)/N) where S is the exact sum of the
//     cluster's values (a 320-bit fixed-point accumulator, so no summation order
//     matters) and N its count; an empty cluster keeps its centroid.
//   - convergence: stop at a fixed point (an assignment identical to the previous
//     one), or after MaxLloydIterations updates.
//   - output: each centroid rounds (from float64, round-half-even) to fp16; each
//     weight gets the nearest LUT entry, ties to the lower index. Entries beyond D
//     repeat the largest value and are never referenced. A centroid that rounds
//     to an fp16 infinity is a *WeightError.
//
// # Drivers, metrics and determinism
//
// QuantizeLinear (or QuantizeLinearInto, which reuses output buffers) and
// QuantizeLUT read a RowSource on Options.Workers goroutines (GOMAXPROCS by
// default), each with its own row buffers: nothing is allocated per row. They
// report, per tensor, the SNR in dB, the max absolute error, the cosine
// similarity and the MSE between original and dequantized weights (float64
// sums in a fixed lane order, see lanes8). Work is split into fixed chunks of
// rows (groups, for LUTs) whose partial results are combined in chunk order,
// and the error reported is the one of the lowest failing row, so data, scales,
// LUTs, metrics and errors are identical for any number of workers. Per-tensor
// Clip sums each candidate's squared error per row in index order, rows in
// chunk order, chunks in order.
//
// # Speed
//
// On amd64 with AVX2 and F16C the block-32 absmax path (int8 and int4, fp32 and
// bf16 input) and the block-32 metric sums run in assembly; VDIVPS, VCVTPS2PH
// and VROUNDPS (mode 0) compute exactly the float32 division and the
// round-half-even steps of the rule, and the metric kernels add in the Go
// loop's lane order, so their output is bit-identical to the pure-Go path, which
// every other case (and every other architecture) uses. The pure-Go path rounds
// with the 1.5*2^23 trick (exact round-half-even for |x| < 2^22).
package quant
