package recipe

import (
	"encoding/json"
	"reflect"
	"testing"

	"qconv/graph"
	"qconv/quant"
)

// A recipe is recorded as text and reads back into the same typed values: the scheme names,
// dtypes and the int head's scheme (absent for a float head) are the fields' own marshalers,
// in the order published metadata has them.
func TestRecipeJSONRoundTrip(t *testing.T) {
	gpu, _ := TargetByName("gpu-pipelined")
	ane, _ := TargetByName("ios-ane")
	for _, c := range []struct {
		t    *Target
		f    Flags
		want string
	}{
		{gpu, Flags{}, `{"weights":"int8-block32","head":"tied","max_context_length":4096,"scheme":"absmax","compute":"f16","recurrence_dtype":"f32"}`},
		{gpu, Flags{HeadSym: true, Scheme: "clip"}, `{"weights":"int8-block32","head":"int8","head_granularity":"block32","max_context_length":4096,"head_scheme":"absmax","scheme":"clip","compute":"f16","recurrence_dtype":"f32"}`},
		{gpu, Flags{Head: "int4-perchan", Scheme: "clip", AllowDelegate: true, Compute: "fp32"}, `{"weights":"int8-block32","head":"int4","head_granularity":"perchan","max_context_length":4096,"allow_known_delegate_bugs":true,"head_scheme":"clip","scheme":"clip","compute":"f32","recurrence_dtype":"f32"}`},
		{ane, Flags{}, `{"weights":"int8-lut","head":"tied","max_context_length":4096,"scheme":"absmax","compute":"f16","recurrence_dtype":"f16"}`},
	} {
		r, err := c.f.Apply(c.t)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != c.want {
			t.Errorf("%s %+v:\n got %s\nwant %s", c.t.Name, c.f, b, c.want)
		}
		var back Recipe
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		back.headOverridden, back.headFlags = r.headOverridden, r.headFlags
		if !reflect.DeepEqual(back, r) {
			t.Errorf("%s %+v: read back %+v, wrote %+v", c.t.Name, c.f, back, r)
		}
	}
	for _, bad := range []string{`{"compute":"f17"}`, `{"scheme":"minmax"}`, `{"recurrence_dtype":"bf16x"}`, `{"head_scheme":"clipped"}`} {
		if err := json.Unmarshal([]byte(bad), new(Recipe)); err == nil {
			t.Errorf("%s read without an error", bad)
		}
	}
	var c graph.Contract
	if err := json.Unmarshal([]byte(`"host-cache prefill"`), &c); err != nil || c != graph.HostPrefill {
		t.Errorf("contract read back as %v, %v", c, err)
	}
	if _, err := json.Marshal(quant.Scheme(7)); err == nil {
		t.Error("an unknown scheme was written")
	}
}
