package mlir

import (
	"fmt"
	"strings"

	"qconv/graph"
)

// The attributes that mark a graph as a composite op in the bytecode (composite.go).

const (
	attrNoInline      = "noinline"
	attrCompositeDecl = "composite_decl"
)

// Writer-only attribute kinds of graph attributes.
type (
	unitAttr   struct{}
	opaqueAttr struct{ text string } // a dialect attribute kept as its assembly text
)

func (unitAttr) IsAttr()   {}
func (opaqueAttr) IsAttr() {}

// compositeAttrs adds f's noinline and composite_decl attributes.
func compositeAttrs(f *graph.Func, attrs map[string]graph.Attr) {
	if f.NoInline {
		attrs[attrNoInline] = unitAttr{}
	}
	if f.Composite != "" {
		attrs[attrCompositeDecl] = opaqueAttr{f.Composite}
	}
}

// readCompositeAttr applies a noinline or composite_decl graph attribute read back from bytes.
func readCompositeAttr(f *graph.Func, name string, val mAttr) error {
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
