package graph

import (
	"strings"
	"testing"
)

func TestTypeStrings(t *testing.T) {
	cases := []struct {
		t    Type
		want string
	}{
		{Tensor(F16, 1, Dyn, 3), "tensor<1x?x3xf16>"},
		{Tensor(SI32), "tensor<si32>"},
		{HandleOf(Tensor(F32, 6, 1, 2, Dyn, 256)), "!coreai.handle<tensor<6x1x2x?x256xf32>>"},
		{TokenType(), "!coreai.token"},
		{Tensor(UI4, 64, 32), "tensor<64x32xui4>"},
	}
	for _, c := range cases {
		if got := c.t.String(); got != c.want {
			t.Errorf("%v: %s, want %s", c.t, got, c.want)
		}
	}
	if !Tensor(F16, 1, Dyn).Compatible(Tensor(F16, 1, 7)) || Tensor(F16, 1, Dyn).Equal(Tensor(F16, 1, 7)) {
		t.Error("dynamic compatibility")
	}
}

func TestDenseAttr(t *testing.T) {
	d := DenseInts(SI4, []int64{3}, []int64{-1, 7, -8})
	if d.Data[0] != 0x7f || d.Data[1] != 0x08 {
		t.Errorf("si4 packing %x", d.Data)
	}
	if got := d.Ints(); got[0] != -1 || got[1] != 7 || got[2] != -8 {
		t.Errorf("si4 values %v", got)
	}
	s := DenseInts(SI32, []int64{4}, []int64{5, 5, 5, 5})
	if !s.Splat() || len(s.Data) != 4 || s.Int(3) != 5 {
		t.Errorf("splat %v %x", s.Splat(), s.Data)
	}
	f := DenseFloats(F16, nil, []float64{0.1})
	if f.Float(0) != float64(float32(0.0999755859375)) {
		t.Errorf("f16 scalar %v", f.Float(0))
	}
}

// Inference rules reject malformed ops with the op and the reason.
func TestInferErrors(t *testing.T) {
	m := &Module{}
	f := NewFunc("main")
	b := NewBuilder(m, f)
	x := f.AddArg("x", Tensor(F16, 2, 3))
	y := f.AddArg("y", Tensor(F32, 2, 3))
	b.Add(x, y)
	if b.Err() == nil || !strings.Contains(b.Err().Error(), "dtypes f16 and f32 differ") {
		t.Errorf("mixed add: %v", b.Err())
	}
	b = NewBuilder(m, f)
	b.Matmul(x, x)
	if b.Err() == nil || !strings.Contains(b.Err().Error(), "contraction") {
		t.Errorf("matmul: %v", b.Err())
	}
	b = NewBuilder(m, f)
	z := b.Transpose(x, 1, 0)
	if b.Err() != nil || !z.Type.Equal(Tensor(F16, 3, 2)) {
		t.Errorf("transpose: %v %s", b.Err(), z.Type)
	}
	s := b.Slice(x, []int64{0, 1}, []int64{2, SliceEnd})
	if !s.Type.Equal(Tensor(F16, 2, 2)) {
		t.Errorf("slice type %s", s.Type)
	}
	r := b.ReduceSum(x, 1)
	if !r.Type.Equal(Tensor(F16, 2, 1)) {
		t.Errorf("reduce type %s", r.Type)
	}
	c := b.Concat(1, x, x)
	if !c.Type.Equal(Tensor(F16, 2, 6)) {
		t.Errorf("concat type %s", c.Type)
	}
	if b.Err() != nil {
		t.Fatal(b.Err())
	}
}
