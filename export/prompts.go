package export

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"qconv/hf"
	"qconv/hf/tokenizer"
	"qconv/internal/exitcode"
	"qconv/oracle"
)

// defaultTexts are the built-in gate prompts for checkpoints with a tokenizer: code the embedded
// fixture (trained on Python source) continues with comfortable margins, and plain English for
// general models. Low-margin steps count as ties and are reported, not hidden.
var defaultTexts = []struct{ name, text string }{
	{"code-def", "def _get_unpack_format(self, formatter):\n        self"},
	{"code-loop", "    for i in range(len(self.data)):\n        if self.data[i] is None:\n            "},
	{"code-class", "class Queue:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):\n        self.items."},
	{"code-import", "import os\nimport sys\n\n\ndef main(argv):\n    if len(argv) < 2:\n        "},
	{"english", "The capital of France is Paris. The capital of Germany is"},
	{"code-long", longCodeText},
}

// defaultIDPrompts are used when a checkpoint has no tokenizer: deterministic ids of the goldens'
// prompt lengths, and a long one (repeatIDPrompt).
func defaultIDPrompts(vocab int) []oracle.GatePrompt {
	var out []oracle.GatePrompt
	state := uint64(0x9e3779b97f4a7c15)
	for _, n := range []int{1, 7, 33, 70} {
		p := oracle.GatePrompt{Name: fmt.Sprintf("ids-%d", n)}
		for i := 0; i < n; i++ {
			state = state*6364136223846793005 + 1442695040888963407
			p.IDs = append(p.IDs, 1+int(state>>33)%(vocab-1))
		}
		out = append(out, p)
	}
	return append(out, repeatIDPrompt(vocab, LongIDPromptBlock, LongIDPromptTokens))
}

// DefaultPrompts is the built-in prompt set for ck: text prompts through its tokenizer when it
// has one, else id prompts.
func DefaultPrompts(ck *hf.Checkpoint) ([]oracle.GatePrompt, error) {
	tokPath := filepath.Join(ck.Dir, "tokenizer.json")
	if _, err := os.Stat(tokPath); err != nil {
		return defaultIDPrompts(ck.Config.VocabSize), nil
	}
	tok, err := tokenizer.Load(tokPath)
	if err != nil {
		return nil, exitcode.Bad(err)
	}
	var out []oracle.GatePrompt
	for _, d := range defaultTexts {
		if d.text == longCodeText {
			if d.text, err = longPrefix(tok, d.text, LongPromptTokens); err != nil {
				return nil, exitcode.Badf("%s: encoding the built-in gate prompt %s: %w", tokPath, d.name, err)
			}
		}
		ids, err := tok.Encode(d.text)
		if err != nil {
			return nil, exitcode.Badf("%s: encoding the built-in gate prompt %s: %w", tokPath, d.name, err)
		}
		if len(ids) == 0 {
			continue
		}
		for _, id := range ids {
			if id >= ck.Config.VocabSize {
				return nil, exitcode.Badf("%s: token id %d of the built-in gate prompt %s is outside the model's vocabulary (%d)", tokPath, id, d.name, ck.Config.VocabSize)
			}
		}
		out = append(out, oracle.GatePrompt{Name: d.name, Text: d.text, IDs: ids})
	}
	return out, nil
}

// LoadPrompts reads a --gate-prompts JSONL file: one object per line, {"ids": [...]} or
// {"text": "..."} (text needs the checkpoint's tokenizer), optionally with a "name". Errors name
// the file and line.
func LoadPrompts(path string, ck *hf.Checkpoint) ([]oracle.GatePrompt, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, exitcode.Badf("flag --gate-prompts: %w", err)
	}
	var tok *tokenizer.Tokenizer
	var out []oracle.GatePrompt
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	line := 0
	for sc.Scan() {
		line++
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		var rec struct {
			Name string  `json:"name"`
			Text *string `json:"text"`
			IDs  []int   `json:"ids"`
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rec); err != nil {
			return nil, exitcode.Badf("%s:%d: %v (want {\"ids\": [...]} or {\"text\": \"...\"})", path, line, err)
		}
		p := oracle.GatePrompt{Name: rec.Name, IDs: rec.IDs}
		if p.Name == "" {
			p.Name = fmt.Sprintf("line%d", line)
		}
		switch {
		case rec.Text != nil && rec.IDs != nil:
			return nil, exitcode.Badf("%s:%d: give either ids or text, not both", path, line)
		case rec.Text != nil:
			if tok == nil {
				tp := filepath.Join(ck.Dir, "tokenizer.json")
				if tok, err = tokenizer.Load(tp); err != nil {
					return nil, exitcode.Badf("%s:%d: a text prompt needs the checkpoint's tokenizer: %w", path, line, err)
				}
			}
			p.Text = *rec.Text
			if p.IDs, err = tok.Encode(p.Text); err != nil {
				return nil, exitcode.Badf("%s:%d: %w", path, line, err)
			}
		}
		if len(p.IDs) == 0 {
			return nil, exitcode.Badf("%s:%d: empty prompt", path, line)
		}
		for _, id := range p.IDs {
			if id < 0 || id >= ck.Config.VocabSize {
				return nil, exitcode.Badf("%s:%d: token id %d outside the vocabulary [0, %d)", path, line, id, ck.Config.VocabSize)
			}
		}
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		return nil, exitcode.Badf("%s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, exitcode.Badf("%s: no prompts", path)
	}
	return out, nil
}
