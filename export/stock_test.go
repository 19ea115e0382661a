package export

import (
	"testing"

	"qconv/gating"
	"qconv/graph"
	"qconv/internal/testfix"
	"qconv/oracle"
	"qconv/recipe"
)

// The entrypoint check has teeth: a @prefill that leaves convStates as it found it (its write
// stores the value it read) decodes differently after the prompt than @main token by token, and
// the check fails, while the intact module passes.
func TestStockEntrypointCheckCatchesBrokenPrefill(t *testing.T) {
	ck := testfix.Open(t, fixture)
	tgt, err := recipe.TargetByName("macos-stock")
	if err != nil {
		t.Fatal(err)
	}
	built, err := Build(ck, tgt, recipe.Flags{})
	if err != nil {
		t.Fatal(err)
	}
	m := built.Decode
	prompts, err := DefaultPrompts(ck)
	if err != nil {
		t.Fatal(err)
	}
	eopt := oracle.DefaultGateOptions()
	eopt.Tokens = 8
	cc, err := gating.CheckStockEntrypoints(m, prompts, eopt, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !cc.Passed || len(cc.Prompts) != 2*len(prompts) {
		t.Fatalf("intact module: passed %v, %d rows for %d prompts: %+v", cc.Passed, len(cc.Prompts), len(prompts), cc.Prompts)
	}
	worst := 1.0
	for _, p := range cc.Prompts {
		if p.EndCosine == nil {
			t.Fatalf("%s: the row after the prompt was not compared", p.Name)
		}
		worst = min(worst, *p.EndCosine)
	}
	t.Logf("intact bf16 module: worst end-row cosine between the paths %.6f (floor %v)", worst, gating.MinPathCosine)

	f := m.Func(graph.FuncPrefill)
	var read *graph.Value
	for _, op := range f.Body {
		h := op.Operands
		if len(h) == 0 || h[0].Def != nil || f.Args[h[0].Index].Name != graph.StateConvStates {
			continue
		}
		switch op.Name {
		case graph.OpReadHandle:
			read = op.Results[0]
		case graph.OpWriteHandle:
			op.Operands[1] = read
		}
	}
	if read == nil {
		t.Fatal("no read of convStates in @prefill")
	}
	cc, err = gating.CheckStockEntrypoints(m, prompts, eopt, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cc.Passed {
		t.Fatalf("a @prefill that drops the conv state passed the entrypoint check: %+v", cc.Prompts)
	}
	for _, p := range cc.Prompts {
		if p.Name == prompts[0].Name+" (@main, whole prompt)" && !p.Passed {
			t.Errorf("the whole-prompt @main row failed though @main is intact: %+v", p)
		}
	}
}

// "--target all" leaves macos-stock out (existing all-target trees keep their bundles); naming it
// selects it, alone or in a list.
func TestAllLeavesOutStock(t *testing.T) {
	all, err := recipe.ParseTargets("all")
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range all {
		if tg.Name == "macos-stock" {
			t.Error("--target all includes macos-stock")
		}
	}
	if len(all) != len(recipe.Targets)-1 {
		t.Errorf("all expands to %d targets of %d", len(all), len(recipe.Targets))
	}
	both, err := recipe.ParseTargets("all,macos-stock")
	if err != nil || len(both) != len(recipe.Targets) || both[len(both)-1].Name != "macos-stock" {
		t.Errorf("all,macos-stock: %v %v", both, err)
	}
}
