package export

import (
	"testing"

	"qconv/graph"
	"qconv/internal/testfix"
	"qconv/recipe"
)

// The two compression ops follow apple/coreai-torch tests/ops/test_custom_ops.py, which checks
// only their names but states their form: lut_to_dense(indices, lut, axis) with a si16 axis, and
// the two-argument blockwise_shift_scale lowered with zero offsets, i.e. (data, scale, offset1,
// offset2) with offset1 = offset2 = 0 (docs/coreai-conformance.md).
func TestConformanceCompressionOps(t *testing.T) {
	ck := testfix.Open(t, fixture)
	for _, c := range []struct {
		target, op string
		flags      recipe.Flags
	}{
		{"ios-ane", graph.OpLUTToDense, recipe.Flags{}},
		{"gpu-pipelined", graph.OpBlockwise, recipe.Flags{}},
	} {
		tgt, err := recipe.TargetByName(c.target)
		if err != nil {
			t.Fatal(err)
		}
		built, err := Build(ck, tgt, c.flags)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, op := range built.Decode.Func("main").Body {
			if op.Name != c.op {
				continue
			}
			n++
			switch c.op {
			case graph.OpLUTToDense:
				ax := op.Operands[2].Type
				if len(op.Operands) != 3 || ax.DType != graph.SI16 || ax.Rank() != 0 {
					t.Fatalf("lut_to_dense operands %v: want (indices, lut, scalar si16 axis)", op.Operands)
				}
			case graph.OpBlockwise:
				if len(op.Operands) != 4 {
					t.Fatalf("blockwise_shift_scale has %d operands, want 4", len(op.Operands))
				}
				for _, k := range []int{2, 3} {
					if !zeroConst(op.Operands[k]) {
						t.Fatalf("blockwise_shift_scale offset %d is not a zero constant", k)
					}
				}
			}
		}
		if n == 0 {
			t.Fatalf("%s: no %s in the graph", c.target, c.op)
		}
	}
}

func zeroConst(v *graph.Value) bool {
	if v.Def == nil || v.Def.Name != graph.OpConstant {
		return false
	}
	d, ok := v.Def.Attrs["value"].(graph.DenseAttr)
	if !ok {
		return false
	}
	for i := 0; i < d.Len(); i++ {
		if d.Float(i) != 0 {
			return false
		}
	}
	return true
}
