package export

import (
	"fmt"
	"strings"

	"qconv/hf/tokenizer"
	"qconv/oracle"
)

// longCodeText is the built-in long-context gate prompt: one Python module of about 3 KB
// (1006 tokens through the embedded fixture's code BPE); DefaultPrompts uses its shortest prefix
// of whole lines that reaches LongPromptTokens through the checkpoint's tokenizer. Quantization error compounds through the recurrent
// state and the KV cache, so a flip can appear only hundreds of tokens in; the gate checks
// teacher-forced top-1 at every confident position of it and the free greedy rollout at its end.
const longCodeText = `import os
import sys
import re


class ConfigError(Exception):
    pass


class Section:
    def __init__(self, name):
        self.name = name
        self.items = {}
        self.order = []

    def __contains__(self, key):
        return key in self.items

    def __getitem__(self, key):
        return self.items[key]

    def __setitem__(self, key, value):
        if key not in self.items:
            self.order.append(key)
        self.items[key] = value

    def get(self, key, default=None):
        if key in self.items:
            return self.items[key]
        return default

    def keys(self):
        return list(self.order)


class Config:
    def __init__(self, path=None):
        self.path = path
        self.sections = {}
        self.order = []
        if path is not None:
            self.read(path)

    def section(self, name):
        if name not in self.sections:
            self.sections[name] = Section(name)
            self.order.append(name)
        return self.sections[name]

    def read(self, path):
        with open(path, 'r') as f:
            self.parse(f.read(), path)

    def parse(self, text, filename='<string>'):
        current = None
        for lineno, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            if line.startswith('[') and line.endswith(']'):
                current = self.section(line[1:-1].strip())
                continue
            if current is None:
                raise ConfigError('%s:%d: no section' % (filename, lineno))
            if '=' not in line:
                raise ConfigError('%s:%d: expected name = value' % (filename, lineno))
            key, value = line.split('=', 1)
            current[key.strip()] = value.strip()

    def get(self, name, key, default=None):
        if name not in self.sections:
            return default
        return self.sections[name].get(key, default)

    def getint(self, name, key, default=0):
        value = self.get(name, key)
        if value is None:
            return default
        try:
            return int(value)
        except ValueError:
            raise ConfigError('%s.%s: not an integer: %r' % (name, key, value))

    def getbool(self, name, key, default=False):
        value = self.get(name, key)
        if value is None:
            return default
        value = value.lower()
        if value in ('1', 'yes', 'true', 'on'):
            return True
        if value in ('0', 'no', 'false', 'off'):
            return False
        raise ConfigError('%s.%s: not a boolean: %r' % (name, key, value))

    def write(self, f):
        for name in self.order:
            section = self.sections[name]
            f.write('[%s]\n' % name)
            for key in section.keys():
                f.write('%s = %s\n' % (key, section[key]))
            f.write('\n')


def main(argv):
    if len(argv) < 2:
        print('usage: %s FILE' % argv[0])
        return 2
    config = Config(argv[1])
    for name in config.order:
        section = config.section(name)
        for key in section.keys():
            print('%s.%s = %s' % (name, key, section[key]))
    return 0


if __name__ == '__main__':
    `

// LongPromptTokens is the least length of the built-in long prompt, in the checkpoint's tokens.
const LongPromptTokens = 512

// longPrefix is the shortest prefix of text made of whole lines (the text repeated if it is too
// short) that tok encodes to at least n tokens: long enough for the long-context check, no
// longer, so the gate's cost stays bounded whatever the tokenizer's compression.
func longPrefix(tok *tokenizer.Tokenizer, text string, n int) (string, error) {
	for k := 1; ; k++ {
		full := strings.Repeat(text, k)
		lines := strings.SplitAfter(full, "\n")
		count := func(i int) (int, error) {
			ids, err := tok.Encode(strings.Join(lines[:i], ""))
			return len(ids), err
		}
		if c, err := count(len(lines)); err != nil {
			return "", err
		} else if c < n {
			if k >= 64 {
				return "", fmt.Errorf("%d repetitions of the long prompt give only %d tokens", k, c)
			}
			continue
		}
		lo, hi := 1, len(lines) // the answer is in (lo-1, hi]
		for lo < hi {
			mid := (lo + hi) / 2
			c, err := count(mid)
			if err != nil {
				return "", err
			}
			if c >= n {
				hi = mid
			} else {
				lo = mid + 1
			}
		}
		return strings.Join(lines[:hi], ""), nil
	}
}

// The long id prompt for checkpoints without a tokenizer: LongIDPromptTokens ids made of one
// block of LongIDPromptBlock deterministic ids repeated.
const (
	LongIDPromptTokens = 512
	LongIDPromptBlock  = 128
)

// repeatIDPrompt is a block of pseudo-random ids repeated to n tokens. Random ids are not text,
// so a trained model is confident on them only through in-context copying: from the second
// repetition on, a model with induction heads predicts the next id of the block with a wide
// margin, at every position to the end of the context, which is where compounding error shows.
// An untrained model is confident nowhere; the gate's minimum of confident positions
// (--gate-min-confident) then says the prompts cannot judge it instead of passing vacuously.
func repeatIDPrompt(vocab, block, n int) oracle.GatePrompt {
	state := uint64(0x2545f4914f6cdd1d)
	ids := make([]int, block)
	for i := range ids {
		state = state*6364136223846793005 + 1442695040888963407
		ids[i] = 1 + int(state>>33)%(vocab-1)
	}
	p := oracle.GatePrompt{Name: fmt.Sprintf("ids-repeat-%d", n)}
	for len(p.IDs) < n {
		p.IDs = append(p.IDs, ids[len(p.IDs)%block])
	}
	return p
}
