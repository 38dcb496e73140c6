"""One trained model: an architecture's recipe fitted on the training split, once per
ensemble copy (seed, seed + 1, ...), the copies averaged inside one Keras graph."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from model_export.data import Corpus, Splits, stratified_split
from model_export.model import INPUT_NAME, OUTPUT_NAME, ModelConfig, build_model
from model_export.options import ExportOptions
from model_export.recipes import Arch, used_fields
from model_export.train import TrainConfig, TrainResult, fit
from service.bundle.tokenizer import Tokenizer, TokenizerConfig

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Encoded:
    """The splits, the tokenizer fitted on the training split, and every split as ids and labels."""

    splits: Splits
    tokenizer: Tokenizer
    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]

    @property
    def labels(self) -> list[str]:
        return self.splits.label_names


def encode_splits(corpus: Corpus, options: ExportOptions) -> Encoded:
    splits = stratified_split(corpus, options.seed)
    tokenizer = Tokenizer.fit(
        splits.train.texts, TokenizerConfig(options.max_length, options.vocab_size, options.min_count)
    )
    index = {name: i for i, name in enumerate(splits.label_names)}
    x = {name: tokenizer.encode(getattr(splits, name).texts) for name in SPLITS}
    y = {name: np.array([index[v] for v in getattr(splits, name).labels], dtype=np.int32) for name in SPLITS}
    return Encoded(splits, tokenizer, x, y)


@dataclass
class Candidate:
    arch: Arch
    recipe: dict[str, Any]
    config: ModelConfig
    members: list[keras.Model]
    results: list[TrainResult]
    model: keras.Model

    @property
    def recurrent(self) -> bool:
        return self.config.recurrent

    def served_graph(self) -> keras.Model:
        """What tf2onnx converts: recurrent models without their mask (see lstm_masking.py)."""
        if not self.recurrent:
            return self.model
        twins = []
        for i, member in enumerate(self.members):
            twin = build_model(self.config, mask_padding=False, name=_member_name(i, len(self.members)))
            twin.set_weights(member.get_weights())
            twins.append(twin)
        return average(twins)

    def first_copy(self) -> Candidate:
        """The first copy of an ensemble on its own (seeded like a single-copy run)."""
        return Candidate(
            self.arch, {**self.recipe, "ensemble": 1}, self.config, self.members[:1], self.results[:1], self.members[0]
        )

    def training_summary(self) -> dict[str, Any]:
        return {
            "epochs_run": [r.epochs_run for r in self.results],
            "best_epoch": [r.best_epoch for r in self.results],
            "seconds": round(sum(r.seconds for r in self.results), 1),
        }


def _member_name(index: int, count: int) -> str | None:
    return f"member_{index}" if count > 1 else None


def average(members: list[keras.Model]) -> keras.Model:
    """The members' probabilities averaged in one graph (one member: the member itself)."""
    if len(members) == 1:
        return members[0]
    ids = keras.Input(shape=(None,), dtype="int32", name=INPUT_NAME)
    probs = keras.layers.Average(name=OUTPUT_NAME)([m(ids) for m in members])
    return keras.Model(ids, probs, name=f"ensemble_of_{len(members)}")


def model_config(arch: Arch, recipe: dict[str, Any], data: Encoded, max_length: int) -> ModelConfig:
    fields = {k: v for k, v in recipe.items() if k not in ("ensemble", "lr_decay")}
    return ModelConfig(
        vocab_size=len(data.tokenizer.vocabulary), n_classes=len(data.labels), arch=arch,
        max_length=max_length, **fields,
    )


def train_candidate(arch: Arch, recipe: dict[str, Any], data: Encoded, options: ExportOptions) -> Candidate:
    """Fit ``recipe['ensemble']`` copies of ``arch``; copy i is seeded with ``options.seed + i``."""
    config = model_config(arch, recipe, data, options.max_length)
    train_config = TrainConfig(
        epochs=options.epochs, batch_size=options.batch_size, patience=options.patience,
        class_weighting=options.class_weighting, verbose=options.verbose, lr_decay=float(recipe["lr_decay"]),
    )
    count = int(recipe["ensemble"])
    members, results = [], []
    for i in range(count):
        keras.utils.set_random_seed(options.seed + i)
        tf.config.experimental.enable_op_determinism()
        member = build_model(config, name=_member_name(i, count))
        results.append(fit(member, data.x["train"], data.y["train"], data.x["validation"], data.y["validation"],
                           train_config))
        members.append(member)
    return Candidate(arch, used_fields(arch, recipe), config, members, results, average(members))
