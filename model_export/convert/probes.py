"""The texts parity is checked on: built-in hard cases, texts made of the tokenizer's own
words (so known ids, every length up to past ``max_length``, and the highest ids are all
exercised), then the user's ``--probe-texts``."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

# Text no tokenizer is likely to know, in several scripts.
_UNKNOWN = "zqxjv blorptangle unkwordish"


@dataclass(frozen=True)
class Probe:
    text: str
    origin: str  # where it came from, for messages: "built-in: emoji", "--probe-texts line 3"


def _mixed_case(word: str) -> str:
    return "".join(c.upper() if i % 2 else c for i, c in enumerate(word))


def hard_cases(words: Sequence[str], max_length: int, joiner: str = " ") -> list[Probe]:
    """Fixed hard cases, with the tokenizer's own ``words`` (most frequent first) mixed in."""
    w = list(words) or ["a"]
    at = [w[i % len(w)] for i in range(8)]

    def join(items: Sequence[str]) -> str:
        return joiner.join(items)

    long_words = [w[i % min(len(w), 4 * max_length + 7)] for i in range(3 * max_length + 5)]
    cases = {
        "empty": "",
        "whitespace only": " \t \n  ",
        "punctuation only": "!!! ?? ... ,,, ;-) --- (( ))",
        "emoji only": "\U0001f600 \U0001f525\U0001f525 \U0001f44d\U0001f3fd \u2764\ufe0f",
        "emoji between words": f"{at[0]} \U0001f600 {at[1]}!\U0001f44e",
        "unknown words": _UNKNOWN,
        "known and unknown words": join([at[0], "zqxjv", at[1], "blorp", at[2]]),
        "accented": "Café crème brûlée, naïve façade — déjà vu, Ångström",
        "non-Latin": "Это очень хорошо. 很好 とても良い مرحبا بالعالم नमस्ते",
        "digits": "2024 1,000,000 3.14 42nd 007 +44-20",
        "mixed case": join([at[0].upper(), at[1].title(), _mixed_case(at[2]), at[3]]),
        "runs of whitespace": f"{at[0]}   \t\t {at[1]}\n\n\n{at[2]} \u00a0 {at[3]}\u2003{at[4]}\r\n{at[5]}",
        "apostrophes and joiners": f"don't won't it's O'Neil rock-n-roll e-mail foo_bar {at[0]}'s",
        "special casing": "İstanbul STRASSE ß ẞ ǅ ﬁ \u0130",
        "control and invisible characters": f"\x00{at[0]}\x07 \u200b{at[1]}\ufeff \x1f{at[2]}\x85",
        "longer than max-length": join(long_words),
        "max-length words": join(long_words[:max_length]),
        "max-length + 1 words": join(long_words[: max_length + 1]),
        "max-length - 1 words": join(long_words[: max(max_length - 1, 1)]),
        "rarest words": join(w[-8:]),
        "one word": at[0],
        "a word repeated": join([at[1]] * 5),
    }
    return [Probe(text, f"built-in: {name}") for name, text in cases.items()]


def word_texts(words: Sequence[str], max_length: int, count: int = 24, seed: int = 0, joiner: str = " ") -> list[Probe]:
    """``count`` seeded texts of the tokenizer's words, of lengths spread over 1..max_length + 3."""
    if not words:
        return []
    rng = random.Random(seed)
    pool = list(words[:2000])
    out = []
    for k in range(count):
        length = 1 + (k * (max_length + 2)) // max(count - 1, 1)
        out.append(Probe(joiner.join(rng.choice(pool) for _ in range(length)), f"built-in: words #{k + 1}"))
    return out


def all_probes(words: Sequence[str], max_length: int, user_texts: Sequence[str], joiner: str = " ") -> list[Probe]:
    user = [Probe(text, f"--probe-texts line {i + 1}") for i, text in enumerate(user_texts)]
    return [*hard_cases(words, max_length, joiner), *word_texts(words, max_length, joiner=joiner), *user]
