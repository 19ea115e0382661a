package hf

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseConfig: any bytes give a config or an error, never a panic, and an accepted config
// is internally consistent.
func FuzzParseConfig(f *testing.F) {
	for _, d := range []string{"tinyqwen35-code", "random/tiny_tied_4L", "random/tiny_untied_8L-multimodal"} {
		b, err := os.ReadFile(filepath.Join(fixtures, d, "config.json"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"model_type":"qwen3_5","text_config":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data)
		if err != nil {
			return
		}
		if len(cfg.LayerTypes) != cfg.NumLayers || cfg.RotaryDim()%2 != 0 || cfg.NumHeads%cfg.NumKVHeads != 0 {
			t.Fatalf("inconsistent config accepted: %+v", cfg)
		}
		_ = cfg.ExpectedTensors()
	})
}

// FuzzShardHeader: any file contents give tensors that lie inside the file, or an error.
func FuzzShardHeader(f *testing.F) {
	// Small seeds: a two-tensor file and a mixed-dtype one. (A multi-kilobyte real header as a
	// seed made the coverage-guided minimiser crawl.)
	f.Add(miniSafetensors(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[2,2],"data_offsets":[8,16]}}`, 16))
	f.Add(miniSafetensors(`{"__metadata__":{"format":"pt"},"x.weight":{"dtype":"F16","shape":[3,1],"data_offsets":[0,6]}}`, 6))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 8 {
			return
		}
		s := &shard{path: "fuzz.safetensors", size: int64(len(data)), data: data}
		if err := s.index(); err != nil {
			return
		}
		for _, tt := range s.tensors {
			if len(tt.data) != tt.NumElements()*tt.DType.Size() {
				t.Fatalf("tensor %s: %d bytes for shape %v", tt.StoredName, len(tt.data), tt.Shape)
			}
			if tt.NumElements() > 0 {
				row := make([]float32, tt.Cols())
				if err := tt.Row(0, row); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}

func miniSafetensors(header string, dataLen int) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	for i := 0; i < dataLen; i++ {
		b = append(b, byte(i*37))
	}
	return b
}
