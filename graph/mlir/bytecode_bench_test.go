package mlir

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"qconv/graph"
	"qconv/internal/benchutil"
)

// qwenLikeModule is a synthetic module shaped like the int8 Qwen3.5-0.8B ship bundle (untied
// int8 head): an f16 [248320,1024] embedding, an si8 head with f16 per-block-32 scales, and 24
// layers of si8 projections with scales, norms and small f16 tensors; 388 lazily filled
// resources, about 1.22 GB. The fill copies a 1 MiB pattern, so it costs about a memcpy.
func qwenLikeModule(tb testing.TB) (*graph.Module, int64) {
	tb.Helper()
	block := make([]byte, 1<<20)
	pattern(block, 7)
	m := &graph.Module{}
	f := graph.NewFunc("main")
	b := graph.NewBuilder(m, f)
	var total int64
	var last *graph.Value
	add := func(key string, dt graph.DType, shape ...int64) {
		t := graph.Tensor(dt, shape...)
		seed := len(m.Resources)
		r := &graph.Resource{Key: key, Size: int64(graph.BytesFor(dt, int(t.NumElements())))}
		r.Fill = func(dst []byte) error {
			for off := 0; off < len(dst); off += len(block) {
				copy(dst[off:], block[(seed*4099)%len(block):])
			}
			return nil
		}
		if _, err := m.AddResource(r); err != nil {
			tb.Fatal(err)
		}
		total += r.Size
		last = b.Resource(t, r)
	}
	linear := func(name string, out, in int64) {
		add(name+".weight", graph.SI8, out, in)
		add(name+".scale", graph.F16, out, in/32)
	}
	const hidden, inter, vocab = 1024, 3584, 248320
	add("model.embed_tokens.weight", graph.F16, vocab, hidden)
	for l := 0; l < 24; l++ {
		p := fmt.Sprintf("model.layers.%d.", l)
		linear(p+"attn.in_proj_qkv", 4096, hidden)
		linear(p+"attn.out_proj", hidden, 2048)
		linear(p+"mlp.gate_proj", inter, hidden)
		linear(p+"mlp.up_proj", inter, hidden)
		linear(p+"mlp.down_proj", hidden, inter)
		add(p+"input_layernorm.weight", graph.F16, hidden)
		add(p+"post_attention_layernorm.weight", graph.F16, hidden)
		add(p+"attn.conv1d.weight", graph.F16, 6144, 1, 4)
		add(p+"attn.A_log", graph.F32, 16)
		add(p+"attn.dt_bias", graph.F16, 16)
		add(p+"attn.norm.weight", graph.F16, 128)
	}
	add("model.norm.weight", graph.F16, hidden)
	linear("lm_head", vocab, hidden)
	f.AddResult("last", last)
	m.Funcs = []*graph.Func{f}
	if b.Err() != nil {
		tb.Fatal(b.Err())
	}
	return m, total
}

// BenchmarkBigModel writes and reads the synthetic 1.2 GB module through a file in /tmp.
// Baselines in the same run: fill-only runs the lazy fills alone (for write-discard, the
// writer's CPU cost); raw-write writes the same number of bytes from one prefilled buffer of the largest blob's size
// (the disk/page-cache limit); touch sums the mapped file (the cost of reading blob bytes at all).
// Run alone for a meaningful peak RSS, e.g.
//
//	go test -run X -bench 'BigModel/write$' -benchtime 1x ./graph
func BenchmarkBigModel(b *testing.B) {
	m, total := qwenLikeModule(b)
	dir, err := os.MkdirTemp("/tmp", "qconv-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "main.mlirb")
	write := func(b *testing.B) {
		out, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		if err := WriteBytecode(out, m, "qconv bench"); err != nil {
			b.Fatal(err)
		}
		if err := out.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("write", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(total)
		for i := 0; i < b.N; i++ {
			write(b)
		}
		b.ReportMetric(benchutil.MaxRSSMiB(), "peakRSS-MiB")
		b.ReportMetric(float64(len(m.Resources)), "resources")
	})
	b.Run("write-discard", func(b *testing.B) {
		b.SetBytes(total)
		for i := 0; i < b.N; i++ {
			if err := WriteBytecode(discard{}, m, "qconv bench"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fill-only", func(b *testing.B) { // baseline for write-discard: the lazy fills alone
		b.SetBytes(total)
		for i := 0; i < b.N; i++ {
			buf, release := fillBuffer(maxLazySize(m)) // as the writer gets it per call
			for _, r := range m.Resources {
				r.Fill(buf[:r.Size])
			}
			release()
		}
	})
	b.Run("raw-write", func(b *testing.B) {
		b.SetBytes(total)
		buf := make([]byte, maxLazySize(m)) // a source as large as the biggest blob: not cache-hot
		pattern(buf, 1)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			out, err := os.Create(path + ".raw")
			if err != nil {
				b.Fatal(err)
			}
			w := bufio.NewWriterSize(out, 1<<20)
			for n := total; n > 0; n -= int64(len(buf)) {
				w.Write(buf[:min(n, int64(len(buf)))])
			}
			w.Flush()
			out.Close()
		}
		os.Remove(path + ".raw")
	})
	if _, err := os.Stat(path); err != nil {
		write(b)
	}
	mapFile := func(b *testing.B) ([]byte, func()) {
		fd, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		st, _ := fd.Stat()
		data, err := syscall.Mmap(int(fd.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
		fd.Close()
		if err != nil {
			b.Fatal(err)
		}
		return data, func() { syscall.Munmap(data) }
	}
	b.Run("read", func(b *testing.B) {
		data, unmap := mapFile(b)
		defer unmap()
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for i := 0; i < b.N; i++ {
			got, err := ReadBytecode(data)
			if err != nil || len(got.Resources) != len(m.Resources) {
				b.Fatal(err)
			}
		}
	})
	var sink byte
	sum := func(p []byte) {
		var s [8]byte
		for i := 0; i+8 <= len(p); i += 64 { // one load per cache line pages everything in
			s[i&7] ^= p[i]
		}
		sink ^= s[0]
	}
	b.Run("read+touch", func(b *testing.B) {
		data, unmap := mapFile(b)
		defer unmap()
		b.SetBytes(int64(len(data)))
		for i := 0; i < b.N; i++ {
			got, err := ReadBytecode(data)
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range got.Resources {
				sum(r.Data)
			}
		}
	})
	b.Run("touch", func(b *testing.B) {
		data, unmap := mapFile(b)
		defer unmap()
		b.SetBytes(int64(len(data)))
		for i := 0; i < b.N; i++ {
			sum(data)
		}
	})
	_ = sink
}

// The metadata-only cost of the writer and reader, without disk: the testModule graph.
func BenchmarkBytecodeSmall(b *testing.B) {
	m := testModule(b)
	for _, r := range m.Resources {
		if err := r.Materialize(); err != nil {
			b.Fatal(err)
		}
	}
	data := writeBytecode(b, m)
	b.Run("write", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for i := 0; i < b.N; i++ {
			if err := WriteBytecode(discard{}, m, "bench"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("read", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for i := 0; i < b.N; i++ {
			if _, err := ReadBytecode(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
