package mlir

import (
	"errors"
	"fmt"
	"strings"

	"qconv/graph"
)

// The attributes that mark a graph as a composite op in the bytecode (composite.go).

const (
	attrNoInline      = "noinline"
	attrCompositeDecl = "composite_decl"
	attrTemplateOp    = "template_op" // read and dropped (bytecode_read.go)
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

// opaqueResults types the results of a composite graph whose body was not read (graph.Func.Opaque)
// from its function_type: bare values, defined by no op.
func opaqueResults(attrs mDict) ([]graph.Result, error) {
	for _, na := range attrs {
		if na.name != attrFuncType {
			continue
		}
		ta, ok := na.val.(mTypeAttr)
		if !ok || ta.t.kind != mFunc {
			return nil, fmt.Errorf("function_type is a %s, want a function type", attrKind(na.val))
		}
		var res []graph.Result
		for i, t := range ta.t.outs {
			gt, err := t.graphType()
			if err != nil {
				return nil, fmt.Errorf("function_type result %d: %v", i, err)
			}
			res = append(res, graph.Result{Value: &graph.Value{Type: gt, Index: i}})
		}
		return res, nil
	}
	return nil, errors.New("graph without function_type")
}
