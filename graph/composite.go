package graph

import (
	"fmt"
	"strings"
)

// Composite ops: a private, noinline coreai.graph whose attribute dictionary carries a
// #coreai.composite_declaration names an op the Core AI compiler recognises and may replace with
// its own kernel; the graph's body is the op's reference decomposition. Callers reach it with
// coreai.invoke. This is how Apple's converter emits the gated-delta recurrence of Qwen3.5
// (docs/apple-qwen35-contract.md, "The recurrence").

const (
	attrNoInline      = "noinline"
	attrCompositeDecl = "composite_decl"
)

// CompositeGatedDelta is the composite op name of the gated-delta recurrence.
const CompositeGatedDelta = "gated_delta_update"

// GatedDeltaDecl is the declaration Apple's converter prints for GatedDeltaUpdate() (l2-normalised
// q and k, version 1): six inputs, two outputs.
const GatedDeltaDecl = `#coreai.composite_declaration<"gated_delta_update" = {input_names = ["query", "key", "value", "g", "beta", "initial_state"], op_attrs = {use_qk_l2_norm = true, version = 1 : si64}, output_names = ["output_0", "output_1"]}>`

// Writer-only attribute kinds of graph attributes.
type (
	unitAttr   struct{}
	opaqueAttr struct{ text string } // a dialect attribute kept as its assembly text
)

func (unitAttr) isAttr()   {}
func (opaqueAttr) isAttr() {}

// compositeAttrs adds f's noinline and composite_decl attributes.
func compositeAttrs(f *Func, attrs map[string]Attr) {
	if f.NoInline {
		attrs[attrNoInline] = unitAttr{}
	}
	if f.Composite != "" {
		attrs[attrCompositeDecl] = opaqueAttr{f.Composite}
	}
}

// readCompositeAttr applies a noinline or composite_decl graph attribute read back from bytes.
func readCompositeAttr(f *Func, name string, val mAttr) error {
	o, ok := val.(mOther)
	switch {
	case name == attrNoInline:
		if !ok || o.what != "unit" {
			return fmt.Errorf("noinline is a %s, want a unit attribute", attrKind(val))
		}
		f.NoInline = true
	case !ok || !strings.HasPrefix(o.what, "#coreai.composite_declaration<"):
		return fmt.Errorf("composite_decl is a %s, want a #coreai.composite_declaration", attrKind(val))
	default:
		f.Composite = o.what
	}
	return nil
}

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
