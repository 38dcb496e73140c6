"""textserve's Keras tokenizer kinds give exactly Keras's ids: the classic ``Tokenizer`` +
``pad_sequences`` and the ``TextVectorization`` layer, each setting against Keras itself, on
the built-in hard cases, training-like text and random Unicode text."""

from __future__ import annotations

import random
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.keras.preprocessing.sequence import pad_sequences
from tensorflow.keras.preprocessing.text import Tokenizer as KerasTextTokenizer

from model_export.convert.probes import hard_cases
from model_export.convert.reference import clean_text
from model_export.convert.tokenizer_json import read_keras_tokenizer
from service.bundle.tokenizer import KerasTokenizer, TextVectorizationTokenizer, tokenizer_from_dict
from service.bundle.tokenizer.cleaning import STANDARDIZERS
from service.bundle.tokenizer.sequences import Layout
from tests.export.keras_cases import dataset

pytestmark = pytest.mark.export
TRAINING, _ = dataset(3, n=200)
# Letters with special case rules, combining marks, every kind of whitespace Python or
# TensorFlow might split on, ASCII and Unicode punctuation, emoji with joiners, other scripts.
ALPHABET = (
    "abcdefghijKLMNOPQRSTxyz0123456789" "ÉéÀçÑñÜüßẞİıΣσςﬁǅ" "\u0301\u0308" "хорошоПЛОХО" "糟糕很好とても" "مرحبا٣٤"
    " " * 8 + "\t\n\r\v\f\x1c\x1d\x1e\x1f\x85\u00a0\u1680\u2003\u2028\u3000\u200b\ufeff"
    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~" "…«»¿¡\u2013—·" "\U0001f600\U0001f44d\U0001f3fd\u200d\u2764\ufe0f" "\x00\x07"
)


def random_texts(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    words = " ".join(TRAINING).split()
    out = []
    for _ in range(count):
        parts = [rng.choice(words) if rng.random() < 0.5 else "".join(rng.choices(ALPHABET, k=rng.randint(1, 8)))
                 for _ in range(rng.randint(0, 25))]
        out.append("".join(p + rng.choice([" ", "  ", "\t", "\u00a0", ",", "", "\n"]) for p in parts))
    return out


def probe_texts(words: list[str]) -> list[str]:
    return [p.text for p in hard_cases(words, 12)] + TRAINING[:50] + random_texts(400, seed=3)


TOKENIZERS = {
    "default": {},
    "num_words+oov": {"num_words": 15, "oov_token": "<OOV>"},
    "num_words, no oov": {"num_words": 15},
    "case kept, no filters": {"lower": False, "filters": ""},
    "char level": {"char_level": True, "oov_token": "?"},
    "odd split": {"filters": '!"#', "split": ","},
}
LAYOUTS = [("pre", "pre"), ("post", "post"), ("post", "pre"), ("pre", "post")]


@pytest.mark.parametrize("settings", list(TOKENIZERS.values()), ids=list(TOKENIZERS))
@pytest.mark.parametrize("standardize", ["none", "seed", "lower"])
def test_the_keras_tokenizer_kind_gives_keras_ids(settings: dict[str, object], standardize: str, tmp_path: Path) -> None:
    clean = {"none": lambda t: t, "seed": clean_text, "lower": str.lower}[standardize]
    keras_tokenizer = KerasTextTokenizer(**settings)  # type: ignore[arg-type]
    keras_tokenizer.fit_on_texts([clean(t) for t in TRAINING])
    path = tmp_path / "tokenizer.json"
    path.write_text(keras_tokenizer.to_json(), encoding="utf-8")
    file = read_keras_tokenizer(path)
    texts = probe_texts(file.words_by_id())
    sequences = keras_tokenizer.texts_to_sequences([clean(t) for t in texts])
    for padding, truncating in LAYOUTS:
        ours = KerasTokenizer(Layout(12, padding, truncating), word_index=file.word_index, standardize=standardize,  # type: ignore[arg-type]
                              **file.settings)
        theirs = pad_sequences(sequences, maxlen=12, padding=padding, truncating=truncating)
        np.testing.assert_array_equal(ours.encode(texts), theirs)
        assert [ours.ids_and_truncated(t)[1] for t in texts] == [len(s) > 12 for s in sequences]
        again = tokenizer_from_dict(ours.to_dict())  # what the bundle's tokenizer.json gives back
        np.testing.assert_array_equal(again.encode(texts), theirs)


VECTORIZER_STANDARDIZE = [None, "lower", "strip_punctuation", "lower_and_strip_punctuation"]
VECTORIZER_SPLIT = [None, "whitespace", "character"]


@pytest.mark.parametrize("split", VECTORIZER_SPLIT)
@pytest.mark.parametrize("layer_standardize", VECTORIZER_STANDARDIZE)
def test_the_text_vectorization_kind_gives_the_layers_ids(layer_standardize: str | None, split: str | None) -> None:
    layer = keras.layers.TextVectorization(
        max_tokens=60, standardize=layer_standardize, split=split, output_sequence_length=12
    )
    layer.adapt(tf.constant(TRAINING + random_texts(100, seed=9)))
    vocabulary = layer.get_vocabulary()
    texts = probe_texts(vocabulary[2:])
    for standardize in ("none", "seed"):
        cleaned = [STANDARDIZERS[standardize](t) for t in texts]
        theirs = layer(tf.constant(cleaned)[:, None]).numpy()
        ours = TextVectorizationTokenizer(
            Layout(12, "post", "post"), vocabulary=vocabulary, layer_standardize=layer_standardize, split=split,
            standardize=standardize,
        )
        np.testing.assert_array_equal(ours.encode(texts), theirs)


def test_the_seed_standardization_is_the_classic_recipes() -> None:
    texts = probe_texts(["word"]) + random_texts(500, seed=4)
    assert [STANDARDIZERS["seed"](t) for t in texts] == [clean_text(t) for t in texts]
