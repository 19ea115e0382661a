package lower

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"qconv/graph"
	"qconv/hf"
	"qconv/internal/exitcode"
)

// A config with layers of one type only cannot carry the four states: bad input naming the field.
func TestStockNeedsBothLayerTypes(t *testing.T) {
	ck := openFixture(t, "random/tiny_tied_4L")
	cfg := *ck.Config
	cfg.LayerTypes = slices.Repeat([]hf.LayerType{hf.LinearAttention}, len(cfg.LayerTypes))
	_, err := Lower(&cfg, Options{Contract: graph.Stock, Compute: graph.F16, StateDType: graph.F32, Weights: DenseWeights{Checkpoint: ck, DType: graph.F16}})
	if exitcode.Of(err) != exitcode.BadInput || !strings.Contains(fmt.Sprint(err), "layer_types") {
		t.Fatalf("got %v (exit %d)", err, exitcode.Of(err))
	}
}
