"""What a user did to texts before their Keras tokenizer saw them (``--standardize``).

``seed`` is the ``clean_text`` of the classic Keras text-classification recipe: lower-case,
then drop every character that is neither a word character nor whitespace (Unicode rules, as
Python's ``re`` applies them to ``str``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

_NOT_WORD_OR_SPACE = re.compile(r"[^\w\s]")


def _none(text: str) -> str:
    return text


def _seed(text: str) -> str:
    return _NOT_WORD_OR_SPACE.sub("", text.lower())


STANDARDIZERS: dict[str, Callable[[str], str]] = {"none": _none, "lower": str.lower, "seed": _seed}
