package bundle

import (
	"bytes"
	"encoding/json"
	"fmt"
	"qconv/hf"
	"qconv/oracle"
	"qconv/quant"
	"strings"
)

// CompanionCheck is the prefill companion's rule: decoding after it equals decoding without it.
type CompanionCheck struct {
	Passed  bool              `json:"passed"`
	Prompts []CompanionPrompt `json:"prompts"`
}

// CompanionPrompt compares one prompt with and without the companion.
type CompanionPrompt struct {
	Name         string  `json:"name"`
	Blocks       int     `json:"prefill_blocks"`
	DecodeOnly   []int   `json:"decode_only_ids"`
	WithPrefill  []int   `json:"with_prefill_ids"`
	MaxLogitDiff float64 `json:"max_logit_diff"` // over the rows compared before any divergence
	// EndCosine is the cosine of the row after the prompt's last token through the other path
	// (the companion, @prefill, whole-prompt @main) with the token-by-token row; below
	// gating.MinPathCosine the prompt fails whatever the ids do (nil in bundles written before it
	// existed).
	EndCosine *float64 `json:"end_cosine,omitempty"`
	Identical bool     `json:"identical"`
	// FirstDivergence is the first step whose ids differ (-1 when none); a divergence is a tie,
	// and passes, where the decode-only path's top-2 probability margin is below the gate's.
	FirstDivergence  int     `json:"first_divergence"`
	DivergenceMargin float64 `json:"divergence_margin,omitempty"`
	Passed           bool    `json:"passed"`
	// DecodeOnlyFrom says where the decode-only ids came from when not decoded here.
	DecodeOnlyFrom string `json:"decode_only_from,omitempty"`
}

// StressGate is the stress gate's verdict beside the exact one.
type StressGate struct {
	Numerics string `json:"numerics"` // "fp16-accumulate"
	// Gates says whether this verdict decided the bundle's gate (--gate-stress gate).
	Gates            bool    `json:"gates"`
	Passed           bool    `json:"passed"`
	TeacherForced    string  `json:"teacher_forced"`
	Greedy           string  `json:"greedy"`
	MinPrefillCosine float64 `json:"min_prefill_cosine"`
	// ExactMinPrefillCosine is the exact-emulation gate's worst cosine, for comparison.
	ExactMinPrefillCosine float64 `json:"exact_min_prefill_cosine"`
	FirstFailure          string  `json:"first_failure,omitempty"`
}

// StressLine is the one-line account inspect and the export summary print.
func (s *StressGate) StressLine() string {
	role := "recorded, does not gate"
	if s.Gates {
		role = "gates"
	}
	v := "passed"
	if !s.Passed {
		v = "FAILED"
	}
	return fmt.Sprintf("%s stress %s (%s): teacher-forced %s, greedy %s, worst prefill cosine %.6f (exact %.6f)",
		s.Numerics, v, role, s.TeacherForced, s.Greedy, s.MinPrefillCosine, s.ExactMinPrefillCosine)
}

// TensorPlan is one row of a bundle's per-tensor scheme table: how a checkpoint tensor is stored.
type TensorPlan struct {
	Name        string         `json:"name"`
	Kind        hf.Kind        `json:"kind"`
	Shape       []int          `json:"shape"`
	Format      string         `json:"format"` // f16, f32, int8, int4, lut8, lut4
	Granularity string         `json:"granularity,omitempty"`
	BlockSize   int            `json:"block_size,omitempty"`
	Scheme      string         `json:"scheme,omitempty"`
	Bytes       int64          `json:"bytes"`
	Note        string         `json:"note,omitempty"`
	Metrics     *quant.Metrics `json:"metrics,omitempty"`
}

// PublishedAs records a published name that differs from the one the bytes derive (a legacy
// download path kept on purpose). Inspect accepts the directory name only when this says so.
type PublishedAs struct {
	Name        string `json:"name"`         // the published directory (or asset, without .aimodel)
	DerivedName string `json:"derived_name"` // the name the naming rule gives the bytes
	Reason      string `json:"reason"`
}

// NamingNote is the sentence card and release print for a legacy name: what the name says that
// the bytes do not, and why it is kept.
func (p *PublishedAs) NamingNote() string {
	pub, der := strings.Split(p.Name, "_"), strings.Split(p.DerivedName, "_")
	onlyPub, onlyDer := missing(pub, der), missing(der, pub)
	var what string
	switch {
	case len(onlyPub) > 0 && len(onlyDer) > 0:
		what = fmt.Sprintf("the name says `%s` where the bytes hold `%s`", strings.Join(onlyPub, "_"), strings.Join(onlyDer, "_"))
	case len(onlyDer) > 0:
		what = fmt.Sprintf("the name leaves out `%s`, which the bytes hold", strings.Join(onlyDer, "_"))
	case len(onlyPub) > 0:
		what = fmt.Sprintf("the name adds `%s`, which the bytes do not hold", strings.Join(onlyPub, "_"))
	default:
		what = "the name orders its parts differently from the naming rule"
	}
	return fmt.Sprintf("`%s` is a legacy name: %s (the naming rule names these bytes `%s`); %s", p.Name, what, p.DerivedName, strings.TrimSuffix(p.Reason, "."))
}

// missing lists the parts of a that b lacks, in a's order.
func missing(a, b []string) []string {
	in := map[string]bool{}
	for _, s := range b {
		in[s] = true
	}
	var out []string
	for _, s := range a {
		if !in[s] {
			out = append(out, s)
		}
	}
	return out
}

// GateReportRecord is the gate report a bundle embeds (qconv.gate_report): the report alone, or,
// for a bundle whose gate adds a check of its other entry (an ios-gpu prefill companion, a stock
// bundle's @prefill), {"companion": check, "decode": report}. The type says which; nothing is
// re-marshalled to find out.
type GateReportRecord struct {
	Report    *oracle.GateReport
	Companion *CompanionCheck // nil: the report alone
}

// gateReportPair is the JSON form of a report with its companion check.
type gateReportPair struct {
	Companion *CompanionCheck    `json:"companion"`
	Decode    *oracle.GateReport `json:"decode"`
}

// MarshalJSON writes the report, or the pair when a companion check is present.
func (g GateReportRecord) MarshalJSON() ([]byte, error) {
	var v any = g.Report
	if g.Companion != nil {
		v = gateReportPair{Companion: g.Companion, Decode: g.Report}
	}
	// As the metadata writer encodes: no HTML escaping (prompt texts keep their < and &).
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// UnmarshalJSON reads either form; a pair must hold both its report and its check.
func (g *GateReportRecord) UnmarshalJSON(b []byte) error {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(b, &keys); err != nil {
		return fmt.Errorf("gate_report: %v", err)
	}
	if d, ok := keys["decode"]; ok && string(d) != "null" {
		var pair gateReportPair
		if err := DecodeStrict(b, &pair); err != nil {
			return fmt.Errorf("gate_report: %v", err)
		}
		if pair.Companion == nil {
			return fmt.Errorf("gate_report has a decode report but no companion check")
		}
		*g = GateReportRecord{Report: pair.Decode, Companion: pair.Companion}
		return nil
	}
	rep := &oracle.GateReport{}
	if err := DecodeStrict(b, rep); err != nil {
		return fmt.Errorf("gate_report: %v", err)
	}
	*g = GateReportRecord{Report: rep}
	return nil
}
