package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// EOS returns the ids that end generation: generation_config.json's eos_token_id (a number or a list),
// then tokenizer_config.json's eos_token if not already listed. Empty when neither file names one.
func (t *Tokenizer) EOS() []int { return slices.Clone(t.eos) }

// BOS returns the beginning-of-sequence id named by generation_config.json's bos_token_id or, failing
// that, tokenizer_config.json's bos_token. It is informational: Encode adds only what the post-processor says.
func (t *Tokenizer) BOS() (int, bool) { return t.bos, t.bos >= 0 }

// Pad returns the padding id named by generation_config.json's pad_token_id or, failing that,
// tokenizer_config.json's pad_token.
func (t *Tokenizer) Pad() (int, bool) { return t.pad, t.pad >= 0 }

// loadSpecialConfig reads the optional sibling config files of a tokenizer.json in dir.
func (t *Tokenizer) loadSpecialConfig(dir string) error {
	var gen struct {
		EOS json.RawMessage `json:"eos_token_id"`
		BOS json.RawMessage `json:"bos_token_id"`
		Pad json.RawMessage `json:"pad_token_id"`
	}
	genPath := filepath.Join(dir, "generation_config.json")
	if err := readOptionalJSON(genPath, &gen); err != nil {
		return err
	}
	var eos, bos, pad []int
	for _, f := range []struct {
		raw  json.RawMessage
		name string
		dst  *[]int
	}{{gen.EOS, "eos_token_id", &eos}, {gen.BOS, "bos_token_id", &bos}, {gen.Pad, "pad_token_id", &pad}} {
		ids, err := t.parseIDs(f.raw)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", genPath, f.name, err)
		}
		*f.dst = ids
	}

	var tc struct {
		EOS json.RawMessage `json:"eos_token"`
		BOS json.RawMessage `json:"bos_token"`
		Pad json.RawMessage `json:"pad_token"`
	}
	tcPath := filepath.Join(dir, "tokenizer_config.json")
	if err := readOptionalJSON(tcPath, &tc); err != nil {
		return err
	}
	for _, f := range []struct {
		raw  json.RawMessage
		name string
		dst  *[]int
	}{{tc.EOS, "eos_token", &eos}, {tc.BOS, "bos_token", &bos}, {tc.Pad, "pad_token", &pad}} {
		id, ok, err := t.parseTokenName(f.raw)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", tcPath, f.name, err)
		}
		if ok && !slices.Contains(*f.dst, id) {
			*f.dst = append(*f.dst, id)
		}
	}
	t.eos = eos
	if len(bos) > 0 {
		t.bos = bos[0]
	}
	if len(pad) > 0 {
		t.pad = pad[0]
	}
	return nil
}

func readOptionalJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// parseIDs reads null, a token id or a list of token ids, each of which must name a token.
func (t *Tokenizer) parseIDs(raw json.RawMessage) ([]int, error) {
	if isNull(raw) {
		return nil, nil
	}
	var ids []int
	var one int
	if err := json.Unmarshal(raw, &one); err == nil {
		ids = []int{one}
	} else if err := json.Unmarshal(raw, &ids); err != nil {
		return nil, fmt.Errorf("%s is neither a token id nor a list of them", raw)
	}
	for _, id := range ids {
		if _, ok := t.Token(id); !ok {
			return nil, fmt.Errorf("%d is not a token id", id)
		}
	}
	return ids, nil
}

// parseTokenName reads null, a token's content, or an object {"content": ...}, and returns the token's id.
func (t *Tokenizer) parseTokenName(raw json.RawMessage) (int, bool, error) {
	if isNull(raw) {
		return 0, false, nil
	}
	var name string
	if err := json.Unmarshal(raw, &name); err != nil {
		var obj struct {
			Content *string `json:"content"`
		}
		if err := json.Unmarshal(raw, &obj); err != nil || obj.Content == nil {
			return 0, false, fmt.Errorf("%s is neither a token nor an object with content", raw)
		}
		name = *obj.Content
	}
	id, ok := t.TokenID(name)
	if !ok {
		return 0, false, fmt.Errorf("%q is not a token", name)
	}
	return id, true, nil
}
