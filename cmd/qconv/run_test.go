package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"qconv/internal/exitcode"
	"qconv/internal/golden"
	"qconv/oracle"
)

// execQconv runs one command line in-process and returns the exit code, stdout and stderr.
func execQconv(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	oldOut, oldErr := stdout, stderr
	stdout, stderr = &out, &errOut
	defer func() { stdout, stderr = oldOut, oldErr }()
	code := run(args)
	return code, out.String(), errOut.String()
}

func runDoc(t *testing.T, args ...string) runJSON {
	t.Helper()
	code, out, errOut := execQconv(t, args...)
	if code != 0 {
		t.Fatalf("qconv %v: exit %d: %s", args, code, errOut)
	}
	var doc runJSON
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("qconv %v: stdout is not one run document: %v\n%s", args, err, out)
	}
	return doc
}

// checkSteps compares the per-step fields with the goldens: ids, the probability margin
// recomputed from transformers' logits, and the top-5 logits read at the reported ids.
func checkSteps(t *testing.T, doc runJSON, p *golden.Prompt) {
	t.Helper()
	if !slices.Equal(doc.PromptIDs, p.IDs) {
		t.Errorf("%s: prompt_ids %v, want %v", p.Name, doc.PromptIDs, p.IDs)
	}
	if !slices.Equal(doc.GenIDs, p.GenIDs) {
		t.Errorf("%s: gen_ids %v, want %v", p.Name, doc.GenIDs, p.GenIDs)
	}
	if len(doc.Steps) != 16 {
		t.Fatalf("%s: %d steps", p.Name, len(doc.Steps))
	}
	nl, err := p.Tensor("next_logits")
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range doc.Steps {
		row := nl.Row(i)
		if len(s.Top5IDs) != 5 || len(s.Top5Logits) != 5 || s.Top5IDs[0] != doc.GenIDs[i] {
			t.Fatalf("%s step %d: %+v", p.Name, i, s)
		}
		for k, id := range s.Top5IDs {
			if d := math.Abs(float64(s.Top5Logits[k] - row[id])); d > 1e-3 {
				t.Errorf("%s step %d: logit of %d is %g, transformers %g", p.Name, i, id, s.Top5Logits[k], row[id])
			}
		}
		if want := oracle.Margin(row); math.Abs(s.Margin-want) > 1e-4 {
			t.Errorf("%s step %d: margin %g, from transformers' logits %g", p.Name, i, s.Margin, want)
		}
	}
}

// TestRunPromptTrained: every trained-fixture prompt's text encodes to its stored ids, and the
// greedy continuation and its text are transformers'.
func TestRunPromptTrained(t *testing.T) {
	fixtures, err := golden.Fixtures()
	if err != nil {
		t.Fatal(err)
	}
	fx := fixtures[0]
	for _, p := range fx.Golden.Prompts {
		doc := runDoc(t, "run", fx.Dir, "--prompt", p.Text, "--json")
		checkSteps(t, doc, p)
		if doc.GenText == nil || *doc.GenText != p.GenText {
			t.Errorf("%s: gen_text %v, want %q", p.Name, doc.GenText, p.GenText)
		}
		if doc.PromptText == nil || *doc.PromptText != p.Text || doc.Engine != "fp32-reference" {
			t.Errorf("%s: prompt_text %v, engine %q", p.Name, doc.PromptText, doc.Engine)
		}
	}
}

// TestRunIDs: --ids on the random fixtures (no tokenizer: no gen_text), including the
// multimodal layout, and -n.
func TestRunIDs(t *testing.T) {
	fixtures, err := golden.Fixtures()
	if err != nil {
		t.Fatal(err)
	}
	for _, fx := range fixtures[1:] {
		p, _ := fx.Golden.Prompt("p7")
		doc := runDoc(t, "run", fx.Dir, "--ids", joinInts(p.IDs), "--json")
		checkSteps(t, doc, p)
		if doc.GenText != nil || doc.PromptText != nil {
			t.Errorf("%s: text fields without a tokenizer: %v %v", fx.Name, doc.GenText, doc.PromptText)
		}
	}
	p, _ := fixtures[0].Golden.Prompt("h0")
	doc := runDoc(t, "run", fixtures[0].Dir, "--ids", strings.ReplaceAll(joinInts(p.IDs), ",", " , "), "-n", "3", "--json")
	if !slices.Equal(doc.GenIDs, p.GenIDs[:3]) || len(doc.Steps) != 3 || doc.GenText == nil {
		t.Errorf("-n 3: gen_ids %v, %d steps", doc.GenIDs, len(doc.Steps))
	}
}

// TestRunHuman: without --json, stdout stays empty and stderr carries the result.
func TestRunHuman(t *testing.T) {
	fixtures, err := golden.Fixtures()
	if err != nil {
		t.Fatal(err)
	}
	p, _ := fixtures[0].Golden.Prompt("h0")
	code, out, errOut := execQconv(t, "run", fixtures[0].Dir, "--prompt", p.Text)
	if code != 0 || out != "" {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	if !strings.Contains(errOut, fmt.Sprintf("%q", p.GenText)) || !strings.Contains(errOut, fmt.Sprint(p.GenIDs)) {
		t.Errorf("stderr lacks the generation:\n%s", errOut)
	}
}

func TestRunBadInput(t *testing.T) {
	td, err := golden.TestdataDir()
	if err != nil {
		t.Fatal(err)
	}
	trained := filepath.Join(td, "tinyqwen35-code")
	random := filepath.Join(td, "random", "tiny_tied_4L")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no prompt", []string{trained}, "--ids 1,2,3 or --prompt"},
		{"both", []string{trained, "--ids", "1", "--prompt", "x"}, "--ids and --prompt"},
		{"empty ids", []string{trained, "--ids", ""}, "--ids: empty"},
		{"blank ids", []string{trained, "--ids", " "}, "--ids: empty"},
		{"non-numeric", []string{trained, "--ids", "1,two,3"}, `--ids: item 1 "two"`},
		{"trailing comma", []string{trained, "--ids", "1,2,"}, `--ids: item 2 ""`},
		{"out of vocab", []string{trained, "--ids", "1,1024"}, "--ids: token id 1024 (position 1) is outside the model's vocabulary [0, 1024)"},
		{"negative", []string{random, "--ids", "-3"}, "--ids: token id -3"},
		{"empty prompt", []string{trained, "--prompt", ""}, "--prompt: empty"},
		{"no tokenizer", []string{random, "--prompt", "hello"}, "tokenizer.json"},
		{"zero tokens", []string{trained, "--ids", "1", "-n", "0"}, "-n/--tokens: 0"},
		{"bad -n", []string{trained, "--ids", "1", "-n", "many"}, "invalid argument"},
		{"no checkpoint", []string{filepath.Join(td, "nonexistent"), "--ids", "1"}, "nonexistent"},
		{"two args", []string{trained, trained, "--ids", "1"}, "accepts 1 arg"},
		{"unknown flag", []string{trained, "--ids", "1", "--temperature", "0.7"}, "unknown flag"},
	} {
		code, out, errOut := execQconv(t, append([]string{"run"}, c.args...)...)
		if code != exitcode.BadInput || out != "" || !strings.Contains(errOut, c.want) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 2 naming %q", c.name, code, out, errOut, c.want)
		}
	}
}

func joinInts(ids []int) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprint(id)
	}
	return strings.Join(s, ",")
}
