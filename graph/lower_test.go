package graph

import (
	"path/filepath"
	"testing"

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
		opt  LowerOptions
		dev  Device
	}{
		{"pipelined gpu", LowerOptions{Contract: Pipelined, Compute: F16, StateDType: F32}, GPU},
		{"pipelined ane", LowerOptions{Contract: Pipelined, Compute: F16, StateDType: F16, NormDType: F16}, ANE},
		{"host decode", LowerOptions{Contract: HostDecode, Compute: F16, StateDType: F32, Context: 64, GreedyHead: true}, GPU},
		{"host prefill", LowerOptions{Contract: HostPrefill, Compute: F16, StateDType: F32, Context: 64, PrefillTokens: 16, GreedyHead: true}, GPU},
	} {
		c.opt.Weights = DenseWeights{Checkpoint: ck, DType: F16}
		m, err := Lower(ck.Config, c.opt)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if err := Verify(m, VerifyOptions{Device: c.dev}); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}
