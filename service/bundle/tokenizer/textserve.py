"""textserve's own tokenizer (the kind of a ``tokenizer.json`` without ``kind``): raw text ->
cleaned tokens -> ids -> padded int32 matrix.

Training (``model_export``) and serving (``service``) both call this module, so what the
model saw during training is exactly what it sees in production. Standard library and
numpy only, so the service never needs TensorFlow to turn text into model input.

Cleaning rules (also in the README):

* Unicode is NFKC-normalised and case-folded; curly apostrophes become ``'``.
* URLs (``http://``, ``https://``, ``www.`` at the start of a word) become the single
  token ``<url>``.
* ``@mentions`` stay one token each, ``@`` included (``@united``): who a tweet is
  addressed to is real signal (complaints go to airlines); rare handles fall out of the
  vocabulary like any rare word.
* ``#hashtags`` keep their word and lose the ``#`` (``#fail`` -> ``fail``).
* A run of digits (with ``.``/``,`` separators) becomes ``<num>``; digits inside a word
  (``c14``, ``4g``) stay part of the word.
* Emoji and other pictographic symbols (Unicode category ``So``) are one token each.
* ``!`` and ``?`` are tokens: they carry tone. Every other punctuation mark, the
  Unicode replacement character, control characters (NUL included) and ``_`` separate
  words and are dropped.
* Words keep inner apostrophes (``don't`` stays one token).

Ids: 0 is padding, 1 is out-of-vocabulary; the vocabulary is ordered by frequency in the
training split (ties alphabetical) and capped in size. Sequences are truncated to
``max_length`` (the first tokens are kept) and padded with 0 at the end.
"""

from __future__ import annotations

import json
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

PAD_ID = 0
OOV_ID = 1
PAD_TOKEN = "<pad>"
OOV_TOKEN = "<oov>"
URL_TOKEN = "<url>"
NUM_TOKEN = "<num>"
FORMAT_VERSION = 1

# ASCII punctuation that never starts a token and is never kept: skipped between tokens
# like whitespace. ("!" and "?" are tokens, "@" starts a mention; no ASCII character is a
# pictographic symbol.)
_SKIPPED = "".join(c for c in string.punctuation if c not in "!?@")
# One left-to-right pass; at each position the first alternative that matches wins, and
# the separators after it are skipped inside the same match. Written for the regex engine's
# speed:
# * A token is followed by ``[\s<_SKIPPED>]*+``: whitespace, ``_`` and dropped ASCII
#   punctuation cost no match and no tuple of their own (they were a fifth of all matches in
#   tweets). The skip comes *after* a token and is possessive, so it never fails and the scan
#   stays linear; no token starts with a skipped character, so where a token ends is decided
#   before the skip, as in the plain form. Only a leading character of these, and non-ASCII
#   punctuation, is matched as ``other`` (and dropped unless it is a pictographic symbol).
# * The alternatives that give their own text (mention, word, ``!``/``?``) share one group.
#   Their first characters are disjoint from URL's and number's (``h``/``w`` are tried as
#   URLs first), so the order that matters is kept.
# * Each lookbehind comes after a cheap test of the next character (``www\.``, ``(?=\d)``)
#   so it runs only where it can matter.
# tests/unit/test_tokenizer_equivalence.py keeps the plain form of this pattern (the one the
# shipped model was trained with) and checks that both give the same tokens.
_TOKEN = re.compile(
    r"(?:"
    r"(?P<url>https?://\S*|www\.(?<![^\W_]www\.)\S*)"  # www. not glued to a word before it
    # a digit run not glued to a word character or an @ on either side: "c14" stays a word
    r"|(?P<num>(?=\d)(?<![\w@])\d+(?:[.,]\d+)*(?!\w))"
    r"|(?P<text>@\w+|[^\W_]+(?:'[^\W_]+)*|[!?])"  # a mention, a word, ! or ?
    r"|(?P<other>[^\w\s]|_)"
    r")"
    r"[\s" + re.escape(_SKIPPED) + r"]*+"
)


def _is_symbol_token(char: str) -> bool:
    # U+FFFD is what undecodable bytes became: noise, although Unicode files it under "So".
    return char in "!?" or (char != "\ufffd" and unicodedata.category(char) == "So")


def _matches(text: str) -> list[tuple[str, str, str, str]]:
    """Clean ``text`` and run the token pattern over it: one (url, num, text, other) tuple
    per match. findall's group tuples are cheaper than match objects; every alternative
    matches a non-empty string, so exactly one field of each tuple is set."""
    text = unicodedata.normalize("NFKC", text).casefold()
    # str.translate looks every character up in a dict (~13 µs for a tweet); a replace per
    # apostrophe is a fast scan (~0.2 µs). In ASCII text the backquote is the only one.
    text = text.replace("`", "'")
    if not text.isascii():
        text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u02bc", "'")
    if "://" in text:  # a URL glued to the word before it still starts a token of its own
        text = text.replace("http://", " http://").replace("https://", " https://")
    matches: list[tuple[str, str, str, str]] = _TOKEN.findall(text.strip())
    return matches


def tokenize(text: str) -> list[str]:
    """Clean ``text`` and split it into tokens (see the module docstring for the rules)."""
    # Tokenizer.ids_and_truncated repeats this comprehension with the id lookup inside it;
    # change both together (tests/unit/test_tokenizer_equivalence.py holds them to the same ids).
    return [
        token or other or (URL_TOKEN if url else NUM_TOKEN)
        for url, _num, token, other in _matches(text)
        if not other or _is_symbol_token(other)
    ]


@dataclass(frozen=True)
class TokenizerConfig:
    """Every setting that changes the ids a text gets; saved in the bundle."""

    max_length: int
    vocab_size: int
    min_count: int = 1

    def __post_init__(self) -> None:
        if self.max_length < 1:
            raise ValueError("max_length must be at least 1")
        if self.vocab_size < 3:
            raise ValueError("vocab_size must be at least 3 (pad, OOV and one word)")
        if self.min_count < 1:
            raise ValueError("min_count must be at least 1")


@dataclass
class Tokenizer:
    """A fitted vocabulary plus the settings to turn texts into a padded id matrix."""

    config: TokenizerConfig
    vocabulary: list[str]
    _index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.vocabulary[:2] != [PAD_TOKEN, OOV_TOKEN]:
            raise ValueError("vocabulary must start with the pad and OOV tokens")
        if len(self.vocabulary) > self.config.vocab_size:
            raise ValueError("vocabulary is larger than vocab_size")
        if len(set(self.vocabulary)) != len(self.vocabulary):
            raise ValueError("vocabulary has duplicate tokens")
        self._index = {token: i for i, token in enumerate(self.vocabulary)}

    @classmethod
    def fit(cls, texts: Iterable[str], config: TokenizerConfig) -> Tokenizer:
        """Build the vocabulary from ``texts`` (the training split only)."""
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(tokenize(text))
        kept = [(t, c) for t, c in counts.items() if c >= config.min_count]
        kept.sort(key=lambda item: (-item[1], item[0]))
        words = [t for t, _ in kept[: config.vocab_size - 2]]
        return cls(config, [PAD_TOKEN, OOV_TOKEN, *words])

    @property
    def max_length(self) -> int:
        return self.config.max_length

    @property
    def padding_invariant(self) -> bool:
        """The models trained here mask padding (the export proves it on the test split), so
        a batch may be padded only to its longest text."""
        return True

    def ids(self, text: str) -> list[int]:
        """Token ids for one text, truncated to ``max_length`` but not padded."""
        return self.ids_and_truncated(text)[0]

    def ids_and_truncated(self, text: str) -> tuple[list[int], bool]:
        """Token ids (truncated to ``max_length``) and whether anything was cut off: the
        vocabulary ids of ``tokenize(text)``, looked up inside the same comprehension rather
        than over a list of tokens made first (~6% of a tweet's tokenizing, on every text
        the service serves)."""
        get = self._index.get
        ids = [
            get(token or other or (URL_TOKEN if url else NUM_TOKEN), OOV_ID)
            for url, _num, token, other in _matches(text)
            if not other or _is_symbol_token(other)
        ]
        limit = self.config.max_length
        return (ids, False) if len(ids) <= limit else (ids[:limit], True)

    def pad(self, sequences: Sequence[Sequence[int]], length: int | None = None) -> np.ndarray:
        """Stack id lists into an int32 ``[n, length]`` matrix, zero-padded at the end.

        ``length`` defaults to ``max_length``. Passing the longest sequence's length gives a
        shorter matrix with the same model output (the model masks padding), which is what
        the service's batcher does; it is never allowed to exceed ``max_length``.
        """
        width = self.config.max_length if length is None else length
        if not 1 <= width <= self.config.max_length:
            raise ValueError(f"length must be in 1..{self.config.max_length}, got {width}")
        out = np.zeros((len(sequences), width), dtype=np.int32)
        for row, seq in enumerate(sequences):
            seq = seq[:width]
            out[row, : len(seq)] = seq
        return out

    def encode(self, texts: Sequence[str], length: int | None = None) -> np.ndarray:
        """Texts -> int32 ``[len(texts), length]`` ids (see :meth:`pad`)."""
        return self.pad([self.ids(t) for t in texts], length)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "max_length": self.config.max_length,
            "vocab_size": self.config.vocab_size,
            "min_count": self.config.min_count,
            "pad_id": PAD_ID,
            "oov_id": OOV_ID,
            "vocabulary": self.vocabulary,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tokenizer:
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unsupported tokenizer format_version {data.get('format_version')!r}")
        if data.get("pad_id") != PAD_ID or data.get("oov_id") != OOV_ID:
            raise ValueError("tokenizer pad/OOV ids differ from this code's")
        config = TokenizerConfig(
            max_length=int(data["max_length"]),
            vocab_size=int(data["vocab_size"]),
            min_count=int(data["min_count"]),
        )
        return cls(config, list(data["vocabulary"]))

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=0), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Tokenizer:
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
