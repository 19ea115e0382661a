// Package tokenizer loads a Hugging Face tokenizer.json describing a byte-level BPE tokenizer (the kind Qwen
// models ship) and encodes and decodes text exactly as the Hugging Face tokenizers library does.
//
// Supported components: normalizer NFC (alone or in a Sequence); pre-tokenizers Split (regex or literal,
// Isolated behaviour) and ByteLevel, alone or in a Sequence; model BPE; post-processors ByteLevel and
// TemplateProcessing (single-sequence template); decoder ByteLevel. Anything else in the file is rejected by
// Load with an error naming the component, so a tokenizer is never silently approximated.
package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
	"golang.org/x/text/unicode/norm"
)

// gpt2Pattern is the word-splitting regex the ByteLevel pre-tokenizer applies when use_regex is true.
const gpt2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

// maxCacheWords bounds the per-word BPE cache; it is cleared when full.
const maxCacheWords = 1 << 16

// Tokenizer encodes text to token ids and back. It is safe for concurrent use.
type Tokenizer struct {
	vocab   map[string]int // model vocabulary plus added tokens (added tokens win)
	tokens  []string       // id -> token; "" where no token has the id
	special []bool         // id -> is a special added token

	rawAdded       addedMatcher // added tokens matched in the text before normalization
	normAdded      addedMatcher // added tokens matched after normalization
	nfc            bool
	steps          []preStep
	merges         map[uint64]merge // pair of ids -> merge
	ignoreMerges   bool
	prefix, suffix []int // ids the post-processor puts around the sequence

	bos, pad int // -1 when not named by the sibling config files
	eos      []int

	mu    sync.Mutex
	cache map[string][]int
}

// preStep is one pre-tokenization pass applied to every piece: optionally prepend a space, optionally split
// the piece on a regex (matches and gaps become separate pieces), optionally map its bytes to the byte-level
// alphabet.
type preStep struct {
	prefixSpace bool
	split       *regexp2.Regexp
	byteLevel   bool
}

type merge struct{ rank, id int32 }

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
		var line string
		if json.Unmarshal(raw, &line) == nil {
			pair = strings.Split(line, " ")
		} else if err := json.Unmarshal(raw, &pair); err != nil {
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
	if id < 0 || id > 1<<30 || tok == "" {
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

// addedMatcher finds added tokens in text: at the leftmost position where any token occurs, the longest.
type addedMatcher struct {
	tokens  []addedToken
	byFirst map[byte][]int // first byte -> indexes into tokens, longest first
}

type addedToken struct {
	content string
	id      int
}

func (m *addedMatcher) add(content string, id int) {
	if m.byFirst == nil {
		m.byFirst = map[byte][]int{}
	}
	m.tokens = append(m.tokens, addedToken{content, id})
	idx := append(m.byFirst[content[0]], len(m.tokens)-1)
	slices.SortStableFunc(idx, func(a, b int) int { return len(m.tokens[b].content) - len(m.tokens[a].content) })
	m.byFirst[content[0]] = idx
}

// split calls fn for each gap (id -1) and each added token found in s, in order; empty gaps are skipped.
func (m *addedMatcher) split(s string, fn func(piece string, id int) error) error {
	start := 0
	for i := 0; i < len(s); i++ {
		for _, k := range m.byFirst[s[i]] {
			tok := m.tokens[k]
			if !strings.HasPrefix(s[i:], tok.content) {
				continue
			}
			if start < i {
				if err := fn(s[start:i], -1); err != nil {
					return err
				}
			}
			if err := fn(tok.content, tok.id); err != nil {
				return err
			}
			start = i + len(tok.content)
			i = start - 1
			break
		}
	}
	if start < len(s) {
		return fn(s[start:], -1)
	}
	return nil
}

// Encode returns the token ids of text (which must be valid UTF-8), including any ids the tokenizer's
// post-processor adds, as Hugging Face's encode does by default.
func (t *Tokenizer) Encode(text string) ([]int, error) {
	if !utf8.ValidString(text) {
		return nil, fmt.Errorf("tokenizer: text is not valid UTF-8")
	}
	ids := append([]int(nil), t.prefix...)
	var pieces []string
	err := t.rawAdded.split(text, func(seg string, id int) error {
		if id >= 0 {
			ids = append(ids, id)
			return nil
		}
		if t.nfc {
			seg = norm.NFC.String(seg)
		}
		return t.normAdded.split(seg, func(seg string, id int) error {
			if id >= 0 {
				ids = append(ids, id)
				return nil
			}
			var err error
			if pieces, err = t.preTokenize(seg, pieces[:0]); err != nil {
				return err
			}
			for _, p := range pieces {
				if ids, err = t.appendBPE(ids, p); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return append(ids, t.suffix...), nil
}

// preTokenize applies every pre-tokenization step to seg and appends the resulting pieces to out.
func (t *Tokenizer) preTokenize(seg string, out []string) ([]string, error) {
	out = append(out, seg)
	var next []string
	for _, step := range t.steps {
		next = next[:0]
		for _, p := range out {
			if step.prefixSpace && !strings.HasPrefix(p, " ") {
				p = " " + p
			}
			start := len(next)
			if step.split == nil {
				next = append(next, p)
			} else {
				var err error
				if next, err = splitIsolated(step.split, p, next); err != nil {
					return nil, err
				}
			}
			if step.byteLevel {
				for i := start; i < len(next); i++ {
					next[i] = toByteLevel(next[i])
				}
			}
		}
		out, next = next, out
	}
	return out, nil
}

// splitIsolated appends the non-empty matches of re in s and the gaps between them to out.
func splitIsolated(re *regexp2.Regexp, s string, out []string) ([]string, error) {
	runes := []rune(s)
	prev := 0 // rune index
	m, err := re.FindRunesMatch(runes)
	for ; err == nil && m != nil; m, err = re.FindNextMatch(m) {
		if m.Length == 0 {
			continue
		}
		if prev < m.Index {
			out = append(out, string(runes[prev:m.Index]))
		}
		out = append(out, string(runes[m.Index:m.Index+m.Length]))
		prev = m.Index + m.Length
	}
	if err != nil {
		return nil, fmt.Errorf("tokenizer: regex %q: %w", re.String(), err)
	}
	if prev < len(runes) {
		out = append(out, string(runes[prev:]))
	}
	return out, nil
}

// appendBPE appends the ids of one pre-tokenized word, using the cache.
func (t *Tokenizer) appendBPE(ids []int, word string) ([]int, error) {
	t.mu.Lock()
	cached, ok := t.cache[word]
	t.mu.Unlock()
	if ok {
		return append(ids, cached...), nil
	}
	word = strings.Clone(word) // the cache must not pin the caller's text
	w, err := t.bpe(word)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	if len(t.cache) >= maxCacheWords {
		clear(t.cache)
	}
	t.cache[word] = w
	t.mu.Unlock()
	return append(ids, w...), nil
}

// Decode returns the text of ids, special tokens included as their content. Byte sequences that are not
// valid UTF-8 become U+FFFD, one per maximal invalid subsequence, as Hugging Face (Rust's
// String::from_utf8_lossy) does. An id that names no token is an error.
func (t *Tokenizer) Decode(ids []int) (string, error) { return t.decode(ids, false) }

// DecodeSkipSpecial is Decode leaving out special tokens (Hugging Face's skip_special_tokens=True).
func (t *Tokenizer) DecodeSkipSpecial(ids []int) (string, error) { return t.decode(ids, true) }

func (t *Tokenizer) decode(ids []int, skipSpecial bool) (string, error) {
	var raw []byte
	for i, id := range ids {
		tok, ok := t.Token(id)
		if !ok {
			return "", fmt.Errorf("tokenizer: decode: ids[%d] = %d is not a token id", i, id)
		}
		if skipSpecial && t.special[id] {
			continue
		}
		raw = appendFromByteLevel(raw, tok)
	}
	return lossyUTF8(raw), nil
}

// VocabSize is one more than the highest token id (model vocabulary and added tokens).
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// Token returns the token string of id.
func (t *Tokenizer) Token(id int) (string, bool) {
	if id < 0 || id >= len(t.tokens) || t.tokens[id] == "" {
		return "", false
	}
	return t.tokens[id], true
}

// TokenID returns the id of a token string (as stored in the vocabulary, e.g. "Ġthe", or an added token's
// content such as "<|im_end|>").
func (t *Tokenizer) TokenID(token string) (int, bool) {
	id, ok := t.vocab[token]
	return id, ok
}

// IsSpecial reports whether id is a special added token (such as <|endoftext|>).
func (t *Tokenizer) IsSpecial(id int) bool { return id >= 0 && id < len(t.special) && t.special[id] }
