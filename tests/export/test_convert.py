"""Issue 23's "must convert" list: each tiny model is trained and saved as a user would, converted
with the CLI, served by a real server process, and must answer /predict as Keras does (to
1e-4, same label, right truncation flag) on hard cases, training-like texts and random text."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import keras
import numpy as np
import pytest

from model_export.convert.probes import hard_cases
from service.bundle.format import load_bundle, sha256_file
from tests.e2e.server import ServerProcess
from tests.export.keras_cases import Case, TokenizerRecipe, dataset, tokenizer_case, vectorization_case

pytestmark = [pytest.mark.export, pytest.mark.e2e]
REPO = Path(__file__).resolve().parents[2]
L = keras.layers


def _sigmoid() -> object:
    return L.Dense(1, activation="sigmoid")


def _softmax() -> object:
    return L.Dense(3, activation="softmax")


# name -> (how to make it, whether its bundle may pad a batch only to its longest text)
CASES: dict[str, tuple[Callable[[str, Path], Case], bool]] = {
    # The classic recipe: clean_text, Tokenizer(), pad_sequences' defaults (pre), model.h5,
    # no mask, an Input of fixed length.
    "classic": (lambda n, d: tokenizer_case(n, d, TokenizerRecipe(
        classes=2, maxlen=20, standardize="seed", fixed_input=True, save_as="model.h5"),
        lambda v: [L.Embedding(v, 16), L.LSTM(16, return_sequences=True), L.Dropout(0.5), L.LSTM(16), _sigmoid()]),
        False),
    "oov-post-masked-lstm": (lambda n, d: tokenizer_case(n, d, TokenizerRecipe(
        classes=3, maxlen=16, tokenizer={"num_words": 25, "oov_token": "<OOV>"}, padding="post", truncating="post",
        standardize="lower"),
        lambda v: [L.Embedding(25, 16, mask_zero=True), L.LSTM(16), _softmax()]),
        True),
    "gru-masked-h5": (lambda n, d: tokenizer_case(n, d, TokenizerRecipe(
        classes=2, maxlen=12, tokenizer={"oov_token": "[oov]"}, save_as="model.h5"),
        lambda v: [L.Embedding(v, 8, mask_zero=True), L.GRU(12), _sigmoid()]),
        True),
    "bilstm-masked": (lambda n, d: tokenizer_case(n, d, TokenizerRecipe(classes=3, maxlen=14, standardize="seed"),
        lambda v: [L.Embedding(v, 8, mask_zero=True), L.Bidirectional(L.LSTM(8)), _softmax()]),
        True),
    "conv-maxpool": (lambda n, d: tokenizer_case(n, d, TokenizerRecipe(
        classes=3, maxlen=18, tokenizer={"num_words": 30}, padding="post", truncating="pre", fixed_input=True),
        lambda v: [L.Embedding(30, 16), L.Conv1D(16, 3, activation="relu"), L.GlobalMaxPooling1D(), _softmax()]),
        False),
    # (A masked average is NaN for a text with no known word, in Keras too: refused, see
    # test_convert_refusals.py.)
    "avgpool-h5": (lambda n, d: tokenizer_case(n, d, TokenizerRecipe(
        classes=2, maxlen=15, tokenizer={"lower": False, "oov_token": "<unk>"}, save_as="model.h5"),
        lambda v: [L.Embedding(v, 8), L.GlobalAveragePooling1D(), L.Dense(8, activation="relu"), _sigmoid()]),
        False),
    # A SavedModel (model.export) keeps no layers: nothing says it masks, so it is never
    # padding-invariant.
    "lstm-savedmodel": (lambda n, d: tokenizer_case(n, d, TokenizerRecipe(
        classes=2, maxlen=15, standardize="seed", save_as="saved_model/"),
        lambda v: [L.Embedding(v, 8, mask_zero=True), L.LSTM(8), _sigmoid()]),
        False),
    "textvectorization": (vectorization_case, True),
}


def random_texts(count: int, seed: int) -> list[str]:
    """Text from a mix of scripts, digits, punctuation, emoji and odd whitespace."""
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZéüßİçñ" + "хорошоплохо" + "糟糕很好" + "0123456789"
    alphabet += "!?.,;:'\"-_()[]#@&*/\\" + "\U0001f600\U0001f44d\u2764" + " " * 12 + "\t\n\u00a0\u2003"
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 120))) for _ in range(count)]


def texts_for(case: Case) -> list[str]:
    training_like, _ = dataset(3, n=30, seed=11)
    words = case.words
    return [
        *[p.text for p in hard_cases(words, case.max_length)],
        *training_like,
        *random_texts(30, seed=5),
        " ".join(words * 4),
        f"{words[0].upper()}!!! {words[1].title()}?",
        "\n".join(words[:6]),
    ]


@dataclass
class Converted:
    case: Case
    bundle: Path
    stdout: str
    server: ServerProcess
    invariant: bool


def convert(case: Case, output_dir: Path) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it (this process's TF_CPP_MIN_LOG_LEVEL left out)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run(
        [sys.executable, "-m", "model_export", *case.cli_args(output_dir)],
        cwd=REPO, capture_output=True, text=True, timeout=600, env=env,
    )


@pytest.fixture(scope="module", params=list(CASES))
def converted(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Converted]:
    make, invariant = CASES[request.param]
    directory = tmp_path_factory.mktemp(request.param)
    case = make(request.param, directory / "user")
    probes = directory / "probes.txt"  # the user's own texts, one a line, CRLF or not
    probes.write_bytes("\n".join(dataset(3, n=9, seed=21)[0]).encode() + b"\r\nlast line, CRLF\r\n")
    case.args = [*case.args, "--probe-texts", str(probes)]
    result = convert(case, directory / "models")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert result.stderr == ""
    bundle = directory / "models" / request.param / "1"
    with ServerProcess(bundle) as server:
        yield Converted(case, bundle, result.stdout, server, invariant)


def test_the_served_model_answers_as_keras(converted: Converted) -> None:
    case = converted.case
    texts = texts_for(case)
    response = httpx.post(f"{converted.server.url}/predict", json={"texts": texts}, timeout=60)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    served = np.array([[p["scores"][label] for label in case.labels] for p in predictions])
    expected = case.predict(texts)
    np.testing.assert_allclose(served, expected, atol=1e-4, rtol=0)
    assert [p["label"] for p in predictions] == [case.labels[i] for i in expected.argmax(axis=1)]
    assert [p["truncated"] for p in predictions] == [n > case.max_length for n in case.token_counts(texts)]
    # One text at a time too: a text alone is padded least of all.
    for text in [texts[0], texts[12], texts[-3]]:
        alone = httpx.post(f"{converted.server.url}/predict", json={"text": text}, timeout=30).json()
        row = [alone["predictions"][0]["scores"][label] for label in case.labels]
        np.testing.assert_allclose(row, case.predict([text])[0], atol=1e-4, rtol=0)


def test_the_bundle_records_its_source_and_parity(converted: Converted) -> None:
    case, bundle = converted.case, load_bundle(converted.bundle)
    manifest = bundle.manifest
    assert manifest.labels == case.labels and manifest.max_length == case.max_length
    source = manifest.source
    assert source is not None
    if case.model_path.is_file():
        assert source["model"]["sha256"] == sha256_file(case.model_path)
        assert source["keras"] and source["tensorflow"]
    else:
        assert len(source["model"]["sha256_of_files"]) == 64
    if case.tokenizer_path is not None:
        assert source["tokenizer"]["sha256"] == sha256_file(case.tokenizer_path)
    parity = manifest.parity
    assert parity is not None
    assert parity["max_abs_diff"] <= 1e-4 and parity["argmax_mismatches"] == 0 and parity["ids_identical"]
    assert parity["probes"] >= 40 and parity["user_probes"] == 10
    assert parity["padding_invariant"] is converted.invariant is bundle.tokenizer.padding_invariant
    spec = json.loads((converted.bundle / "tokenizer.json").read_text())
    assert spec["kind"] == ("text_vectorization" if case.tokenizer_path is None else "keras_tokenizer")
    assert f"bundle written to {converted.bundle}" in converted.stdout
