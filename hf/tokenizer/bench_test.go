package tokenizer

import (
	"strings"
	"testing"

	"github.com/dlclark/regexp2"
)

// benchText is about 100 KB of mixed source code, prose and Unicode built from the test corpus.
func benchText(b *testing.B) string {
	var sb strings.Builder
	for _, p := range loadGoldenPrompts(b) {
		sb.WriteString(p.Text + p.GenText)
	}
	code := sb.String()
	sb.Reset()
	for i := 0; sb.Len() < 100_000; i++ {
		sb.WriteString(code)
		sb.WriteString(crossCheckFragments[i%len(crossCheckFragments)])
		sb.WriteString(" ")
	}
	return sb.String()
}

func benchTokenizer(b *testing.B) *Tokenizer {
	tok, err := Parse(qwenStyleJSON(b, qwen35Split, false))
	if err != nil {
		b.Fatal(err)
	}
	return tok
}

// BenchmarkSplitOnly is the baseline: the Qwen3.5 Split regex alone over the same text.
func BenchmarkSplitOnly(b *testing.B) {
	text := benchText(b)
	re := regexp2.MustCompile(qwen35Split, regexp2.None)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		if _, err := splitIsolated(re, text, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeCold encodes with an empty BPE cache each time.
func BenchmarkEncodeCold(b *testing.B) {
	text := benchText(b)
	tok := benchTokenizer(b)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		clear(tok.cache)
		if _, err := tok.Encode(text); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeWarm encodes text whose words are all cached.
func BenchmarkEncodeWarm(b *testing.B) {
	text := benchText(b)
	tok := benchTokenizer(b)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		if _, err := tok.Encode(text); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	text := benchText(b)
	tok := benchTokenizer(b)
	ids, err := tok.Encode(text)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		if _, err := tok.Decode(ids); err != nil {
			b.Fatal(err)
		}
	}
}
