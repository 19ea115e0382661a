package kernels

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

// Benchmarks report GB/s of weight bytes against a streaming-read baseline
// (summing the uint64s of as many bytes with 256-bit loads, split over
// GOMAXPROCS goroutines like MatVec) measured in the same loop. Run with -cpu 1,2; the 248320x1024 shape
// needs about 1.1 GB and is skipped with -short.

var (
	benchOnce sync.Once
	benchBuf  []byte // weights: every byte in 0x30..0x3f, finite in every encoding
	benchAux  []byte // scales and tables, same byte range
)

func benchBytes() ([]byte, []byte) {
	benchOnce.Do(func() {
		benchBuf = make([]byte, 4*248320*1024)
		benchAux = make([]byte, 2*248320*1024/32)
		s := uint64(0x9e3779b97f4a7c15)
		for _, b := range [][]byte{benchBuf, benchAux} {
			for i := 0; i+8 <= len(b); i += 8 {
				s ^= s << 13
				s ^= s >> 7
				s ^= s << 17
				binary.LittleEndian.PutUint64(b[i:], s&0x0f0f0f0f0f0f0f0f|0x3030303030303030)
			}
		}
	})
	return benchBuf, benchAux
}

// readSum is the streaming-read baseline: the fastest plain full read of b
// we have (256-bit loads in assembly, else a Go loop over uint64s).
func readSum(b []byte) uint64 {
	if useAsm && len(b) >= 128 {
		n := len(b) &^ 127
		return readSumAVX(unsafe.Pointer(&b[0]), n) + sumUint64s(b[n:])
	}
	return sumUint64s(b)
}

func sumUint64s(b []byte) uint64 {
	var s0, s1, s2, s3 uint64
	for len(b) >= 32 {
		s0 += binary.LittleEndian.Uint64(b)
		s1 += binary.LittleEndian.Uint64(b[8:])
		s2 += binary.LittleEndian.Uint64(b[16:])
		s3 += binary.LittleEndian.Uint64(b[24:])
		b = b[32:]
	}
	for ; len(b) >= 8; b = b[8:] {
		s0 += binary.LittleEndian.Uint64(b)
	}
	for _, c := range b {
		s0 += uint64(c)
	}
	return s0 + s1 + s2 + s3
}

// parallelRead sums b in chunks shared out to GOMAXPROCS goroutines, as
// MatVec shares out rows.
func parallelRead(b []byte) uint64 {
	workers := runtime.GOMAXPROCS(0)
	chunk := (len(b)/(workers*chunksPerWorker) + 63) &^ 63
	var next atomic.Int64
	var total atomic.Uint64
	work := func() {
		for {
			i := int(next.Add(int64(chunk))) - chunk
			if i >= len(b) {
				return
			}
			total.Add(readSum(b[i:min(i+chunk, len(b))]))
		}
	}
	var wg sync.WaitGroup
	for range workers - 1 {
		wg.Go(work)
	}
	work()
	wg.Wait()
	return total.Load()
}

type benchMatrix struct {
	kind  string
	m     Matrix
	bytes int // weight bytes read per product
}

func benchMatrices(rows, cols int) []benchMatrix {
	buf, aux := benchBytes()
	n := rows * cols
	q8 := must(NewQ8Matrix(buf[:n], aux[:2*n/32], rows, cols, 1, 32))
	q4 := must(NewQ4Matrix(buf[:n/2], aux[:2*n/32], rows, cols, 1, 32))
	lutBytes := 2 * (rows / 32) << 8
	lut8 := must(NewLUTMatrix(buf[:n], aux[:lutBytes], 8, rows, cols, 32))
	lut4 := must(NewLUTMatrix(buf[:n/2], aux[:lutBytes>>4], 4, rows, cols, 32))
	return []benchMatrix{
		{"bf16", must(NewBF16Matrix(buf[:2*n], rows, cols)), 2 * n},
		{"f16", must(NewF16Matrix(buf[:2*n], rows, cols)), 2 * n},
		{"f32", must(NewF32Matrix(buf[:4*n], rows, cols)), 4 * n},
		{"q8b32", q8, n + 2*n/32},
		{"q4b32", q4, n/2 + 2*n/32},
		{"lut8", lut8, n + lutBytes},
		{"lut4", lut4, n/2 + lutBytes>>4},
	}
}

var benchShapes = [][2]int{{1024, 3584}, {248320, 1024}}

var sink uint64

// benchPair alternates a baseline and a kernel in one loop, so both run under
// the same machine load, and reports the median time of each: the kernel's
// GB/s over bytes, the baseline's, and the ratio baseline time / kernel time.
func benchPair(b *testing.B, bytes int, unit string, base, kernel func()) {
	var tb, tk []time.Duration
	for b.Loop() {
		t0 := time.Now()
		base()
		t1 := time.Now()
		kernel()
		t2 := time.Now()
		tb = append(tb, t1.Sub(t0))
		tk = append(tk, t2.Sub(t1))
	}
	mb, mk := median(tb).Seconds(), median(tk).Seconds()
	if bytes > 0 {
		b.ReportMetric(float64(bytes)/mk/1e9, "GB/s")
		b.ReportMetric(float64(bytes)/mb/1e9, "base-GB/s")
	}
	b.ReportMetric(mb/mk, unit)
}

func median(d []time.Duration) time.Duration {
	slices.Sort(d)
	return d[len(d)/2]
}

// BenchmarkMatVec: one-vector MatVec against the streaming read of as many
// bytes. Metrics: GB/s of weight bytes, base-GB/s of the read, and
// x-read = read time / MatVec time (1 = MatVec runs at read speed).
func BenchmarkMatVec(b *testing.B) {
	for _, shape := range benchShapes {
		rows, cols := shape[0], shape[1]
		b.Run(fmt.Sprintf("%dx%d", rows, cols), func(b *testing.B) {
			if testing.Short() && rows*cols > 1<<24 {
				b.Skip("big matrix skipped in -short mode")
			}
			x := make([]float32, cols)
			for i := range x {
				x[i] = float32(i%17) / 17
			}
			dst := make([]float32, rows)
			buf, _ := benchBytes()
			for _, bm := range benchMatrices(rows, cols) {
				b.Run(bm.kind, func(b *testing.B) {
					benchPair(b, bm.bytes, "x-read",
						func() { sink += parallelRead(buf[:bm.bytes]) },
						func() { MatVec(bm.m, dst, x, 1) })
				})
				if rows*cols <= 1<<24 && useAsm {
					// The plain-Go kernels, for scale (the path off amd64).
					b.Run(bm.kind+"/go", func(b *testing.B) {
						useAsm = false
						defer func() { useAsm = true }()
						benchPair(b, bm.bytes, "x-read",
							func() { sink += parallelRead(buf[:bm.bytes]) },
							func() { MatVec(bm.m, dst, x, 1) })
					})
				}
			}
		})
	}
}

// BenchmarkMulti: one 16-vector product against 16 one-vector products over
// the same weights. Metric x-16n1 = time of 16 products / time of one n=16.
func BenchmarkMulti(b *testing.B) {
	const n = 16
	for _, shape := range benchShapes {
		rows, cols := shape[0], shape[1]
		b.Run(fmt.Sprintf("%dx%d", rows, cols), func(b *testing.B) {
			if testing.Short() && rows*cols > 1<<24 {
				b.Skip("big matrix skipped in -short mode")
			}
			x := make([]float32, n*cols)
			for i := range x {
				x[i] = float32(i%19) / 19
			}
			dst := make([]float32, n*rows)
			for _, bm := range benchMatrices(rows, cols) {
				if bm.kind != "bf16" && bm.kind != "q8b32" && bm.kind != "lut8" {
					continue
				}
				b.Run(bm.kind, func(b *testing.B) {
					benchPair(b, 0, "x-16n1",
						func() {
							for v := range n {
								MatVec(bm.m, dst[v*rows:(v+1)*rows], x[v*cols:(v+1)*cols], 1)
							}
						},
						func() { MatVec(bm.m, dst, x, n) })
				})
			}
		})
	}
}

// BenchmarkVector times the vector kernels on 4096 elements (in L1) with the
// assembly and the Go implementation.
func BenchmarkVector(b *testing.B) {
	const n = 4096
	a, y := make([]float32, n), make([]float32, n)
	h := make([]byte, 2*n)
	for i := range a {
		a[i] = float32(i%13) / 13
		y[i] = float32(i%7) / 7
		h[2*i], h[2*i+1] = byte(i), 0x3c
	}
	ops := []struct {
		name string
		f    func()
	}{
		{"dot", func() { sink += uint64(Dot(a, y)) }},
		{"axpy", func() { Axpy(y, 1e-9, a) }},
		{"bf16tof32", func() { BF16ToF32(a, h) }},
		{"f16tof32", func() { F16ToF32(a, h) }},
		{"f32tof16", func() { F32ToF16(h, a) }},
		{"roundf16", func() { RoundF16(y) }},
	}
	saved := useAsm
	defer func() { useAsm = saved }()
	for _, op := range ops {
		for _, impl := range []struct {
			name string
			asm  bool
		}{{"asm", saved}, {"go", false}} {
			b.Run(op.name+"/"+impl.name, func(b *testing.B) {
				useAsm = impl.asm
				start := time.Now()
				for b.Loop() {
					op.f()
				}
				b.ReportMetric(float64(n)*float64(b.N)/time.Since(start).Seconds()/1e9, "Gelem/s")
			})
		}
	}
}
