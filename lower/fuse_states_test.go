package lower

import (
	"testing"

	"qconv/graph"
	"qconv/hf"
)

// Every lowered contract writes each fixed-shape state once, from one concat of the layers' new
// slices; reads stay narrow per-layer slices; the KV pair (dynamic) keeps one slice_update per
// full-attention layer.
func TestLoweredFixedStatesWrittenOnce(t *testing.T) {
	for _, fx := range []string{"tinyqwen35-code", "random/tiny_untied_8L"} {
		ck := openFixture(t, fx)
		cfg := ck.Config
		Ll, Lf := int64(cfg.NumLayersOf(hf.LinearAttention)), cfg.NumLayersOf(hf.FullAttention)
		m, err := Lower(cfg, Options{Contract: graph.Pipelined, Compute: graph.F16, StateDType: graph.F16, NormDType: graph.F16, Weights: DenseWeights{ck, graph.F16}})
		if err != nil {
			t.Fatal(err)
		}
		if err := graph.Verify(m, graph.VerifyOptions{Device: graph.ANE}); err != nil {
			t.Fatalf("%s: %v", fx, err)
		}
		f := m.Func("main")
		for _, name := range []string{graph.StateConv, graph.StateRec} {
			h := f.Arg(name).Value
			var read *graph.Value
			writes := 0
			for _, op := range f.Body {
				if op.Name == graph.OpReadHandle && op.Operands[0] == h {
					read = op.Results[0]
				}
				if op.Name == graph.OpWriteHandle && op.Operands[0] == h {
					writes++
					w := op.Operands[1].Def
					if w == nil || w.Name != graph.OpConcat || int64(len(w.Operands)-1) != Ll {
						t.Errorf("%s: %s is written from %v, want one concat of %d layer slices", fx, name, w, Ll)
					}
				}
			}
			if writes != 1 {
				t.Errorf("%s: %s written %d times", fx, name, writes)
			}
			slices := 0
			for _, op := range f.Body {
				for j, v := range op.Operands {
					if v != read {
						continue
					}
					if op.Name != graph.OpSlice || j != 0 || op.Results[0].Type.Shape[0] != 1 {
						t.Errorf("%s: %s's read value feeds %s (operand %d), want only narrow per-layer slices", fx, name, op.Name, j)
					}
					slices++
				}
			}
			if int64(slices) != Ll {
				t.Errorf("%s: %s read by %d slices, want %d", fx, name, slices, Ll)
			}
		}
		kv := 0
		for _, op := range f.Body {
			if op.Name == graph.OpSliceUpdate {
				kv++
			}
		}
		if kv != 2*Lf {
			t.Errorf("%s: %d slice_updates, want %d (K and V per full-attention layer)", fx, kv, 2*Lf)
		}
	}
}
