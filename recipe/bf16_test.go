package recipe

import (
	"encoding/json"
	"strings"
	"testing"

	"qconv/graph"
	"qconv/internal/exitcode"
)

// macos-stock computes in bf16 by default (Apple's contract) with a bf16 recurrence; --compute
// picks fp16 or fp32 there and the name says so; bf16 elsewhere, and fp16 weights under bf16
// compute, are refused naming the flag.
func TestStockComputeRecipes(t *testing.T) {
	stock, _ := TargetByName("macos-stock")
	gpu, _ := TargetByName("gpu-pipelined")
	for _, c := range []struct {
		f                Flags
		compute, rec     graph.DType
		name, recordedAs string
	}{
		{Flags{}, graph.BF16, graph.BF16, "q_stock_int8hu_block32_sym", `"compute":"bf16","recurrence_dtype":"bf16"`},
		{Flags{Compute: "bf16"}, graph.BF16, graph.BF16, "q_stock_int8hu_block32_sym", `"compute":"bf16","recurrence_dtype":"bf16"`},
		{Flags{Compute: "fp16"}, graph.F16, graph.F32, "q_stock_int8hu_block32_sym_fp16", `"compute":"f16","recurrence_dtype":"f32"`},
		{Flags{Compute: "fp32"}, graph.F32, graph.F32, "q_stock_int8hu_block32_sym_fp32", `"compute":"f32","recurrence_dtype":"f32"`},
		{Flags{Weights: "fp16", Compute: "fp16"}, graph.F16, graph.F32, "q_stock_fp16_headint8_block32_sym_fp16", `"compute":"f16"`},
	} {
		r, err := c.f.Apply(stock)
		if err != nil {
			t.Fatalf("%+v: %v", c.f, err)
		}
		if r.Compute != c.compute || r.StateDType != c.rec || stock.NormDType(&r) != graph.F32 {
			t.Errorf("%+v: compute %s, recurrence %s, norms %s", c.f, r.Compute, r.StateDType, stock.NormDType(&r))
		}
		if got := BundleName("q", stock, graph.Stock, &r, PrefillTokens); got != c.name {
			t.Errorf("%+v: named %s, want %s", c.f, got, c.name)
		}
		b, _ := json.Marshal(r)
		if !strings.Contains(string(b), c.recordedAs) {
			t.Errorf("%+v: recorded %s", c.f, b)
		}
	}
	// The published names of the other targets do not change: fp16 is their default.
	if r, _ := (Flags{Compute: "fp16"}).Apply(gpu); BundleName("q", gpu, graph.Pipelined, &r, PrefillTokens) != "q_decode_int8lin" {
		t.Errorf("gpu-pipelined --compute fp16 is named %s", BundleName("q", gpu, graph.Pipelined, &r, PrefillTokens))
	}
	for _, c := range []struct {
		t    *Target
		f    Flags
		flag string
	}{
		{gpu, Flags{Compute: "bf16"}, "--compute"},
		{stock, Flags{Weights: "fp16"}, "--weights"},
		{stock, Flags{Compute: "f16"}, "--compute"},
	} {
		_, err := c.f.Apply(c.t)
		if err == nil || exitcode.Of(err) != exitcode.BadInput || !strings.Contains(err.Error(), c.flag) {
			t.Errorf("%s %+v: %v, want exit 2 naming %s", c.t.Name, c.f, err, c.flag)
		}
	}
}
