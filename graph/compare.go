package graph

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
)

// EqualModules compares two modules structurally and returns the first difference, or nil when
// they hold the same functions (names, visibility, argument and result names, mutations and
// types), the same ops in the same order (names, operands by position, result types,
// attributes by value) and the same resources (keys, alignment, bytes). Dense attributes compare
// by element values, so a splat equals its expanded form; resource order is not compared (it
// only numbers the handles in a file). Lazy resources are materialized one at a time to compare.
func EqualModules(a, b *Module) error {
	if a == nil || b == nil {
		if a != b {
			return fmt.Errorf("one module is nil")
		}
		return nil
	}
	if len(a.Funcs) != len(b.Funcs) {
		return fmt.Errorf("%d functions vs %d", len(a.Funcs), len(b.Funcs))
	}
	for i := range a.Funcs {
		if err := equalFuncs(a.Funcs[i], b.Funcs[i]); err != nil {
			return err
		}
	}
	if len(a.Resources) != len(b.Resources) {
		return fmt.Errorf("%d resources vs %d", len(a.Resources), len(b.Resources))
	}
	for _, ra := range a.Resources {
		rb := b.Resource(ra.Key)
		if rb == nil {
			return fmt.Errorf("resource %q missing from the second module", ra.Key)
		}
		if ra.Align != rb.Align || ra.Size != rb.Size {
			return fmt.Errorf("resource %q: align %d size %d vs align %d size %d", ra.Key, ra.Align, ra.Size, rb.Align, rb.Size)
		}
		da, err := ra.Bytes()
		if err != nil {
			return err
		}
		db, err := rb.Bytes()
		if err != nil {
			return err
		}
		if !bytes.Equal(da, db) {
			i := 0
			for i < len(da) && da[i] == db[i] {
				i++
			}
			return fmt.Errorf("resource %q: bytes differ first at offset %d", ra.Key, i)
		}
	}
	return nil
}

// valuePositions names each value of f by where it is defined: argument k, or result k of op i.
func valuePositions(f *Func) map[*Value]string {
	pos := map[*Value]string{}
	for k, a := range f.Args {
		pos[a.Value] = fmt.Sprintf("argument %d", k)
	}
	for i, op := range f.Body {
		for k, r := range op.Results {
			pos[r] = fmt.Sprintf("result %d of op %d", k, i)
		}
	}
	return pos
}

func equalFuncs(f, g *Func) error {
	if f.Name != g.Name || f.Private != g.Private {
		return fmt.Errorf("function @%s (private %v) vs @%s (private %v)", f.Name, f.Private, g.Name, g.Private)
	}
	if f.NoInline != g.NoInline || f.Composite != g.Composite {
		return fmt.Errorf("function @%s: noinline %v, composite %q vs noinline %v, composite %q", f.Name, f.NoInline, f.Composite, g.NoInline, g.Composite)
	}
	where := func(format string, args ...any) error {
		return fmt.Errorf("@%s: %s", f.Name, fmt.Sprintf(format, args...))
	}
	if len(f.Args) != len(g.Args) || len(f.Results) != len(g.Results) || len(f.Body) != len(g.Body) {
		return where("%d args, %d results, %d ops vs %d, %d, %d", len(f.Args), len(f.Results), len(f.Body), len(g.Args), len(g.Results), len(g.Body))
	}
	for k := range f.Args {
		x, y := f.Args[k], g.Args[k]
		if x.Name != y.Name || x.Mutation != y.Mutation || !x.Value.Type.Equal(y.Value.Type) {
			return where("argument %d: %q %q %s vs %q %q %s", k, x.Name, x.Mutation, x.Value.Type, y.Name, y.Mutation, y.Value.Type)
		}
	}
	pf, pg := valuePositions(f), valuePositions(g)
	for i := range f.Body {
		x, y := f.Body[i], g.Body[i]
		if x.Name != y.Name || len(x.Operands) != len(y.Operands) || len(x.Results) != len(y.Results) {
			return where("op %d: %s with %d operands, %d results vs %s with %d, %d", i, x.Name, len(x.Operands), len(x.Results), y.Name, len(y.Operands), len(y.Results))
		}
		for k := range x.Operands {
			if a, b := pf[x.Operands[k]], pg[y.Operands[k]]; a != b || a == "" {
				return where("op %d (%s): operand %d is %q vs %q", i, x.Name, k, a, b)
			}
		}
		for k := range x.Results {
			if !x.Results[k].Type.Equal(y.Results[k].Type) {
				return where("op %d (%s): result %d type %s vs %s", i, x.Name, k, x.Results[k].Type, y.Results[k].Type)
			}
		}
		if len(x.Attrs) != len(y.Attrs) {
			return where("op %d (%s): attributes %v vs %v", i, x.Name, slices.Sorted(maps.Keys(x.Attrs)), slices.Sorted(maps.Keys(y.Attrs)))
		}
		for key, av := range x.Attrs {
			bv, ok := y.Attrs[key]
			if !ok {
				return where("op %d (%s): attribute %s missing from the second", i, x.Name, key)
			}
			if err := EqualAttrs(av, bv); err != nil {
				return where("op %d (%s): attribute %s: %v", i, x.Name, key, err)
			}
		}
	}
	for k := range f.Results {
		x, y := f.Results[k], g.Results[k]
		if a, b := pf[x.Value], pg[y.Value]; x.Name != y.Name || a != b || a == "" {
			return where("result %d: %q = %s vs %q = %s", k, x.Name, a, y.Name, b)
		}
	}
	return nil
}

// EqualAttrs compares two attribute values as EqualModules does and returns the first difference.
func EqualAttrs(a, b Attr) error {
	switch x := a.(type) {
	case DenseAttr:
		y, ok := b.(DenseAttr)
		if !ok {
			return fmt.Errorf("dense vs %T", b)
		}
		if !x.Type.Equal(y.Type) {
			return fmt.Errorf("dense %s vs %s", x.Type, y.Type)
		}
		if err := CheckDense(x); err != nil {
			return err
		}
		if err := CheckDense(y); err != nil {
			return err
		}
		ex, ey := DenseElements(x), DenseElements(y)
		if len(ex) != len(ey) {
			return fmt.Errorf("dense %s: %d distinct-or-splat elements vs %d", x.Type, len(ex), len(ey))
		}
		for i := range ex {
			if ex[i] != ey[i] {
				return fmt.Errorf("dense %s: element %d is 0x%x vs 0x%x", x.Type, i, ex[i], ey[i])
			}
		}
		return nil
	case ResourceAttr:
		y, ok := b.(ResourceAttr)
		if !ok || x.Res == nil || y.Res == nil || !x.Type.Equal(y.Type) || x.Res.Key != y.Res.Key {
			return fmt.Errorf("%s vs %s", describeAttr(a), describeAttr(b))
		}
		return nil
	case SymbolRefAttr, StringAttr:
		if a != b {
			return fmt.Errorf("%s vs %s", describeAttr(a), describeAttr(b))
		}
		return nil
	}
	return fmt.Errorf("unsupported attribute %T", a)
}

func describeAttr(a Attr) string {
	switch x := a.(type) {
	case ResourceAttr:
		if x.Res == nil {
			return "dense_resource<nil> : " + x.Type.String()
		}
		return "dense_resource<" + x.Res.Key + "> : " + x.Type.String()
	case SymbolRefAttr:
		return "@" + x.Name
	case StringAttr:
		return fmt.Sprintf("%q", x.S)
	}
	return fmt.Sprintf("%T", a)
}
