package graph

import (
	"fmt"
	"strconv"
	"strings"
)

// The composites Apple's converter emits for its macOS Qwen3.5 export besides gated_delta_update,
// as its tests print them (sources in docs/verify-foreign.md):
//
//	#coreai.composite_declaration<"rms_norm" = {input_names = ["input", "scale"],
//	    op_attrs = {axes = -1 : si64, eps = 9.99999974E-6 : f32, version = 1 : si64}, output_names = ["output"]}>
//	#coreai.composite_declaration<"scaled_dot_product_attention" = {input_names = ["query", "key", "value"],
//	    op_attrs = {is_causal = true, [scale = ... : f32,] version = 1 : si64, window_size = 0 : si64}, output_names = ["output"]}>
//
// qconv's interpreter runs each by its declaration (graph/interp/composite_apple.go).
const (
	CompositeRMSNorm = "rms_norm"
	CompositeSDPA    = "scaled_dot_product_attention"
)

// CompositeDecl is a parsed #coreai.composite_declaration: the op name, its input and output
// names, and its op_attrs as their printed values ("-1", "9.99999974E-6", "true"), types dropped.
type CompositeDecl struct {
	Name    string
	Inputs  []string
	Outputs []string
	Attrs   map[string]string
}

// ParseCompositeDecl parses a declaration's assembly text. Errors say what is malformed.
func ParseCompositeDecl(text string) (*CompositeDecl, error) {
	const prefix = `#coreai.composite_declaration<"`
	rest, ok := strings.CutPrefix(strings.TrimSpace(text), prefix)
	if !ok {
		return nil, fmt.Errorf("composite declaration %q does not start with %s", clip(text), prefix)
	}
	name, rest, ok := strings.Cut(rest, `"`)
	if !ok || name == "" {
		return nil, fmt.Errorf("composite declaration %q: no op name", clip(text))
	}
	rest = strings.TrimSpace(rest)
	body, ok := strings.CutPrefix(rest, "=")
	if !ok {
		return nil, fmt.Errorf("composite declaration %q: no '=' after the op name", clip(text))
	}
	body, ok = strings.CutSuffix(strings.TrimSpace(body), ">")
	if !ok {
		return nil, fmt.Errorf("composite declaration %q: no closing '>'", clip(text))
	}
	top, err := parseDict(body)
	if err != nil {
		return nil, fmt.Errorf("composite declaration %q: %v", name, err)
	}
	d := &CompositeDecl{Name: name, Attrs: map[string]string{}}
	for k, v := range top {
		switch k {
		case "input_names", "output_names":
			names, err := parseStrings(v)
			if err != nil {
				return nil, fmt.Errorf("composite declaration %q: %s: %v", name, k, err)
			}
			if k == "input_names" {
				d.Inputs = names
			} else {
				d.Outputs = names
			}
		case "op_attrs":
			attrs, err := parseDict(v)
			if err != nil {
				return nil, fmt.Errorf("composite declaration %q: op_attrs: %v", name, err)
			}
			for ak, av := range attrs {
				if val, _, ok := cutTopLevel(av, ':'); ok {
					av = strings.TrimSpace(val)
				}
				d.Attrs[ak] = av
			}
		default:
			return nil, fmt.Errorf("composite declaration %q: unknown entry %s", name, k)
		}
	}
	return d, nil
}

// Float is attribute k as a number (ok false when absent; an error when not a number).
func (d *CompositeDecl) Float(k string) (v float64, ok bool, err error) {
	s, ok := d.Attrs[k]
	if !ok {
		return 0, false, nil
	}
	v, err = strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, true, fmt.Errorf("composite %s: op_attrs.%s = %q is not a number", d.Name, k, s)
	}
	return v, true, nil
}

// Bool is attribute k as true/false (false when absent).
func (d *CompositeDecl) Bool(k string) (bool, error) {
	switch s, ok := d.Attrs[k]; {
	case !ok || s == "false":
		return false, nil
	case s == "true":
		return true, nil
	default:
		return false, fmt.Errorf("composite %s: op_attrs.%s = %q is not true or false", d.Name, k, s)
	}
}

// RMSNormDecl is the declaration Apple's converter prints for RMSNormImpl(eps) (axes fixed to -1).
func RMSNormDecl(eps float64) string {
	return `#coreai.composite_declaration<"rms_norm" = {input_names = ["input", "scale"], op_attrs = {axes = -1 : si64, eps = ` +
		printF32(eps) + ` : f32, version = 1 : si64}, output_names = ["output"]}>`
}

// SDPADecl is the declaration Apple's converter prints for SDPA(scale=None, is_causal, window_size).
func SDPADecl(causal bool, window int64) string {
	return fmt.Sprintf(`#coreai.composite_declaration<"scaled_dot_product_attention" = {input_names = ["query", "key", "value"], op_attrs = {is_causal = %v, version = 1 : si64, window_size = %d : si64}, output_names = ["output"]}>`, causal, window)
}

// printF32 prints v rounded to f32 as MLIR prints an f32 attribute (9 significant digits).
func printF32(v float64) string {
	s := strconv.FormatFloat(float64(float32(v)), 'E', 8, 64)
	mant, exp, _ := strings.Cut(s, "E")
	e, _ := strconv.Atoi(exp)
	return mant + "E" + strconv.Itoa(e)
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// parseDict splits "{a = x, b = {..}, c = [..]}" into its entries.
func parseDict(s string) (map[string]string, error) {
	s = strings.TrimSpace(s)
	inner, ok := strings.CutPrefix(s, "{")
	if ok {
		inner, ok = strings.CutSuffix(inner, "}")
	}
	if !ok {
		return nil, fmt.Errorf("%q is not a {...} dictionary", clip(s))
	}
	out := map[string]string{}
	for _, e := range splitTopLevel(inner) {
		if strings.TrimSpace(e) == "" {
			continue
		}
		k, v, ok := cutTopLevel(e, '=')
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("entry %q is not name = value", clip(e))
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("entry %s given twice", k)
		}
		out[k] = strings.TrimSpace(v)
	}
	return out, nil
}

// parseStrings parses ["a", "b"].
func parseStrings(s string) ([]string, error) {
	inner, ok := strings.CutPrefix(strings.TrimSpace(s), "[")
	if ok {
		inner, ok = strings.CutSuffix(inner, "]")
	}
	if !ok {
		return nil, fmt.Errorf("%q is not a [...] array", clip(s))
	}
	var out []string
	for _, e := range splitTopLevel(inner) {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		u, err := strconv.Unquote(e)
		if err != nil {
			return nil, fmt.Errorf("%q is not a string", clip(e))
		}
		out = append(out, u)
	}
	return out, nil
}

// splitTopLevel splits s at the commas outside brackets, braces, angles and strings.
func splitTopLevel(s string) []string {
	var out []string
	for {
		before, after, ok := cutTopLevel(s, ',')
		out = append(out, before)
		if !ok {
			return out
		}
		s = after
	}
}

// cutTopLevel cuts s at the first sep outside brackets, braces, angles and strings.
func cutTopLevel(s string, sep byte) (before, after string, ok bool) {
	depth, inStr := 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inStr:
			if c == '\\' {
				i++
			} else if c == '"' {
				inStr = false
			}
		case c == '"':
			inStr = true
		case c == '{' || c == '[' || c == '<' || c == '(':
			depth++
		case c == '}' || c == ']' || c == '>' || c == ')':
			depth--
		case c == sep && depth == 0:
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
