"""The one tokenizer: text -> ids -> padded int32 matrix, for every kind of bundle.

Training and converting (``model_export``) and serving (``service``) use these modules, so a
model sees in production exactly what it saw in Keras. Standard library and numpy only: the
service never needs TensorFlow to turn text into model input. One module per kind, chosen by
the ``kind`` field of ``tokenizer.json``:

* no ``kind``: textserve's own tokenizer (``textserve.py``), what ``textserve-export`` trains;
* ``keras_tokenizer``: the classic Keras ``Tokenizer`` + ``pad_sequences`` (``keras_tokenizer.py``);
* ``text_vectorization``: a Keras 3 ``TextVectorization`` layer (``text_vectorization.py``).

Every kind offers :class:`TextTokenizer`; ``padding_invariant`` tells the service whether a
batch may be padded only to its longest text or must be padded to ``max_length``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from service.bundle.tokenizer.keras_tokenizer import KerasTokenizer
from service.bundle.tokenizer.text_vectorization import TextVectorizationTokenizer
from service.bundle.tokenizer.textserve import (
    NUM_TOKEN,
    OOV_ID,
    OOV_TOKEN,
    PAD_ID,
    PAD_TOKEN,
    URL_TOKEN,
    Tokenizer,
    TokenizerConfig,
    tokenize,
)

__all__ = [
    "NUM_TOKEN",
    "OOV_ID",
    "OOV_TOKEN",
    "PAD_ID",
    "PAD_TOKEN",
    "URL_TOKEN",
    "KerasTokenizer",
    "TextTokenizer",
    "TextVectorizationTokenizer",
    "Tokenizer",
    "TokenizerConfig",
    "load_tokenizer",
    "tokenize",
    "tokenizer_from_dict",
]


class TextTokenizer(Protocol):
    """What the service and the export steps need of any kind of tokenizer."""

    @property
    def max_length(self) -> int: ...

    @property
    def padding_invariant(self) -> bool: ...

    def ids(self, text: str) -> list[int]: ...

    def ids_and_truncated(self, text: str) -> tuple[list[int], bool]: ...

    def pad(self, sequences: Sequence[Sequence[int]], length: int | None = None) -> np.ndarray: ...

    def encode(self, texts: Sequence[str], length: int | None = None) -> np.ndarray: ...

    def to_dict(self) -> dict[str, Any]: ...

    def save(self, path: Path) -> None: ...


KINDS = {
    KerasTokenizer.kind: KerasTokenizer.from_dict,
    TextVectorizationTokenizer.kind: TextVectorizationTokenizer.from_dict,
}


def tokenizer_from_dict(data: Any) -> TextTokenizer:
    """The tokenizer a ``tokenizer.json`` describes; ValueError (or KeyError, TypeError) if it
    is not one."""
    if not isinstance(data, dict):
        raise ValueError("a tokenizer spec must be a JSON object")
    kind = data.get("kind")
    if kind is None:
        return Tokenizer.from_dict(data)
    if kind not in KINDS:
        raise ValueError(f"unknown tokenizer kind {kind!r} (known: {sorted(KINDS)})")
    return KINDS[kind](data)


def load_tokenizer(path: Path) -> TextTokenizer:
    return tokenizer_from_dict(json.loads(path.read_text(encoding="utf-8")))
