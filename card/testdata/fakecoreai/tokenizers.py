"""A stand-in for Hugging Face `tokenizers`, for running the card's Python snippets off-device.

It only checks that the tokenizer file the snippet names exists and returns a fixed prompt
length (FAKE_PROMPT_TOKENS) so the snippets' prefill paths are exercised."""
import os


class _Encoding:
    def __init__(self, ids):
        self.ids = ids


class Tokenizer:
    @staticmethod
    def from_file(path):
        if not os.path.isfile(path):
            raise FileNotFoundError(path)
        return Tokenizer()

    @staticmethod
    def from_pretrained(name):
        raise RuntimeError("the fake tokenizer loads files only: " + name)

    def encode(self, text):
        n = int(os.environ.get("FAKE_PROMPT_TOKENS", "37"))
        return _Encoding([(7 * i + 3) % 500 for i in range(n)])

    def decode(self, ids):
        return " ".join(str(i) for i in ids)
