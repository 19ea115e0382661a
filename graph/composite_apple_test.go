package graph

import (
	"reflect"
	"testing"
)

// The declarations as Apple's converter prints them (apple/coreai-torch tests/composite_ops and
// tests/ops/test_ops_ir.py) parse into their name, input and output names and op_attrs; the
// declarations qconv writes parse back to what they declare.
func TestParseCompositeDecl(t *testing.T) {
	for _, tc := range []struct {
		text  string
		name  string
		ins   []string
		attrs map[string]string
	}{
		{GatedDeltaDecl, CompositeGatedDelta, []string{"query", "key", "value", "g", "beta", "initial_state"}, map[string]string{"use_qk_l2_norm": "true", "version": "1"}},
		{`#coreai.composite_declaration<"batch_norm" = {input_names = ["input", "gamma", "beta", "mean", "variance"], op_attrs = {eps = 9.99999974E-6 : f32, version = 1 : si64}, output_names = ["output"]}>`,
			"batch_norm", []string{"input", "gamma", "beta", "mean", "variance"}, map[string]string{"eps": "9.99999974E-6", "version": "1"}},
		{RMSNormDecl(1e-6), CompositeRMSNorm, []string{"input", "scale"}, map[string]string{"axes": "-1", "eps": "9.99999997E-7", "version": "1"}},
		{SDPADecl(true, 0), CompositeSDPA, []string{"query", "key", "value"}, map[string]string{"is_causal": "true", "version": "1", "window_size": "0"}},
	} {
		d, err := ParseCompositeDecl(tc.text)
		if err != nil {
			t.Fatalf("%s: %v", tc.text, err)
		}
		if d.Name != tc.name || !reflect.DeepEqual(d.Inputs, tc.ins) || !reflect.DeepEqual(d.Attrs, tc.attrs) || len(d.Outputs) == 0 {
			t.Errorf("%s: parsed %+v", tc.text, d)
		}
		if CompositeName(tc.text) != tc.name {
			t.Errorf("CompositeName(%s) = %q", tc.text, CompositeName(tc.text))
		}
	}
	for _, bad := range []string{"", `#coreai.composite_declaration<"x" = {input_names = ["a"}>`, `#coreai.composite_declaration<"x" = {op_attrs = {a = 1, a = 2}}>`, `#coreai.other<"x">`, `#coreai.composite_declaration<"x" = {foo = 1}>`} {
		if d, err := ParseCompositeDecl(bad); err == nil {
			t.Errorf("%q parsed as %+v", bad, d)
		}
	}
}
