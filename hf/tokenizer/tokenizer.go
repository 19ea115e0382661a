// Package tokenizer loads a Hugging Face tokenizer.json describing a byte-level BPE tokenizer (the kind Qwen
// models ship) and encodes and decodes text exactly as the Hugging Face tokenizers library does.
//
// Supported components: normalizer NFC (alone or in a Sequence); pre-tokenizers Split (regex or literal,
// Isolated behaviour) and ByteLevel, alone or in a Sequence; model BPE; post-processors ByteLevel and
// TemplateProcessing (single-sequence template); decoder ByteLevel. Anything else in the file is rejected by
// Parse with an error naming the component, so a tokenizer is never silently approximated.
//
// Known differences from Hugging Face, all outside what it accepts or about Unicode versions: Encode rejects
// invalid UTF-8 (HF only takes valid strings) and Decode rejects unknown ids (HF drops them); regex classes
// follow Go's Unicode tables (15.0 in Go 1.26) where HF's regex engine knows Unicode 16, so characters new
// since 15.0 may split differently; HF's NFC tables predate Unicode 10, so around a few dozen newer
// combining marks NFC may differ. The tests pin these as the only disagreements.
package tokenizer

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
	"golang.org/x/text/unicode/norm"
)

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
			if pieces, err = t.preTokenize(seg, pieces); err != nil {
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

// preTokenize returns the pieces every pre-tokenization step makes of seg, reusing buf's storage.
func (t *Tokenizer) preTokenize(seg string, buf []string) ([]string, error) {
	out := append(buf[:0], seg)
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
