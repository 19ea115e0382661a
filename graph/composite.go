package graph

import "strings"

// Composite ops: a private, noinline coreai.graph whose attribute dictionary carries a
// #coreai.composite_declaration names an op the Core AI compiler recognises and may replace with
// its own kernel; the graph's body is the op's reference decomposition. Callers reach it with
// coreai.invoke. This is how Apple's converter emits the gated-delta recurrence of Qwen3.5
// (docs/apple-qwen35-contract.md, "The recurrence").

// CompositeGatedDelta is the composite op name of the gated-delta recurrence.
const CompositeGatedDelta = "gated_delta_update"

// GatedDeltaDecl is the declaration Apple's converter prints for GatedDeltaUpdate() (l2-normalised
// q and k, version 1): six inputs, two outputs.
const GatedDeltaDecl = `#coreai.composite_declaration<"gated_delta_update" = {input_names = ["query", "key", "value", "g", "beta", "initial_state"], op_attrs = {use_qk_l2_norm = true, version = 1 : si64}, output_names = ["output_0", "output_1"]}>`

// CompositeName is the op name a composite declaration text declares ("" when none).
func CompositeName(decl string) string {
	const prefix = `#coreai.composite_declaration<"`
	if !strings.HasPrefix(decl, prefix) {
		return ""
	}
	rest := decl[len(prefix):]
	if i := strings.IndexByte(rest, '"'); i > 0 {
		return rest[:i]
	}
	return ""
}
