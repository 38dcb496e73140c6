"""The tokenizer package without TensorFlow: how ids are cut and padded, the spec each kind
reads and writes, and that old bundles keep their tokenizer (tests/export/ checks every kind
against Keras itself)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from service.bundle.format import BundleError, load_bundle
from service.bundle.tokenizer import (
    KerasTokenizer,
    TextVectorizationTokenizer,
    Tokenizer,
    load_tokenizer,
    tokenizer_from_dict,
)
from service.bundle.tokenizer.sequences import Layout
from tests.unit.test_bundle import edit_manifest


@pytest.mark.parametrize(
    ("padding", "truncating", "rows"),
    [
        ("post", "post", [[1, 2, 3, 4], [5, 6, 0, 0], [0, 0, 0, 0]]),
        ("pre", "pre", [[3, 4, 5, 6], [0, 0, 5, 6], [0, 0, 0, 0]]),
        ("pre", "post", [[1, 2, 3, 4], [0, 0, 5, 6], [0, 0, 0, 0]]),
        ("post", "pre", [[3, 4, 5, 6], [5, 6, 0, 0], [0, 0, 0, 0]]),
    ],
)
def test_layout_cuts_and_pads_like_pad_sequences(padding: str, truncating: str, rows: list[list[int]]) -> None:
    layout = Layout(4, padding, truncating)  # type: ignore[arg-type]
    long, (cut, was_cut) = [1, 2, 3, 4, 5, 6], layout.cut([1, 2, 3, 4, 5, 6])
    assert was_cut and cut == rows[0] and layout.cut([5, 6]) == ([5, 6], False)
    np.testing.assert_array_equal(layout.pad([cut, [5, 6], []]), rows)
    assert layout.pad([long]).tolist() == [rows[0]]
    narrow = layout.pad([[5, 6], [7]], 2).tolist()
    assert narrow == ([[5, 6], [0, 7]] if padding == "pre" else [[5, 6], [7, 0]])
    with pytest.raises(ValueError, match=r"length must be in 1\.\.4"):
        layout.pad([[1]], 5)


def keras_spec(**changes: object) -> dict[str, object]:
    spec: dict[str, object] = {
        "kind": "keras_tokenizer", "format_version": 1, "max_length": 5, "padding": "pre", "truncating": "pre",
        "padding_invariant": False, "standardize": "seed",
        "tokenizer": {"filters": '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n', "lower": True, "split": " ",
                      "char_level": False, "oov_token": "<OOV>", "num_words": 4},
        "word_index": {"<OOV>": 1, "good": 2, "film": 3, "bad": 4, "plot": 5},
    }
    spec.update(changes)
    return spec


def test_the_keras_tokenizer_kind_follows_texts_to_sequences() -> None:
    tokenizer = tokenizer_from_dict(keras_spec())
    assert isinstance(tokenizer, KerasTokenizer)
    # seed cleaning, lower-case, filters; ids >= num_words and unknown words become the OOV id
    assert tokenizer.ids_and_truncated("GOOD film, bad plot!? (unknown)") == ([2, 3, 1, 1, 1], False)
    assert tokenizer.encode(["good"]).tolist() == [[0, 0, 0, 0, 2]]
    no_oov = tokenizer_from_dict(keras_spec(tokenizer={**keras_spec()["tokenizer"], "oov_token": None},  # type: ignore[dict-item]
                                            word_index={"good": 1, "film": 2, "bad": 3, "plot": 4}))
    assert no_oov.ids("good film bad plot other") == [1, 2, 3]  # dropped, as Keras drops them
    assert tokenizer_from_dict(tokenizer.to_dict()).to_dict() == tokenizer.to_dict()
    assert "plot" not in tokenizer.to_dict()["word_index"]  # stored pruned to num_words


def test_the_text_vectorization_kind_lowers_ascii_only_and_splits_on_ascii_whitespace() -> None:
    spec = {
        "kind": "text_vectorization", "format_version": 1, "max_length": 6, "padding": "post", "truncating": "post",
        "padding_invariant": True, "standardize": "none",
        "layer": {"standardize": "lower_and_strip_punctuation", "split": "whitespace"},
        "vocabulary": ["", "[UNK]", "école", "École", "a\u00a0b", "ok"],
    }
    tokenizer = tokenizer_from_dict(spec)
    assert isinstance(tokenizer, TextVectorizationTokenizer)
    assert tokenizer.ids("ÉCOLE école, OK! a\u00a0b\tx") == [3, 2, 5, 4, 1]
    assert tokenizer.ids_and_truncated("ok " * 7) == ([5] * 6, True)
    assert tokenizer.padding_invariant


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "sentencepiece"}, "unknown tokenizer kind"),
        ({"format_version": 2}, "format_version"),
        ({"padding": "left"}, "'pre' or 'post'"),
        ({"max_length": 0}, "positive integer"),
        ({"standardize": "stem"}, "standardize must be one of"),
        ({"word_index": {"good": 0}}, "ids of 1 or more"),
        ({"padding_invariant": "yes"}, "true or false"),
    ],
)
def test_a_spec_that_is_not_one_is_refused(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tokenizer_from_dict(keras_spec(**change))


def test_an_old_bundles_tokenizer_is_textserves_own_and_unchanged(shipped_bundle_dir: Path) -> None:
    path = shipped_bundle_dir / "tokenizer.json"
    tokenizer = load_tokenizer(path)
    assert type(tokenizer) is Tokenizer and "kind" not in json.loads(path.read_text())
    assert tokenizer.padding_invariant
    assert json.dumps(tokenizer.to_dict(), ensure_ascii=False, indent=0) == path.read_text(encoding="utf-8")


def test_a_graph_of_fixed_width_needs_a_tokenizer_that_pads_to_it(bundle_copy: Path) -> None:
    """A bundle whose graph takes exactly max_length ids but whose tokenizer would pad less."""
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    edit_manifest(bundle_copy, input={**manifest["input"], "shape": ["batch", 40]})
    with pytest.raises(BundleError, match="takes exactly 40 ids per text"):
        load_bundle(bundle_copy)
