package lower

import (
	"math"
	"testing"

	"qconv/graph"
	"qconv/graph/interp"
)

// normGraph is y = normScale(x) over the last axis of x [1, n] in dtype dt.
func normGraph(dt graph.DType, n int64, unscaled, mean bool) *graph.Module {
	m := &graph.Module{}
	f := graph.NewFunc("main")
	m.Funcs = append(m.Funcs, f)
	l := &lowering{b: graph.NewBuilder(m, f), m: m, opt: Options{UnscaledF16Norm: unscaled}}
	x := f.AddArg("x", graph.Tensor(dt, 1, n))
	f.AddResult("y", l.normScale(x, 1, 1e-6, mean))
	if l.b.Err() != nil {
		panic(l.b.Err())
	}
	return m
}

// A fp16 stream with channels in the hundreds and thousands normalises to what fp64 gives; the
// unscaled fp16 form overflows (x² > 65504) and returns zeros; tiny inputs keep eps's effect.
func TestNormScaleF16Overflow(t *testing.T) {
	cases := []struct {
		name string
		x    []float64
		mean bool
	}{
		{"outlier channels", []float64{3000, -1.5, 0.25, 700, 2, -0.75, 1, 0.5}, true},
		{"ordinary", []float64{1, -2, 0.5, 0.25, -0.125, 3, 1.5, -1}, true},
		{"tiny (eps matters)", []float64{1e-3, -2e-3, 5e-4, 0, 1e-3, 0, 0, 2e-3}, true},
		{"l2 sum", []float64{400, 30, -20, 1, 0, 0, 5, -300}, false},
		{"all zero", []float64{0, 0, 0, 0, 0, 0, 0, 0}, true},
	}
	for _, c := range cases {
		n := int64(len(c.x))
		var ss float64
		for _, v := range c.x {
			ss += v * v
		}
		if c.mean {
			ss /= float64(n)
		}
		want := make([]float64, n)
		for i, v := range c.x {
			want[i] = v / math.Sqrt(ss+1e-6)
		}
		for _, unscaled := range []bool{false, true} {
			it, err := interp.New(normGraph(graph.F16, n, unscaled, c.mean), "main")
			if err != nil {
				t.Fatal(err)
			}
			in := interp.NewArray(graph.F16, 1, n)
			for i, v := range c.x {
				in.F[i] = float32(f16round(v))
			}
			out, err := it.Run(map[string]*interp.Array{"x": in}, nil)
			if err != nil {
				t.Fatal(err)
			}
			var worst float64
			for i, v := range out["y"].F {
				d := math.Abs(float64(v) - want[i])
				if math.IsNaN(d) {
					d = math.Inf(1)
				}
				worst = math.Max(worst, d)
			}
			overflows := c.name == "outlier channels" || c.name == "l2 sum"
			switch {
			case !unscaled && worst > 4e-3:
				t.Errorf("%s: safe fp16 norm off by %.4g: %v, want %v", c.name, worst, out["y"].F, want)
			case unscaled && overflows && worst < 0.1:
				t.Errorf("%s: the unscaled fp16 norm should overflow, but is off by only %.4g", c.name, worst)
			}
		}
	}
}
