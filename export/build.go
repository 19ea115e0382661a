package export

import (
	"qconv/graph"
	"qconv/hf"
	"qconv/recipe"
)

// Built is a target's lowered graphs with their weights in memory (for `qconv run --target`).
type Built struct {
	Target  *recipe.Target
	Recipe  recipe.Recipe
	Name    string
	Decode  *graph.Module
	Prefill *graph.Module // ios-gpu companion, or nil
}

// Build lowers t's graphs for ck under flags and quantizes every weight in memory: the candidate
// exactly as an export would write it, without writing.
func Build(ck *hf.Checkpoint, t *recipe.Target, f recipe.Flags) (*Built, error) {
	r, err := f.Apply(t)
	if err != nil {
		return nil, err
	}
	if err := r.ForCheckpoint(ck.Config); err != nil {
		return nil, err
	}
	b := &Built{Target: t, Recipe: r, Name: recipe.BundleName(recipe.ShortName(ck), t, t.Contract, &r, recipe.PrefillTokens)}
	for _, c := range []graph.Contract{t.Contract, t.Prefill} {
		if c == 0 {
			continue
		}
		j := &job{target: t, recipe: r, contract: c}
		if err := j.lower(ck); err != nil {
			return nil, err
		}
		for _, res := range j.module.Resources {
			if err := res.Materialize(); err != nil {
				return nil, err
			}
		}
		if c == t.Contract {
			b.Decode = j.module
		} else {
			b.Prefill = j.module
		}
	}
	return b, nil
}
