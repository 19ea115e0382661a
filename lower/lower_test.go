package lower

import (
	"path/filepath"
	"testing"

	"qconv/graph"
	"qconv/hf"
)

func openFixture(t testing.TB, name string) *hf.Checkpoint {
	t.Helper()
	ck, err := hf.Open(filepath.Join("..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	return ck
}

func TestLoweredGraphsVerify(t *testing.T) {
	ck := openFixture(t, "tinyqwen35-code")
	for _, c := range []struct {
		name string
		opt  Options
		dev  graph.Device
	}{
		{"pipelined gpu", Options{Contract: graph.Pipelined, Compute: graph.F16, StateDType: graph.F32}, graph.GPU},
		{"pipelined ane", Options{Contract: graph.Pipelined, Compute: graph.F16, StateDType: graph.F16, NormDType: graph.F16}, graph.ANE},
		{"host decode", Options{Contract: graph.HostDecode, Compute: graph.F16, StateDType: graph.F32, Context: 64, GreedyHead: true}, graph.GPU},
		{"host prefill", Options{Contract: graph.HostPrefill, Compute: graph.F16, StateDType: graph.F32, Context: 64, PrefillTokens: 16, GreedyHead: true}, graph.GPU},
	} {
		c.opt.Weights = DenseWeights{Checkpoint: ck, DType: graph.F16}
		m, err := Lower(ck.Config, c.opt)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if err := graph.Verify(m, graph.VerifyOptions{Device: c.dev}); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}
