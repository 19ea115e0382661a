package export

import (
	"bytes"
	"fmt"
	"testing"

	"qconv/graph"
	"qconv/hf"
	"qconv/recipe"
)

// Apple's fused projections are quantized as one matrix each, per block of 32 along the input axis.
// Every row of a per-block (or per-row) scheme is quantized on its own, so the fused tensor's
// int8 data and scales must be, byte for byte, the parts' rows in Apple's order (hf/fused.go):
// query rows of every head | k_proj | v_proj | gate rows of every head, and in_proj_qkv | z | b | a.
func TestFusedQuantizationEqualsParts(t *testing.T) {
	ck, err := hf.Open("../testdata/tinyqwen35-code")
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	cfg := ck.Config
	for _, weights := range []string{"int8-block32", "int8-perchan"} {
		tgt, err := recipe.TargetByName("macos-stock")
		if err != nil {
			t.Fatal(err)
		}
		r, err := recipe.Flags{Weights: weights, AllowDelegate: weights == "int8-perchan"}.Apply(tgt)
		if err != nil {
			t.Fatal(err)
		}
		src := newWeightSource(ck, tgt, &r)
		load := func(name string) (data, scale []byte, cols int) {
			t.Helper()
			spec := hf.TensorSpec{Name: name, Kind: hf.KindLinear}
			w, err := src.Weight(spec)
			if err != nil {
				t.Fatal(err)
			}
			if w.Format != graph.Blockwise {
				t.Fatalf("%s %s: stored as %v, want blockwise int8", weights, name, w.Format)
			}
			if data, err = w.Data.Bytes(); err != nil {
				t.Fatal(err)
			}
			if scale, err = w.Scale.Bytes(); err != nil {
				t.Fatal(err)
			}
			return data, scale, int(w.Shape[1])
		}
		checked := 0
		for _, fs := range cfg.FusedTensors() {
			layer := fmt.Sprintf("layers.%d", fs.Layer)
			fd, fsc, cols := load(fs.Name)
			var wantD, wantS []byte
			rowOf := func(d, s []byte, r int) {
				wantD = append(wantD, d[r*cols:(r+1)*cols]...)
				ns := len(s) / (len(d) / cols) // scale bytes per row
				wantS = append(wantS, s[r*ns:(r+1)*ns]...)
			}
			if cfg.LayerTypes[fs.Layer] == hf.FullAttention {
				qd, qs, _ := load(layer + ".self_attn.q_proj.weight")
				H, D := cfg.NumHeads, cfg.HeadDim
				for _, half := range []int{0, 1} { // the query rows, then (after k and v) the gate rows
					if half == 1 {
						for _, p := range []string{"k_proj", "v_proj"} {
							d, s, _ := load(layer + ".self_attn." + p + ".weight")
							for r := 0; r < len(d)/cols; r++ {
								rowOf(d, s, r)
							}
						}
					}
					for h := 0; h < H; h++ {
						for r := 0; r < D; r++ {
							rowOf(qd, qs, 2*h*D+half*D+r)
						}
					}
				}
			} else {
				for _, p := range []string{"in_proj_qkv", "in_proj_z", "in_proj_b", "in_proj_a"} {
					d, s, _ := load(layer + ".linear_attn." + p + ".weight")
					for r := 0; r < len(d)/cols; r++ {
						rowOf(d, s, r)
					}
				}
			}
			if !bytes.Equal(fd, wantD) || !bytes.Equal(fsc, wantS) {
				t.Errorf("%s %s: fused bytes (%d data, %d scale) differ from its parts' (%d, %d)", weights, fs.Name, len(fd), len(fsc), len(wantD), len(wantS))
			}
			checked++
		}
		if checked != len(cfg.LayerTypes) {
			t.Fatalf("checked %d fused tensors", checked)
		}
	}
}
