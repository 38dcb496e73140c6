"""Tiny Keras classifiers trained as users train theirs (seconds each), saved as they save
them, with the user's own Keras pipeline to compare textserve's answers with."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import tensorflow as tf
from tensorflow.keras.preprocessing.sequence import pad_sequences
from tensorflow.keras.preprocessing.text import Tokenizer

POSITIVE = ["great", "good", "love", "excellent", "wonderful", "best", "happy", "café", "très", "хорошо"]
NEGATIVE = ["bad", "awful", "hate", "terrible", "worst", "boring", "sad", "naïve", "плохо", "糟糕"]
FILLER = ["the", "a", "movie", "film", "plot", "actor", "was", "is", "it", "this", "and", "but", "2024", "ending"]


def clean_text(text: str) -> str:
    """The classic recipe's cleaning, as users write it."""
    text = text.lower()
    return re.sub(r"[^\w\s]", "", text)


def dataset(classes: int, n: int = 300, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Short reviews: positive words make class ``classes - 1``, negative ones class 0, none
    (with three classes) the middle one; raw text with case and punctuation."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        label = i % classes
        words = list(rng.choice(FILLER, rng.integers(2, 14)))
        if label == classes - 1:
            words += list(rng.choice(POSITIVE, rng.integers(1, 4)))
        elif label == 0:
            words += list(rng.choice(NEGATIVE, rng.integers(1, 4)))
        rng.shuffle(words)
        text = " ".join(words)
        texts.append(text.capitalize() + ("!" if i % 3 else "..."))
        labels.append(label)
    return texts, np.array(labels)


@dataclass
class Case:
    """A saved model, how to convert it, and Keras's own answers to compare with."""

    name: str
    model_path: Path
    labels: list[str]
    args: list[str]
    predict: Callable[[list[str]], np.ndarray]  # texts -> probabilities as served ([1 - p, p] for a sigmoid)
    token_counts: Callable[[list[str]], list[int]]  # texts -> ids before truncation
    max_length: int
    words: list[str] = field(default_factory=list)
    tokenizer_path: Path | None = None

    def cli_args(self, output_dir: Path) -> list[str]:
        args = ["convert", "--keras-model", str(self.model_path), "--labels", ",".join(self.labels),
                "--name", self.name, "--output-dir", str(output_dir), *self.args]
        if self.tokenizer_path is not None:
            args += ["--tokenizer", str(self.tokenizer_path)]
        return args


def _labels(classes: int) -> list[str]:
    return ["negative", "positive"] if classes == 2 else ["negative", "neutral", "positive"]


def _served(raw: np.ndarray) -> np.ndarray:
    return np.hstack([1 - raw, raw]) if raw.shape[1] == 1 else raw


def _fit(model: keras.Model, x: object, y: np.ndarray) -> None:
    keras.utils.set_random_seed(7)
    loss = "binary_crossentropy" if model.outputs[0].shape[-1] == 1 else "sparse_categorical_crossentropy"
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=loss)
    model.fit(x, y.astype("float32") if loss.startswith("binary") else y, epochs=3, batch_size=32, verbose=0)


@dataclass(frozen=True)
class TokenizerRecipe:
    """One classic Keras pipeline: Tokenizer settings, pad_sequences settings, standardization."""

    classes: int
    maxlen: int
    tokenizer: dict[str, object] = field(default_factory=dict)
    padding: str = "pre"
    truncating: str = "pre"
    standardize: str = "none"  # "seed": clean_text, "lower": str.lower
    fixed_input: bool = False
    save_as: str = "model.keras"


def tokenizer_case(name: str, directory: Path, recipe: TokenizerRecipe, layers: Callable[[int], list]) -> Case:
    """Train Embedding-first ``layers(vocabulary size)`` on a Keras Tokenizer's ids and save
    model and tokenizer as a user would."""
    texts, y = dataset(recipe.classes)
    clean = {"none": lambda t: t, "lower": str.lower, "seed": clean_text}[recipe.standardize]
    tokenizer = Tokenizer(**recipe.tokenizer)  # type: ignore[arg-type]
    tokenizer.fit_on_texts([clean(t) for t in texts])
    vocabulary = (recipe.tokenizer.get("num_words") or len(tokenizer.word_index) + 1)

    def ids(batch: list[str]) -> np.ndarray:
        return pad_sequences(tokenizer.texts_to_sequences([clean(t) for t in batch]), maxlen=recipe.maxlen,
                             padding=recipe.padding, truncating=recipe.truncating)

    inputs = keras.Input(shape=(recipe.maxlen if recipe.fixed_input else None,), dtype="int32")
    model = keras.Sequential([inputs, *layers(int(vocabulary))])  # type: ignore[arg-type]
    _fit(model, ids(texts), y)
    directory.mkdir(parents=True, exist_ok=True)
    model_path = directory / recipe.save_as
    if recipe.save_as.endswith("/"):
        model.export(str(model_path), verbose=False)
        serve = tf.saved_model.load(str(model_path)).signatures["serving_default"]
        (key,) = serve.structured_input_signature[1]

        def raw(x: np.ndarray) -> np.ndarray:
            return np.asarray(next(iter(serve(**{key: tf.constant(x, tf.int32)}).values())))
    else:
        model.save(model_path)
        loaded = keras.models.load_model(model_path)

        def raw(x: np.ndarray) -> np.ndarray:
            return np.asarray(loaded.predict(x, verbose=0))
    tokenizer_path = directory / "tokenizer.json"
    tokenizer_path.write_text(tokenizer.to_json(), encoding="utf-8")
    args = ["--standardize", recipe.standardize, "--padding", recipe.padding, "--truncating", recipe.truncating]
    if not recipe.fixed_input:
        args += ["--max-length", str(recipe.maxlen)]
    words = [w for w, i in sorted(tokenizer.word_index.items(), key=lambda kv: kv[1]) if i < vocabulary]
    return Case(
        name=name, model_path=model_path, labels=_labels(recipe.classes), args=args,
        predict=lambda batch: _served(raw(ids(batch))),
        token_counts=lambda batch: [len(s) for s in tokenizer.texts_to_sequences([clean(t) for t in batch])],
        max_length=recipe.maxlen, words=words, tokenizer_path=tokenizer_path,
    )


def vectorization_case(name: str, directory: Path) -> Case:
    """A Keras 3 model that starts with its own TextVectorization layer, saved as .keras."""
    texts, y = dataset(3)
    vectorizer = keras.layers.TextVectorization(max_tokens=40, output_sequence_length=16)
    vectorizer.adapt(tf.constant(texts))
    strings = keras.Input(shape=(1,), dtype="string")
    x = vectorizer(strings)
    x = keras.layers.Embedding(40, 16, mask_zero=True)(x)
    x = keras.layers.LSTM(16)(x)
    model = keras.Model(strings, keras.layers.Dense(3, activation="softmax")(x))
    _fit(model, tf.constant(texts)[:, None], y)
    directory.mkdir(parents=True, exist_ok=True)
    model_path = directory / "model.keras"
    model.save(model_path)
    loaded = keras.models.load_model(model_path)
    counter = keras.layers.TextVectorization(max_tokens=40, ragged=True, vocabulary=vectorizer.get_vocabulary()[2:])
    return Case(
        name=name, model_path=model_path, labels=_labels(3), args=[],
        predict=lambda batch: np.asarray(loaded.predict(tf.constant(batch)[:, None], verbose=0)),
        token_counts=lambda batch: [len(r) for r in counter(tf.constant(batch)).to_list()],
        max_length=16, words=vectorizer.get_vocabulary()[2:],
    )


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path
