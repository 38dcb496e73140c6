"""What the options and the model decide together, before anything is converted: the
labels fit the output, the tokenizer (a Keras ``Tokenizer`` file or the model's own
``TextVectorization``), ``max_length`` and how the user padded, and the reference pipeline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from model_export.convert.errors import ConvertError
from model_export.convert.options import ConvertOptions
from model_export.convert.parity import Reference
from model_export.convert.probes import Probe
from model_export.convert.reference import keras_tokenizer_reference, vectorizer_reference
from model_export.convert.source import SourceModel
from model_export.convert.tokenizer_json import KerasTokenizerFile
from service.bundle.tokenizer import KerasTokenizer, TextVectorizationTokenizer
from service.bundle.tokenizer.sequences import Layout, SequenceTokenizer


@dataclass(frozen=True)
class Plan:
    user_layout: Layout  # how the user's pipeline cut and padded (padding_invariant unused)
    words: list[str]  # the tokenizer's known tokens, most frequent first, for probes
    joiner: str
    make_tokenizer: Callable[[Layout], SequenceTokenizer]
    reference: Callable[[list[Probe]], Reference]
    pipeline: dict[str, Any]  # for the manifest's source

    @property
    def max_length(self) -> int:
        return self.user_layout.max_length


def check_labels(labels: list[str], units: int) -> None:
    if units == 1 and len(labels) != 2:
        raise ConvertError(
            f"--labels names {len(labels)} classes but the model ends in one sigmoid unit: a binary"
            " classifier takes exactly two labels, the class of p near 0 first"
        )
    if units > 1 and len(labels) != units:
        raise ConvertError(f"--labels names {len(labels)} classes but the model outputs {units} scores")


def _length(given: int | None, fixed: int | None, what: str, missing: str) -> int:
    if given is not None and fixed is not None and given != fixed:
        raise ConvertError(f"--max-length {given} contradicts the model: {what} {fixed} ids per text")
    length = given or fixed
    if length is None:
        raise ConvertError(missing)
    return length


def make_plan(options: ConvertOptions, source: SourceModel, tokenizer_file: KerasTokenizerFile | None) -> Plan:
    check_labels(options.labels, source.output_units)
    output = "sigmoid, served as [1 - p, p]" if source.output_units == 1 else "softmax"
    if source.vectorizer is not None:
        return _vectorizer_plan(options, source, output)
    if tokenizer_file is None:
        raise ConvertError(
            "--tokenizer is required: the model takes token ids (give the JSON that Tokenizer.to_json() wrote)"
        )
    length = _length(
        options.max_length, source.fixed_length, "its input takes exactly",
        "--max-length is required: the model takes sequences of any length (give pad_sequences' maxlen)",
    )
    layout = Layout(length, options.padding or "pre", options.truncating or "pre")
    settings = tokenizer_file.settings

    def make(served: Layout) -> SequenceTokenizer:
        return KerasTokenizer(served, word_index=tokenizer_file.word_index, standardize=options.standardize, **settings)

    return Plan(
        user_layout=layout,
        words=tokenizer_file.words_by_id(),
        joiner="" if settings["char_level"] else settings["split"],
        make_tokenizer=make,
        reference=partial(keras_tokenizer_reference, source, tokenizer_file, options.standardize, layout),
        pipeline={
            "standardize": options.standardize,
            "tokenizer": "keras.preprocessing.text.Tokenizer",
            "max_length": length,
            "padding": layout.padding,
            "truncating": layout.truncating,
            "output": output,
        },
    )


def _vectorizer_plan(options: ConvertOptions, source: SourceModel, output: str) -> Plan:
    vectorizer = source.vectorizer
    assert vectorizer is not None
    if options.tokenizer is not None:
        raise ConvertError("the model starts with a TextVectorization layer, which is its tokenizer: drop --tokenizer")
    for flag, side in (("--padding", options.padding), ("--truncating", options.truncating)):
        if side == "pre":
            raise ConvertError(
                f"the model's TextVectorization layer pads and truncates at the end: {flag} pre contradicts it"
            )
    length = _length(
        options.max_length, vectorizer.output_sequence_length, "its TextVectorization layer outputs",
        "--max-length is required: the model's TextVectorization layer has no output_sequence_length",
    )
    layout = Layout(length, "post", "post")

    def make(served: Layout) -> SequenceTokenizer:
        return TextVectorizationTokenizer(
            served, vocabulary=vectorizer.vocabulary, layer_standardize=vectorizer.standardize,
            split=vectorizer.split, standardize=options.standardize,
        )

    return Plan(
        user_layout=layout,
        words=vectorizer.vocabulary[2:],
        joiner="" if vectorizer.split == "character" else " ",
        make_tokenizer=make,
        reference=partial(vectorizer_reference, source, options.standardize, layout),
        pipeline={
            "standardize": options.standardize,
            "tokenizer": "keras.layers.TextVectorization",
            "layer": {"standardize": vectorizer.standardize, "split": vectorizer.split},
            "max_length": length,
            "padding": "post",
            "truncating": "post",
            "output": output,
        },
    )
