package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/dlclark/regexp2"
	"golang.org/x/text/unicode/norm"
)

// gpt2Pattern is the word-splitting regex the ByteLevel pre-tokenizer applies when use_regex is true.
const gpt2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

type fileJSON struct {
	Truncation    json.RawMessage  `json:"truncation"`
	Padding       json.RawMessage  `json:"padding"`
	AddedTokens   []addedTokenJSON `json:"added_tokens"`
	Normalizer    json.RawMessage  `json:"normalizer"`
	PreTokenizer  json.RawMessage  `json:"pre_tokenizer"`
	PostProcessor json.RawMessage  `json:"post_processor"`
	Decoder       json.RawMessage  `json:"decoder"`
	Model         *modelJSON       `json:"model"`
}

type addedTokenJSON struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

type modelJSON struct {
	Type                    string            `json:"type"`
	Dropout                 *float64          `json:"dropout"`
	UnkToken                *string           `json:"unk_token"`
	ContinuingSubwordPrefix *string           `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string           `json:"end_of_word_suffix"`
	ByteFallback            bool              `json:"byte_fallback"`
	IgnoreMerges            bool              `json:"ignore_merges"`
	Vocab                   map[string]int    `json:"vocab"`
	Merges                  []json.RawMessage `json:"merges"`
}

// componentJSON holds the fields of every normalizer, pre-tokenizer, post-processor and decoder we accept.
type componentJSON struct {
	Type          string            `json:"type"`
	Normalizers   []json.RawMessage `json:"normalizers"`
	Pretokenizers []json.RawMessage `json:"pretokenizers"`
	Processors    []json.RawMessage `json:"processors"`
	Pattern       struct {
		Regex  *string `json:"Regex"`
		String *string `json:"String"`
	} `json:"pattern"`
	Behavior       string `json:"behavior"`
	AddPrefixSpace *bool  `json:"add_prefix_space"`
	UseRegex       *bool  `json:"use_regex"`
	Single         []struct {
		Sequence     *struct{ ID string } `json:"Sequence"`
		SpecialToken *struct{ ID string } `json:"SpecialToken"`
	} `json:"single"`
	SpecialTokens map[string]struct {
		IDs []int `json:"ids"`
	} `json:"special_tokens"`
}

// Load reads a tokenizer.json and, when present beside it, tokenizer_config.json and generation_config.json
// for the special token ids returned by EOS, BOS and Pad.
func Load(path string) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := t.loadSpecialConfig(filepath.Dir(path)); err != nil {
		return nil, err
	}
	return t, nil
}

// Parse builds a Tokenizer from the contents of a tokenizer.json. EOS, BOS and Pad report none.
func Parse(data []byte) (*Tokenizer, error) {
	var f fileJSON
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	if !isNull(f.Truncation) {
		return nil, fmt.Errorf("truncation: not supported (must be null)")
	}
	if !isNull(f.Padding) {
		return nil, fmt.Errorf("padding: not supported (must be null)")
	}
	t := &Tokenizer{bos: -1, pad: -1, cache: map[string][]int{}}
	if err := t.setModel(f.Model); err != nil {
		return nil, err
	}
	if err := t.setNormalizer(f.Normalizer, "normalizer"); err != nil {
		return nil, err
	}
	if err := t.setAddedTokens(f.AddedTokens); err != nil {
		return nil, err
	}
	if err := t.addPreTokenizer(f.PreTokenizer, "pre_tokenizer"); err != nil {
		return nil, err
	}
	if err := t.addPostProcessor(f.PostProcessor, "post_processor"); err != nil {
		return nil, err
	}
	var dec componentJSON
	if err := decodeComponent(f.Decoder, "decoder", &dec); err != nil {
		return nil, err
	}
	if dec.Type != "ByteLevel" {
		return nil, fmt.Errorf("decoder: type %q not supported (only ByteLevel)", dec.Type)
	}
	return t, nil
}

func isNull(m json.RawMessage) bool { return len(m) == 0 || string(m) == "null" }

func decodeComponent(m json.RawMessage, where string, c *componentJSON) error {
	if isNull(m) {
		return fmt.Errorf("%s: missing", where)
	}
	if err := json.Unmarshal(m, c); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	return nil
}

func (t *Tokenizer) setModel(m *modelJSON) error {
	switch {
	case m == nil:
		return fmt.Errorf("model: missing")
	case m.Type != "BPE":
		return fmt.Errorf("model.type: %q not supported (only BPE)", m.Type)
	case m.Dropout != nil && *m.Dropout != 0:
		return fmt.Errorf("model.dropout: %v not supported (must be null)", *m.Dropout)
	case m.UnkToken != nil:
		return fmt.Errorf("model.unk_token: %q not supported (must be null)", *m.UnkToken)
	case m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "":
		return fmt.Errorf("model.continuing_subword_prefix: not supported")
	case m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "":
		return fmt.Errorf("model.end_of_word_suffix: not supported")
	case m.ByteFallback:
		return fmt.Errorf("model.byte_fallback: not supported")
	}
	t.ignoreMerges = m.IgnoreMerges
	t.vocab = make(map[string]int, len(m.Vocab))
	for tok, id := range m.Vocab {
		if err := t.setToken(tok, id, "model.vocab"); err != nil {
			return err
		}
	}
	t.merges = make(map[uint64]merge, len(m.Merges))
	for rank, raw := range m.Merges {
		var pair []string
		var err error
		if len(raw) > 0 && raw[0] == '"' { // "a b" (older files) or ["a", "b"]
			var line string
			err = json.Unmarshal(raw, &line)
			pair = strings.Split(line, " ")
		} else {
			err = json.Unmarshal(raw, &pair)
		}
		if err != nil {
			return fmt.Errorf("model.merges[%d]: %w", rank, err)
		}
		if len(pair) != 2 {
			return fmt.Errorf("model.merges[%d]: %s is not a pair of tokens", rank, raw)
		}
		a, okA := t.vocab[pair[0]]
		b, okB := t.vocab[pair[1]]
		id, okAB := t.vocab[pair[0]+pair[1]]
		if !okA || !okB || !okAB {
			return fmt.Errorf("model.merges[%d]: %s uses or makes a token missing from model.vocab", rank, raw)
		}
		if _, dup := t.merges[pairKey(a, b)]; !dup { // the first (best-ranked) occurrence wins
			t.merges[pairKey(a, b)] = merge{int32(rank), int32(id)}
		}
	}
	return nil
}

func pairKey(a, b int) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// setToken records id <-> tok in the lookup tables.
func (t *Tokenizer) setToken(tok string, id int, where string) error {
	if id < 0 || id >= 1<<24 || tok == "" {
		return fmt.Errorf("%s: invalid entry %q: %d", where, tok, id)
	}
	if id >= len(t.tokens) {
		t.tokens = append(t.tokens, make([]string, id+1-len(t.tokens))...)
		t.special = append(t.special, make([]bool, id+1-len(t.special))...)
	}
	if old := t.tokens[id]; old != "" && old != tok && where == "model.vocab" {
		return fmt.Errorf("%s: id %d used by both %q and %q", where, id, old, tok)
	}
	t.tokens[id] = tok
	t.vocab[tok] = id
	return nil
}

func (t *Tokenizer) setAddedTokens(added []addedTokenJSON) error {
	for i, a := range added {
		where := fmt.Sprintf("added_tokens[%d] (%q)", i, a.Content)
		if a.SingleWord || a.LStrip || a.RStrip {
			return fmt.Errorf("%s: single_word, lstrip and rstrip are not supported", where)
		}
		if a.Normalized && t.nfc { // as HF, a normalized token is itself normalized, matched and decoded so
			a.Content = norm.NFC.String(a.Content)
		}
		if err := t.setToken(a.Content, a.ID, where); err != nil {
			return err
		}
		t.special[a.ID] = a.Special
		if a.Normalized {
			t.normAdded.add(a.Content, a.ID)
		} else {
			t.rawAdded.add(a.Content, a.ID)
		}
	}
	return nil
}

func (t *Tokenizer) setNormalizer(m json.RawMessage, where string) error {
	if isNull(m) {
		return nil
	}
	var c componentJSON
	if err := decodeComponent(m, where, &c); err != nil {
		return err
	}
	switch c.Type {
	case "NFC":
		t.nfc = true
	case "Sequence":
		for i, n := range c.Normalizers {
			if err := t.setNormalizer(n, fmt.Sprintf("%s.normalizers[%d]", where, i)); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("%s: type %q not supported (only NFC)", where, c.Type)
	}
	return nil
}

func (t *Tokenizer) addPreTokenizer(m json.RawMessage, where string) error {
	if isNull(m) {
		return nil
	}
	var c componentJSON
	if err := decodeComponent(m, where, &c); err != nil {
		return err
	}
	switch c.Type {
	case "Sequence":
		for i, p := range c.Pretokenizers {
			if err := t.addPreTokenizer(p, fmt.Sprintf("%s.pretokenizers[%d]", where, i)); err != nil {
				return err
			}
		}
		return nil
	case "Split":
		// Isolated keeps matches and gaps as separate pieces, so inverting the pattern changes nothing.
		if c.Behavior != "Isolated" {
			return fmt.Errorf("%s: Split behavior %q not supported (only Isolated)", where, c.Behavior)
		}
		var pattern string
		switch p := c.Pattern; {
		case p.Regex != nil:
			pattern = *p.Regex
		case p.String != nil:
			pattern = regexp2.Escape(*p.String)
		default:
			return fmt.Errorf("%s: Split pattern missing", where)
		}
		folded, err := expandCaseFolds(pattern)
		if err != nil {
			return fmt.Errorf("%s: Split pattern %q: %w", where, pattern, err)
		}
		re, err := regexp2.Compile(folded, regexp2.None)
		if err != nil {
			return fmt.Errorf("%s: Split pattern %q: %w", where, pattern, err)
		}
		t.steps = append(t.steps, preStep{split: re})
		return nil
	case "ByteLevel":
		if c.AddPrefixSpace == nil {
			return fmt.Errorf("%s: ByteLevel add_prefix_space missing", where)
		}
		step := preStep{prefixSpace: *c.AddPrefixSpace, byteLevel: true}
		if c.UseRegex == nil || *c.UseRegex { // HF's default is true
			step.split = regexp2.MustCompile(gpt2Pattern, regexp2.None)
		}
		t.steps = append(t.steps, step)
		return nil
	}
	return fmt.Errorf("%s: type %q not supported (only Sequence, Split, ByteLevel)", where, c.Type)
}

// expandCaseFolds rewrites each literal inside a (?i:...) group whose case-folding orbit has more than two
// members into a class of the whole orbit, e.g. s -> [sSſ]. HF's regex engine (Oniguruma) matches by case
// folding, so (?i:'s) matches "'ſ"; regexp2 compares lowercase forms, which differ for ſ, K, ς and the like.
func expandCaseFolds(pattern string) (string, error) {
	var b strings.Builder
	var groups []bool // per open group: is it case-insensitive
	rs := []rune(pattern)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		fold := len(groups) > 0 && groups[len(groups)-1]
		switch {
		case r == '\\' && i+1 < len(rs):
			end := i + 2
			if (rs[i+1] == 'p' || rs[i+1] == 'P') && end < len(rs) && rs[end] == '{' {
				for end < len(rs) && rs[end-1] != '}' {
					end++
				}
			}
			b.WriteString(string(rs[i:end]))
			i = end - 1
		case r == '(':
			rest := string(rs[i:])
			if strings.HasPrefix(rest, "(?i:") {
				groups = append(groups, true)
				b.WriteString("(?i:")
				i += 3
				continue
			}
			if len(rest) > 2 && rest[1] == '?' && !strings.ContainsAny(rest[2:3], ":=!<>") {
				return "", fmt.Errorf("inline flags %q not supported", rest[:min(len(rest), 6)])
			}
			groups = append(groups, fold)
			b.WriteRune(r)
		case r == ')':
			if len(groups) > 0 {
				groups = groups[:len(groups)-1]
			}
			b.WriteRune(r)
		case r == '[' && fold:
			return "", fmt.Errorf("character class inside a case-insensitive group not supported")
		case r == '[': // copy the class whole: parentheses inside it are not groups
			end := i + 1
			if end < len(rs) && rs[end] == '^' {
				end++
			}
			for end++; end < len(rs) && rs[end-1] != ']'; end++ {
				if rs[end-1] == '\\' {
					end++
				}
			}
			b.WriteString(string(rs[i:min(end, len(rs))]))
			i = end - 1
		case fold && unicode.SimpleFold(unicode.SimpleFold(r)) != r:
			b.WriteRune('[')
			for f := r; ; {
				b.WriteRune(f)
				if f = unicode.SimpleFold(f); f == r {
					break
				}
			}
			b.WriteRune(']')
		default:
			b.WriteRune(r)
		}
	}
	return b.String(), nil
}

func (t *Tokenizer) addPostProcessor(m json.RawMessage, where string) error {
	if isNull(m) {
		return nil
	}
	var c componentJSON
	if err := decodeComponent(m, where, &c); err != nil {
		return err
	}
	switch c.Type {
	case "ByteLevel": // only adjusts offsets
		return nil
	case "Sequence":
		for i, p := range c.Processors {
			if err := t.addPostProcessor(p, fmt.Sprintf("%s.processors[%d]", where, i)); err != nil {
				return err
			}
		}
		return nil
	case "TemplateProcessing":
		var before, after []int
		seen := 0
		for i, piece := range c.Single {
			switch {
			case piece.Sequence != nil && piece.Sequence.ID == "A":
				seen++
			case piece.SpecialToken != nil:
				st, ok := c.SpecialTokens[piece.SpecialToken.ID]
				if !ok {
					return fmt.Errorf("%s.single[%d]: special token %q not in special_tokens", where, i, piece.SpecialToken.ID)
				}
				if seen == 0 {
					before = append(before, st.IDs...)
				} else {
					after = append(after, st.IDs...)
				}
			default:
				return fmt.Errorf("%s.single[%d]: unsupported template piece", where, i)
			}
		}
		if seen != 1 {
			return fmt.Errorf("%s.single: template must contain sequence A exactly once", where)
		}
		t.prefix = append(before, t.prefix...)
		t.suffix = append(t.suffix, after...)
		return nil
	}
	return fmt.Errorf("%s: type %q not supported (only ByteLevel, TemplateProcessing, Sequence)", where, c.Type)
}
