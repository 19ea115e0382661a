package tokenizer

import (
	"fmt"
	"unicode/utf8"
)

// byteChar maps each byte to the printable character GPT-2's byte-level alphabet uses for it: printable
// Latin-1 bytes stand for themselves, the other 68 bytes take code points 256, 257, ... in byte order.
// charByte is the inverse, indexed by code point (-1: not in the alphabet).
var byteChar, charByte = byteLevelAlphabet()

func byteLevelAlphabet() (bc [256]rune, cb [324]int16) {
	for i := range cb {
		cb[i] = -1
	}
	next := rune(256)
	for b := range 256 {
		printable := (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE
		if printable {
			bc[b] = rune(b)
		} else {
			bc[b] = next
			next++
		}
		cb[bc[b]] = int16(b)
	}
	return bc, cb
}

// toByteLevel spells the bytes of s in the byte-level alphabet.
func toByteLevel(s string) string {
	out := make([]rune, len(s))
	for i := range len(s) {
		out[i] = byteChar[s[i]]
	}
	return string(out)
}

// appendFromByteLevel appends the bytes a token spells in the byte-level alphabet; a token with any
// character outside the alphabet (e.g. an added token containing a space) contributes its UTF-8 bytes.
func appendFromByteLevel(dst []byte, tok string) []byte {
	n := len(dst)
	for _, r := range tok {
		if r >= rune(len(charByte)) || charByte[r] < 0 {
			return append(dst[:n], tok...)
		}
		dst = append(dst, byte(charByte[r]))
	}
	return dst
}

// lossyUTF8 converts b to a string, replacing each maximal subpart of an ill-formed sequence (Unicode's
// recommended practice, which Rust's from_utf8_lossy follows) with one U+FFFD.
func lossyUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	out := make([]byte, 0, len(b)+8)
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r != utf8.RuneError || n > 1 {
			out = append(out, b[:n]...)
			b = b[n:]
			continue
		}
		out = append(out, "\uFFFD"...)
		b = b[invalidPrefixLen(b):]
	}
	return string(out)
}

// invalidPrefixLen returns the length of the maximal prefix of b (which does not start with a valid UTF-8
// sequence) that could begin a valid sequence, at least 1.
func invalidPrefixLen(b []byte) int {
	need, lo, hi := 0, byte(0x80), byte(0xBF)
	switch c := b[0]; {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c == 0xED:
		need, hi = 2, 0x9F // no surrogates
	case c >= 0xE1 && c <= 0xEF:
		need = 2
	case c == 0xF0:
		need, lo = 3, 0x90
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	case c == 0xF4:
		need, hi = 3, 0x8F
	default:
		return 1
	}
	i := 1
	for ; i <= need && i < len(b); i++ {
		if b[i] < lo || b[i] > hi {
			break
		}
		lo, hi = 0x80, 0xBF
	}
	return i
}

// bpe splits one pre-tokenized word into its characters and applies merges, always the best-ranked
// applicable pair first and the leftmost among equals, as Hugging Face's BPE model does.
func (t *Tokenizer) bpe(word string) ([]int, error) {
	if t.ignoreMerges {
		if id, ok := t.vocab[word]; ok {
			return []int{id}, nil
		}
	}
	type symbol struct {
		id, prev, next int
		gone           bool
	}
	syms := make([]symbol, 0, len(word))
	var buf [utf8.UTFMax]byte
	for _, r := range word {
		id, ok := t.vocab[string(utf8.AppendRune(buf[:0], r))]
		if !ok {
			return nil, fmt.Errorf("tokenizer: character %q of %q is not in model.vocab (no unk_token)", r, word)
		}
		syms = append(syms, symbol{id: id, prev: len(syms) - 1, next: len(syms) + 1})
	}
	if len(syms) == 0 {
		return nil, nil
	}
	syms[len(syms)-1].next = -1

	var h candHeap
	push := func(pos int) {
		if m, ok := t.merges[pairKey(syms[pos].id, syms[syms[pos].next].id)]; ok {
			h.push(candidate{m.rank, int32(pos), m.id})
		}
	}
	for i := 0; i+1 < len(syms); i++ {
		push(i)
	}
	for len(h) > 0 {
		c := h.pop()
		s := &syms[c.pos]
		if s.gone || s.next < 0 {
			continue
		}
		// The candidate is stale if either symbol changed since it was pushed.
		if m, ok := t.merges[pairKey(s.id, syms[s.next].id)]; !ok || m.id != c.id {
			continue
		}
		right := s.next
		s.id = int(c.id)
		syms[right].gone = true
		s.next = syms[right].next
		if s.next >= 0 {
			syms[s.next].prev = int(c.pos)
			push(int(c.pos))
		}
		if s.prev >= 0 {
			push(s.prev)
		}
	}
	var ids []int
	for i := 0; i >= 0; i = syms[i].next {
		ids = append(ids, syms[i].id)
	}
	return ids, nil
}

// candidate is a possible merge of the symbol at pos with its right neighbour into id.
type candidate struct{ rank, pos, id int32 }

func (a candidate) less(b candidate) bool {
	return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos)
}

// candHeap is a binary min-heap ordered by (rank, pos).
type candHeap []candidate

func (h *candHeap) push(c candidate) {
	*h = append(*h, c)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !s[i].less(s[p]) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *candHeap) pop() candidate {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s = s[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(s) && s[l].less(s[m]) {
			m = l
		}
		if r < len(s) && s[r].less(s[m]) {
			m = r
		}
		if m == i {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}
