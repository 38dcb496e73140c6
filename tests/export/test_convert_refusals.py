"""Bad input to ``textserve-export convert``: one clear line on stderr, exit code 2, nothing
written. Mistakes in the files and options are refused before TensorFlow is imported."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import keras
import pytest

from model_export.convert import main as convert_main
from tests.export.keras_cases import Case, TokenizerRecipe, dataset, tokenizer_case, write_json

pytestmark = pytest.mark.export
REPO = Path(__file__).resolve().parents[2]
L = keras.layers
PREFIX = "textserve-export convert: error: "
TF_LOG_LINE = re.compile(r"^([IWEF]\d{4} [\d:.]+ +\d+ \S+:\d+\] |WARNING: All log messages before absl::InitializeLog)")


@pytest.fixture(scope="module")
def user(tmp_path_factory: pytest.TempPathFactory) -> Case:
    """A classic model with a fixed input length of 10 and its tokenizer."""
    recipe = TokenizerRecipe(classes=2, maxlen=10, fixed_input=True, save_as="model.h5")
    return tokenizer_case("user", tmp_path_factory.mktemp("user"), recipe,
                          lambda v: [L.Embedding(v, 4), L.LSTM(4), L.Dense(1, activation="sigmoid")])


def nothing_written(models: Path) -> bool:
    """Not even the directories a successful run would have made."""
    return not models.exists()


def test_mistakes_in_files_and_options_are_refused_before_tensorflow_is_imported(user: Case, tmp_path: Path) -> None:
    models = tmp_path / "models"
    (models / "user" / "3").mkdir(parents=True)
    not_h5 = tmp_path / "model.h5"
    not_h5.write_text("not a model")
    not_json = tmp_path / "tok.json"
    not_json.write_text("{ not json")
    not_tokenizer = write_json(tmp_path / "other.json", {"class_name": "StringLookup", "config": {}})
    base = ["convert", "--output-dir", str(models), "--name", "user"]
    model, tok = ["--keras-model", str(user.model_path)], ["--tokenizer", str(user.tokenizer_path)]
    cases = [
        ([*base, "--keras-model", str(tmp_path / "missing.h5"), "--labels", "a,b"], "missing.h5: no such file"),
        ([*base, "--keras-model", str(not_h5), "--labels", "a,b"], "is not a Keras model"),
        ([*base, "--keras-model", str(tmp_path), "--labels", "a,b"], "without saved_model.pb"),
        ([*base, *model, "--tokenizer", str(tmp_path / "nope.json"), "--labels", "a,b"], "nope.json: no such file"),
        ([*base, *model, "--tokenizer", str(not_json), "--labels", "a,b"], "tok.json is not the JSON of a Keras Tokenizer"),
        ([*base, *model, "--tokenizer", str(not_tokenizer), "--labels", "a,b"], "other.json is not the JSON of a Keras Tokenizer"),
        ([*base, *model, *tok, "--labels", "positive"], "names 1 class"),
        ([*base, *model, *tok, "--labels", "a,a"], "repeats a label"),
        ([*base, *model, *tok, "--labels", "a,b", "--version", "3"], "already exists"),
        ([*base, *model, *tok, "--labels", "a,b", "--padding", "left"], "invalid choice: 'left'"),
        ([*base, *model, *tok, "--labels", "a,b", "--max-length", "0"], "must be a positive integer"),
        ([*base, *model, *tok], "--labels"),
        ([*base, *model, *tok, "--labels", "a,b", "--probe-texts", str(tmp_path / "none.txt")], "none.txt: no such file"),
    ]
    code = (
        "import contextlib, io, json, sys\n"
        "from model_export.__main__ import main\n"
        "out = []\n"
        f"for argv in {[argv for argv, _ in cases]!r}:\n"
        "    err = io.StringIO()\n"
        "    with contextlib.redirect_stderr(err):\n"
        "        try:\n"
        "            rc = main(argv)\n"
        "        except SystemExit as exc:\n"
        "            rc = exc.code\n"
        "    out.append([rc, err.getvalue()])\n"
        "print(json.dumps({'results': out, 'tensorflow': 'tensorflow' in sys.modules}))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=True)
    report = json.loads(run.stdout)
    assert report["tensorflow"] is False
    for (argv, expected), (rc, stderr) in zip(cases, report["results"], strict=True):
        lines = stderr.splitlines()
        assert rc == 2, argv
        assert len(lines) == 1 and lines[0].startswith(PREFIX) and expected in lines[0], (argv, stderr)
    assert sorted(p.name for p in (models / "user").iterdir()) == ["3"]


def refused(argv: list[str], capfd: pytest.CaptureFixture[str], models: Path) -> str:
    """Run the CLI in this process; it must refuse with one line and write nothing. (In this
    process TensorFlow was imported by the test, so its C++ start-up log lines, which the CLI
    keeps off stderr, may appear here: they are left out.)"""
    assert convert_main(["--output-dir", str(models), *argv]) == 2
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if not TF_LOG_LINE.match(line)]
    assert len(lines) == 1 and lines[0].startswith(PREFIX), err
    assert nothing_written(models), sorted(str(p) for p in models.rglob("*"))
    return lines[0]


def save(tmp_path: Path, model: keras.Model, name: str = "model.keras") -> str:
    path = tmp_path / name
    model.save(path)
    return str(path)


def ids_model(layers: list[object], length: int | None = None) -> keras.Model:
    return keras.Sequential([keras.Input(shape=(length,), dtype="int32"), *layers])  # type: ignore[arg-type]


# (layers after the input, extra arguments, what the one line must say)
REFUSED_MODELS: list[tuple[str, Callable[[int], list[object]], list[str], str]] = [
    ("linear output", lambda v: [L.Embedding(v, 4), L.GlobalAveragePooling1D(), L.Dense(1)], [],
     "not a sigmoid: it is not a probability"),
    ("multi-label", lambda v: [L.Embedding(v, 4), L.GlobalAveragePooling1D(), L.Dense(2, activation="sigmoid")], [],
     "independent sigmoids (multi-label)"),
    ("unsupported layer", lambda v: [L.Embedding(v, 4), L.GlobalAveragePooling1D(),
                                     L.Discretization(bin_boundaries=[0.0]), L.Dense(1, activation="sigmoid")], [],
     "tf2onnx cannot convert the model's TensorFlow op Bucketize"),
    ("NaN in Keras", lambda v: [L.Embedding(v, 4, mask_zero=True), L.GlobalAveragePooling1D(),
                                L.Dense(1, activation="sigmoid")], [],
     "your Keras model itself gives scores that are not numbers ([nan, nan]) on"),
    # TensorFlow's Relu turns the masked average's NaN into 0, onnxruntime's keeps it.
    ("parity", lambda v: [L.Embedding(v, 4, mask_zero=True), L.GlobalAveragePooling1D(),
                          L.Dense(4, activation="relu"), L.Dense(1, activation="sigmoid")], [],
     "parity failed: max |diff| inf (tolerance 1e-04)"),
]


@pytest.mark.parametrize(("name", "layers", "extra", "expected"), REFUSED_MODELS, ids=[c[0] for c in REFUSED_MODELS])
def test_models_textserve_cannot_serve_as_keras_does_are_refused(
    name: str, layers: Callable[[int], list[object]], extra: list[str], expected: str,
    user: Case, tmp_path: Path, capfd: pytest.CaptureFixture[str],
) -> None:
    path = save(tmp_path, ids_model(layers(40)))
    args = ["--keras-model", path, "--tokenizer", str(user.tokenizer_path), "--labels", "a,b", "--max-length", "10"]
    line = refused([*args, *extra], capfd, tmp_path / "models")
    assert expected in line
    if name in ("NaN in Keras", "parity"):
        assert "built-in: empty ''" in line


def test_options_that_contradict_the_model_are_refused(user: Case, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    models = tmp_path / "models"
    base = ["--keras-model", str(user.model_path), "--tokenizer", str(user.tokenizer_path)]
    assert "--labels names 3 classes but the model ends in one sigmoid unit" in refused(
        [*base, "--labels", "a,b,c"], capfd, models)
    assert "--max-length 12 contradicts the model: its input takes exactly 10 ids per text" in refused(
        [*base, "--labels", "a,b", "--max-length", "12"], capfd, models)
    assert "--tokenizer is required" in refused(["--keras-model", str(user.model_path), "--labels", "a,b"], capfd, models)
    dynamic = save(tmp_path, ids_model([L.Embedding(40, 4), L.GlobalAveragePooling1D(), L.Dense(3, activation="softmax")]))
    assert "--labels names 2 classes but the model outputs 3 scores" in refused(
        ["--keras-model", dynamic, "--tokenizer", str(user.tokenizer_path), "--labels", "a,b"], capfd, models)
    assert "--max-length is required" in refused(
        ["--keras-model", dynamic, "--tokenizer", str(user.tokenizer_path), "--labels", "a,b,c"], capfd, models)


def test_files_keras_cannot_read_or_models_of_another_shape_are_refused(
    user: Case, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    models = tmp_path / "models"
    tok = ["--tokenizer", str(user.tokenizer_path), "--labels", "a,b"]
    fake = tmp_path / "fake.keras"
    with zipfile.ZipFile(fake, "w") as archive:
        archive.writestr("hello.txt", "not a model")
    assert "Keras cannot load it as a model" in refused(["--keras-model", str(fake), *tok], capfd, models)
    first, second = keras.Input(shape=(5,), dtype="int32"), keras.Input(shape=(5,), dtype="int32")
    joined = L.Concatenate()([L.Embedding(40, 4)(first), L.Embedding(40, 4)(second)])
    two = keras.Model([first, second], L.Dense(1, activation="sigmoid")(L.GlobalAveragePooling1D()(joined)))
    assert "has 2 inputs and 1 outputs" in refused(["--keras-model", save(tmp_path, two, "two.keras"), *tok], capfd, models)


def test_vectorizer_models_refuse_what_their_layer_cannot_be(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    models = tmp_path / "models"
    texts, _ = dataset(2, n=40)
    import tensorflow as tf

    def vectorizer_model(**settings: object) -> str:
        layer = L.TextVectorization(max_tokens=30, **settings)  # type: ignore[arg-type]
        layer.adapt(tf.constant(texts))
        ids = settings.get("output_mode", "int") == "int"
        strings = keras.Input(shape=(1,) if ids else (), dtype="string")
        x = layer(strings)
        x = L.GlobalAveragePooling1D()(L.Embedding(30, 4)(x)) if ids else x
        model = keras.Model(strings, L.Dense(1, activation="sigmoid")(x))
        name = "tv-" + "-".join(f"{k}" for k in settings) + ".keras"
        return save(tmp_path, model, name)

    int_model = vectorizer_model(output_sequence_length=8)
    assert "drop --tokenizer" in refused(
        ["--keras-model", int_model, "--labels", "a,b", "--tokenizer", str(write_json(tmp_path / "t.json", {
            "class_name": "Tokenizer", "config": {"word_index": json.dumps({"a": 1})}}))], capfd, models)
    assert "--padding pre contradicts it" in refused(
        ["--keras-model", int_model, "--labels", "a,b", "--padding", "pre"], capfd, models)
    assert "--max-length 9 contradicts the model: its TextVectorization layer outputs 8" in refused(
        ["--keras-model", int_model, "--labels", "a,b", "--max-length", "9"], capfd, models)
    multi_hot = vectorizer_model(output_mode="multi_hot")
    assert "outputs 'multi_hot', not token ids" in refused(["--keras-model", multi_hot, "--labels", "a,b"], capfd, models)
    no_length = vectorizer_model(split="whitespace")
    assert "--max-length is required: the model's TextVectorization layer has no output_sequence_length" in refused(
        ["--keras-model", no_length, "--labels", "a,b"], capfd, models)


def test_a_refusal_after_loading_tensorflow_is_one_line_from_the_real_cli(user: Case, tmp_path: Path) -> None:
    """As a user runs it: TensorFlow's start-up lines never reach stderr, only the refusal."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    argv = ["convert", "--keras-model", str(user.model_path), "--tokenizer", str(user.tokenizer_path),
            "--labels", "a,b", "--max-length", "11", "--output-dir", str(tmp_path / "models")]
    run = subprocess.run([sys.executable, "-m", "model_export", *argv], cwd=REPO, capture_output=True, text=True,
                         timeout=300, env=env)
    assert run.returncode == 2
    assert run.stderr == f"{PREFIX}--max-length 11 contradicts the model: its input takes exactly 10 ids per text\n"
    assert nothing_written(tmp_path / "models")
