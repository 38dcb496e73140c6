"""The classic Keras ``Tokenizer`` (``keras.preprocessing.text``), kind ``keras_tokenizer``.

Reproduces ``texts_to_sequences`` exactly, rule for rule (Keras 3.15's
``keras/src/legacy/preprocessing/text.py``, unchanged since Keras 1):

* ``lower``: ``str.lower()`` first;
* word level: every character of ``filters`` becomes ``split``, the text is split on
  ``split`` and empty pieces dropped; ``char_level``: every character is a token and
  ``filters`` do not apply;
* a word's id comes from ``word_index``; an unknown word, or one whose id is ``num_words`` or
  more, becomes the OOV id when there is an ``oov_token`` and is dropped otherwise.

``word_index`` is stored pruned to the ids below ``num_words`` (and the OOV token): a word
above them behaves exactly as an unknown one. Then :class:`Layout` does what ``pad_sequences`` did.
"""

from __future__ import annotations

from typing import Any

from service.bundle.tokenizer.sequences import Layout, SequenceTokenizer, check_spec_version

KIND = "keras_tokenizer"


class KerasTokenizer(SequenceTokenizer):
    kind = KIND

    def __init__(
        self,
        layout: Layout,
        *,
        word_index: dict[str, int],
        filters: str,
        lower: bool,
        split: str,
        char_level: bool,
        oov_token: str | None,
        num_words: int | None,
        standardize: str = "none",
    ) -> None:
        super().__init__(layout, standardize)
        if not char_level and not split:
            raise ValueError("split must not be empty for a word-level tokenizer")
        if any(not isinstance(w, str) or not isinstance(i, int) or isinstance(i, bool) or i < 1
               for w, i in word_index.items()):
            raise ValueError("word_index must map words to ids of 1 or more")
        self.oov_id = word_index.get(oov_token) if oov_token is not None else None
        if oov_token is not None and self.oov_id is None:
            raise ValueError(f"oov_token {oov_token!r} has no id in word_index")
        self.filters, self.lower, self.split, self.char_level = filters, lower, split, char_level
        self.oov_token, self.num_words = oov_token, num_words or None
        limit = self.num_words
        self.word_index = {w: i for w, i in word_index.items() if limit is None or i < limit or w == oov_token}
        self._table = str.maketrans(dict.fromkeys(filters, split)) if filters else None

    def words(self, text: str) -> list[str] | str:
        """``text``'s tokens as Keras splits it (a ``str`` is its characters)."""
        text = self._clean(text)
        if self.lower:
            text = text.lower()
        if self.char_level:
            return text
        if self._table is not None:
            text = text.translate(self._table)
        return [w for w in text.split(self.split) if w]

    def token_ids(self, text: str) -> list[int]:
        get, oov = self.word_index.get, self.oov_id
        if oov is None:
            return [i for w in self.words(text) if (i := get(w)) is not None]
        return [get(w, oov) for w in self.words(text)]

    def spec(self) -> dict[str, Any]:
        return {
            "tokenizer": {
                "filters": self.filters,
                "lower": self.lower,
                "split": self.split,
                "char_level": self.char_level,
                "oov_token": self.oov_token,
                "num_words": self.num_words,
            },
            "word_index": self.word_index,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KerasTokenizer:
        check_spec_version(data, KIND)
        settings = data["tokenizer"]
        word_index = data["word_index"]
        if not isinstance(word_index, dict):
            raise ValueError("word_index must be an object")
        num_words = settings["num_words"]
        if num_words is not None and (not isinstance(num_words, int) or num_words < 0):
            raise ValueError(f"num_words must be a non-negative integer or null, got {num_words!r}")
        for key, kind in (("filters", str), ("lower", bool), ("split", str), ("char_level", bool)):
            if not isinstance(settings[key], kind):
                raise ValueError(f"tokenizer.{key} must be a {kind.__name__}")
        oov = settings["oov_token"]
        if oov is not None and not isinstance(oov, str):
            raise ValueError("tokenizer.oov_token must be a string or null")
        return cls(
            Layout.from_dict(data),
            word_index=word_index,
            filters=settings["filters"],
            lower=settings["lower"],
            split=settings["split"],
            char_level=settings["char_level"],
            oov_token=oov,
            num_words=num_words,
            standardize=data["standardize"],
        )
