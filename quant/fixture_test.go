package quant

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"sort"
	"strings"
	"testing"
)

const fixturePath = "../testdata/tinyqwen35-code/model.safetensors"

type fixtureTensor struct {
	name       string
	rows, cols int
	bf16       []byte
}

// fixtureLinears reads the bf16 Linear weights of the trained fixture with a
// minimal safetensors parser (8-byte little-endian header length, JSON header,
// data): every 2-D ".weight" except the embedding (the checkpoint reader is a
// separate package and not used here).
func fixtureLinears(t *testing.T) []fixtureTensor {
	t.Helper()
	raw, err := os.ReadFile(fixturePath)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(raw)
	var header map[string]json.RawMessage
	if err := json.Unmarshal(raw[8:8+n], &header); err != nil {
		t.Fatal(err)
	}
	data := raw[8+n:]
	var out []fixtureTensor
	for name, msg := range header {
		if name == "__metadata__" {
			continue
		}
		var info struct {
			Dtype   string `json:"dtype"`
			Shape   []int  `json:"shape"`
			Offsets [2]int `json:"data_offsets"`
		}
		if err := json.Unmarshal(msg, &info); err != nil {
			t.Fatal(err)
		}
		if len(info.Shape) != 2 || !strings.HasSuffix(name, ".weight") || strings.Contains(name, "embed_tokens") {
			continue
		}
		if info.Dtype != "BF16" {
			t.Fatalf("%s: dtype %s", name, info.Dtype)
		}
		b := data[info.Offsets[0]:info.Offsets[1]]
		if len(b) != 2*info.Shape[0]*info.Shape[1] {
			t.Fatalf("%s: %d bytes for %v", name, len(b), info.Shape)
		}
		out = append(out, fixtureTensor{name, info.Shape[0], info.Shape[1], b})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	// 8 layers: 6 gated-delta (5 Linears + 3 MLP) and 2 attention (4 + 3).
	if len(out) != 6*8+2*7 {
		t.Fatalf("%d Linear weights in the fixture", len(out))
	}
	return out
}

func (ft fixtureTensor) float32s() []float32 {
	w := make([]float32, ft.rows*ft.cols)
	bf16ToF32(w, ft.bf16)
	return w
}

// TestFixtureGoldenRule checks that int8 and int4 block-32 absmax reproduce the
// goldens' rule on every Linear weight of the trained fixture: dequantized
// values equal, bit for bit, a plain float32 implementation of the rule, through
// the bf16 and float32 entry points, with and without the assembly kernels.
func TestFixtureGoldenRule(t *testing.T) {
	withAsm(t, func(t *testing.T) {
		blocks := 0
		for _, ft := range fixtureLinears(t) {
			w := ft.float32s()
			for _, bits := range []int{8, 4} {
				qmax := 127
				if bits == 4 {
					qmax = 7
				}
				// The rule, plainly, block by block.
				want := make([]float32, len(w))
				for b := 0; b < len(w); b += 32 {
					h, q := refBlock(w[b:b+32], qmax)
					s := F16ToFloat32(h)
					for i, v := range q {
						want[b+i] = float32(v) * s
					}
				}
				spec := Linear{Bits: bits, Scheme: Absmax, Granularity: Block32}
				for _, src := range []RowSource{&BF16Matrix{R: ft.rows, C: ft.cols, Data: ft.bf16}, &Float32Matrix{R: ft.rows, C: ft.cols, Data: w}} {
					lt, err := QuantizeLinear(src, spec, Options{Workers: 2})
					if err != nil {
						t.Fatalf("%s: %v", ft.name, err)
					}
					row := make([]float32, ft.cols)
					for r := range ft.rows {
						lt.DequantizeRow(r, row)
						for c, v := range row {
							if math.Float32bits(v) != math.Float32bits(want[r*ft.cols+c]) {
								t.Fatalf("%s int%d %T (%d,%d): %v, rule gives %v", ft.name, bits, src, r, c, v, want[r*ft.cols+c])
							}
						}
					}
				}
				blocks += len(w) / 32
			}
		}
		t.Logf("%d blocks reproduced", blocks)
	})
}

// TestFixtureLUTBeatsPerChannelInt8: on every Linear weight of the trained
// fixture the 8-bit k-means LUT (groups of 32 rows; one LUT per tensor where the
// row count is not a multiple of 32) has an MSE no worse than per-channel int8
// absmax.
func TestFixtureLUTBeatsPerChannelInt8(t *testing.T) {
	worst := 0.0
	for _, ft := range fixtureLinears(t) {
		src := &BF16Matrix{R: ft.rows, C: ft.cols, Data: ft.bf16}
		lin, err := QuantizeLinear(src, Linear{Bits: 8, Scheme: Absmax, Granularity: PerChannel}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		spec := Palette{Bits: 8, GroupRows: 32}
		if spec.Check(ft.rows, ft.cols) != "" {
			spec.GroupRows = 0
		}
		lut, err := QuantizeLUT(src, spec, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if lut.Skipped || lin.Skipped {
			t.Fatalf("%s skipped", ft.name)
		}
		if lut.Metrics.MSE > lin.Metrics.MSE {
			t.Errorf("%s %v: LUT MSE %g > per-channel int8 %g", ft.name, spec, lut.Metrics.MSE, lin.Metrics.MSE)
		}
		for _, f := range lut.Fits {
			if !f.Converged {
				t.Logf("%s: a group stopped at %d iterations", ft.name, f.Iterations)
			}
		}
		worst = max(worst, lut.Metrics.MSE/lin.Metrics.MSE)
	}
	t.Logf("largest LUT/int8 MSE ratio %.3f", worst)
}
