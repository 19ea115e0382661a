package recipe

import (
	"fmt"

	"qconv/graph"
)

// Known slow shapes: recipes that work on a delegate but were measured slower than the
// alternative on it (docs/numerics.md lists them with the known broken ones). A bundle with one
// is exported, with a warning on stderr and a note in its metadata, and so on its model card;
// `qconv targets` lists them. Broken shapes are refused instead (Flags.Apply: per-channel int8 on
// the GPU, docs/constraints.md constraint 3; slow shapes are its constraint 13).

// SlowShape is one measured caveat.
type SlowShape struct {
	Device graph.Device
	What   string // the recipe feature, as the flags spell it
	Why    string // the measurement
	match  func(r *Recipe) bool
}

// SlowShapes is the table every warning, note and listing reads.
var SlowShapes = []SlowShape{
	{
		Device: graph.GPU, What: "int8 head per-block-16/8 (--head-granularity block16|block8)",
		Why: "measured 3.2x slower than per-block-32 on the GPU delegate",
		match: func(r *Recipe) bool {
			return r.Head != "tied" && (r.HeadGranularity == "block16" || r.HeadGranularity == "block8")
		},
	},
	{
		Device: graph.GPU, What: "LUT weights (int8-lut, int4-lut)",
		Why:   "measured slower than linear int8 (int8-block32) on the GPU delegate",
		match: func(r *Recipe) bool { return r.Weights == Int8LUT || r.Weights == Int4LUT },
	},
}

// SlowNotes are the caveats that apply to recipe r on target t, one sentence each.
func (t *Target) SlowNotes(r *Recipe) []string {
	var out []string
	for _, s := range SlowShapes {
		if s.Device == t.Device && s.match(r) {
			out = append(out, fmt.Sprintf("slow on this delegate: %s, %s", s.What, s.Why))
		}
	}
	return out
}
