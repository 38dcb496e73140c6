"""A Keras 3 ``TextVectorization`` layer (``output_mode="int"``), kind ``text_vectorization``.

Reproduces the layer's TensorFlow string ops with the standard library (Keras 3.15,
``keras/src/layers/preprocessing/text_vectorization.py``):

* ``lower``: ``tf.strings.lower`` with its default encoding, which lower-cases ASCII letters
  only (``"ÉCOLE"`` becomes ``"École"``);
* ``strip_punctuation``: the layer's regular expression removes exactly the ASCII
  punctuation of ``string.punctuation``;
* ``lower_and_strip_punctuation``: both, in that order;
* split ``whitespace``: ``tf.strings.split`` splits on runs of ASCII whitespace (space, tab,
  LF, VT, FF, CR) only, so a no-break space stays inside a token; ``character``: one token
  per code point; none: the whole text is one token;
* the lookup: ``vocabulary[0]`` is the padding token ``""`` (id 0), unknown tokens get 1.

``output_sequence_length`` keeps the first tokens and pads at the end (:class:`Layout`).
tests/export/test_convert_tokenizers.py checks every rule against the layer itself.
"""

from __future__ import annotations

import re
import string
from typing import Any

from service.bundle.tokenizer.sequences import Layout, SequenceTokenizer, check_spec_version

KIND = "text_vectorization"
OOV_ID = 1
STANDARDIZE = (None, "lower", "strip_punctuation", "lower_and_strip_punctuation")
SPLIT = (None, "whitespace", "character")
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_NO_PUNCTUATION = str.maketrans("", "", string.punctuation)
_ASCII_TOKEN = re.compile(r"[^ \t\n\v\f\r]+")


class TextVectorizationTokenizer(SequenceTokenizer):
    kind = KIND

    def __init__(
        self,
        layout: Layout,
        *,
        vocabulary: list[str],
        layer_standardize: str | None,
        split: str | None,
        standardize: str = "none",
    ) -> None:
        super().__init__(layout, standardize)
        if layer_standardize not in STANDARDIZE:
            raise ValueError(f"the layer's standardize must be one of {STANDARDIZE}, got {layer_standardize!r}")
        if split not in SPLIT:
            raise ValueError(f"the layer's split must be one of {SPLIT}, got {split!r}")
        if len(vocabulary) < 2 or vocabulary[0] != "" or not all(isinstance(t, str) for t in vocabulary):
            raise ValueError("vocabulary must be strings starting with the padding token ''")
        if len(set(vocabulary)) != len(vocabulary):
            raise ValueError("vocabulary has duplicate tokens")
        self.vocabulary, self.layer_standardize, self.split = vocabulary, layer_standardize, split
        self._lower = layer_standardize in ("lower", "lower_and_strip_punctuation")
        self._strip = layer_standardize in ("strip_punctuation", "lower_and_strip_punctuation")
        self._index = {token: i for i, token in enumerate(vocabulary)}

    def tokens(self, text: str) -> list[str]:
        text = self._clean(text)
        if self._lower:
            text = text.lower() if text.isascii() else text.translate(_ASCII_LOWER)
        if self._strip:
            text = text.translate(_NO_PUNCTUATION)
        if self.split == "whitespace":
            return _ASCII_TOKEN.findall(text)
        if self.split == "character":
            return list(text)
        return [text]

    def token_ids(self, text: str) -> list[int]:
        get = self._index.get
        return [get(token, OOV_ID) for token in self.tokens(text)]

    def spec(self) -> dict[str, Any]:
        return {
            "layer": {"standardize": self.layer_standardize, "split": self.split},
            "vocabulary": self.vocabulary,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TextVectorizationTokenizer:
        check_spec_version(data, KIND)
        layer = data["layer"]
        vocabulary = data["vocabulary"]
        if not isinstance(vocabulary, list):
            raise ValueError("vocabulary must be a list")
        return cls(
            Layout.from_dict(data),
            vocabulary=vocabulary,
            layer_standardize=layer["standardize"],
            split=layer["split"],
            standardize=data["standardize"],
        )
