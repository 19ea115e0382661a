package mlir

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"qconv/graph"
	"qconv/hf"
	"qconv/lower"
)

// The stock module as upstream mlir-opt 22 prints it (generic form): the private composite graph
// with its declaration, then @main and @prefill with Apple's input and state names and shapes
// (@prefill returning the four state tokens only), each entrypoint writing each state once, with
// slice_update only on the growing KV pair and one composite invoke per linear-attention layer.
func TestStockGenericPrint(t *testing.T) {
	ck := openFixture(t, "tinyqwen35-code")
	cfg := ck.Config
	m := lowerFor(t, ck, lower.Options{Contract: graph.Stock, Compute: graph.F16, StateDType: graph.F32, Weights: lower.DenseWeights{Checkpoint: ck, DType: graph.F16}})
	path, bc := writeFile(t, t.TempDir(), "stock.mlirb", func(b *bytes.Buffer) error { return WriteBytecode(b, m, "qconv test") })
	text := string(mlirOpt(t, path, "--mlir-print-op-generic", "--mlir-elide-elementsattrs-if-larger=8", "--mlir-elide-resource-strings-if-larger=8"))

	Lf, Ll := cfg.NumLayersOf(hf.FullAttention), cfg.NumLayersOf(hf.LinearAttention)
	kv := fmt.Sprintf("!coreai.handle<tensor<%dx1x%dx?x%dxf16>>", Lf, cfg.NumKVHeads, cfg.HeadDim)
	conv := fmt.Sprintf("!coreai.handle<tensor<%dx1x%dx%dxf16>>", Ll, cfg.ConvKernel, cfg.ConvDim())
	rec := fmt.Sprintf("!coreai.handle<tensor<%dx1x%dx%dx%dxf32>>", Ll, cfg.LinearNumValueHeads, cfg.LinearKeyHeadDim, cfg.LinearValueHeadDim)
	ins := fmt.Sprintf("(tensor<1x?xsi32>, tensor<1x?xsi32>, %s, %s, %s, %s)", kv, kv, conv, rec)
	toks := "!coreai.token, !coreai.token, !coreai.token, !coreai.token"
	states := `{MutableBuffers.buffer_mutation = "keyCache", coreai.name = "keyCache"}, {MutableBuffers.buffer_mutation = "valueCache", coreai.name = "valueCache"}, {MutableBuffers.buffer_mutation = "convStates", coreai.name = "convStates"}, {MutableBuffers.buffer_mutation = "recurrentStates", coreai.name = "recurrentStates"}`
	var graphs []string
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "  }) {") {
			graphs = append(graphs, line)
		}
	}
	if len(graphs) != 3 {
		t.Fatalf("%d coreai.graph ops, want 3 (composite, main, prefill)", len(graphs))
	}
	want := [][]string{
		{`sym_name = "gated_delta_update_0"`, `sym_visibility = "private"`, "noinline", `composite_decl = #coreai.composite_declaration<"gated_delta_update" = {input_names = ["query", "key", "value", "g", "beta", "initial_state"], op_attrs = {use_qk_l2_norm = true, version = 1 : si64}, output_names = ["output_0", "output_1"]}>`},
		{`sym_name = "main"`, `{coreai.name = "input_ids"}, {coreai.name = "position_ids"}, ` + states, fmt.Sprintf("function_type = %s -> (%s, tensor<1x?x%dxf16>)", ins, toks, cfg.VocabSize), `{coreai.name = "logits"}`},
		{`sym_name = "prefill"`, `{coreai.name = "input_ids"}, {coreai.name = "position_ids"}, ` + states, fmt.Sprintf("function_type = %s -> (%s)", ins, toks)},
	}
	for i, w := range want {
		for _, s := range w {
			if !strings.Contains(graphs[i], s) {
				t.Errorf("graph %d lacks %s:\n%s", i, s, graphs[i])
			}
		}
	}
	if strings.Contains(graphs[2], "logits") || strings.Contains(graphs[1], "sym_visibility") {
		t.Errorf("@prefill returns logits or @main is private")
	}
	if n := strings.Count(text, `"coreai.while"`); n != 0 {
		t.Errorf("%d coreai.while ops", n)
	}

	back, err := ReadBytecode(bc)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{graph.FuncMain, graph.FuncPrefill} {
		f := back.Func(name)
		writes, invokes, updates := map[string]int{}, 0, 0
		for _, op := range f.Body {
			switch op.Name {
			case graph.OpWriteHandle:
				writes[f.Args[op.Operands[0].Index].Name]++
			case graph.OpInvoke:
				invokes++
			case graph.OpSliceUpdate:
				updates++
				// Follow the updated tensor back to the state it was read from.
				v := op.Operands[0]
				for v.Def != nil && v.Def.Name == graph.OpSliceUpdate {
					v = v.Def.Operands[0]
				}
				if v.Def == nil || v.Def.Name != graph.OpReadHandle {
					t.Fatalf("@%s: slice_update of a value not read from a state", name)
				}
				if s := f.Args[v.Def.Operands[0].Index].Name; s != graph.StateKey && s != graph.StateValue {
					t.Errorf("@%s: slice_update chained on fixed-shape state %s", name, s)
				}
			}
		}
		for _, s := range []string{graph.StateKey, graph.StateValue, graph.StateConvStates, graph.StateRecurrentStates} {
			if writes[s] != 1 {
				t.Errorf("@%s writes %s %d times, want once", name, s, writes[s])
			}
		}
		if invokes != Ll || updates != 2*Lf {
			t.Errorf("@%s: %d composite invokes and %d slice_updates, want %d and %d", name, invokes, updates, Ll, 2*Lf)
		}
	}
}
