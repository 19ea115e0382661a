package bundle

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"qconv/oracle"
)

// The embedded gate report is the report alone, or {companion, decode}; the type says which, and
// a pair without its check is refused.
func TestGateReportRecordForms(t *testing.T) {
	rep := &oracle.GateReport{Passed: true, Prompts: []oracle.GatePromptReport{{Prompt: oracle.GatePrompt{Name: "p", Text: "<a & b>"}}}}
	alone, err := encode(GateReportRecord{Report: rep})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(alone), `{"passed":true,`) || !strings.Contains(string(alone), `"<a & b>"`) {
		t.Errorf("report alone: %s", alone)
	}
	pair, err := encode(GateReportRecord{Report: rep, Companion: &CompanionCheck{Passed: true}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(pair), `{"companion":{"passed":true,`) || !strings.Contains(string(pair), `,"decode":{"passed":true,`) {
		t.Errorf("pair: %s", pair)
	}
	for _, c := range []struct {
		in        []byte
		companion bool
	}{{alone, false}, {pair, true}} {
		var g GateReportRecord
		if err := json.Unmarshal(c.in, &g); err != nil {
			t.Fatal(err)
		}
		if g.Report == nil || len(g.Report.Prompts) != 1 || g.Report.Prompts[0].Prompt.Text != "<a & b>" || (g.Companion != nil) != c.companion {
			t.Errorf("read back %+v", g)
		}
	}
	var g GateReportRecord
	if err := json.Unmarshal([]byte(`{"decode":{"passed":true}}`), &g); err == nil || !strings.Contains(err.Error(), "no companion check") {
		t.Errorf("a pair without its check: %v", err)
	}
}

// encode is how the metadata writer encodes: no HTML escaping.
func encode(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	err := enc.Encode(v)
	return bytes.TrimSpace(b.Bytes()), err
}
