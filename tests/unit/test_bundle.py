import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from service.bundle.format import BundleError, load_bundle, resolve_bundle_dir
from service.bundle.runtime import ModelRuntime


def edit_manifest(bundle: Path, **changes: object) -> None:
    path = bundle / "manifest.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_shipped_bundle_loads(shipped_bundle_dir: Path) -> None:
    bundle = load_bundle(shipped_bundle_dir)
    assert bundle.manifest.labels == ["negative", "neutral", "positive"]
    assert bundle.tokenizer.max_length == bundle.manifest.max_length


def test_newest_numeric_version_is_chosen(bundle_copy: Path) -> None:
    root = bundle_copy.parent
    edit_manifest(bundle_copy, version=1)  # the copy sits in .../1, whichever version is shipped
    shutil.copytree(bundle_copy, root / "10")
    edit_manifest(root / "10", version=10)
    (root / "9").mkdir()
    (root / ".staging-x").mkdir()
    assert resolve_bundle_dir(root) == root / "10"
    assert load_bundle(root).manifest.version == 10
    assert load_bundle(root / "1").manifest.version == 1


def flip_byte(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: flip_byte(b / "model.onnx"), "model.onnx fails its sha256 check"),
        (lambda b: flip_byte(b / "tokenizer.json", 40), "tokenizer.json fails its sha256 check"),
        (lambda b: (b / "model.onnx").write_bytes((b / "model.onnx").read_bytes()[:1000]), "truncated"),
        (lambda b: (b / "tokenizer.json").unlink(), "tokenizer.json is missing"),
        (lambda b: (b / "manifest.json").unlink(), "manifest.json is missing"),
        (lambda b: (b / "manifest.json").write_text("{not json"), "manifest.json is unreadable"),
        (lambda b: edit_manifest(b, schema_version=2), "schema_version 2 is not 1"),
        (lambda b: edit_manifest(b, labels=["a", "b", "c", "d"]), "does not match 4 labels"),
        (lambda b: edit_manifest(b, max_length=0), "max_length"),
        (lambda b: edit_manifest(b, files={}), "files does not list"),
    ],
    ids=[
        "flipped-model-byte", "flipped-vocab-byte", "truncated-model", "missing-vocab",
        "missing-manifest", "corrupt-manifest", "schema-version", "label-count", "max-length", "no-files",
    ],
)
def test_damaged_bundles_are_refused(bundle_copy: Path, damage, message: str) -> None:
    damage(bundle_copy)
    with pytest.raises(BundleError, match=message):
        load_bundle(bundle_copy)


def test_labels_file_must_agree_with_manifest(bundle_copy: Path) -> None:
    data = json.loads((bundle_copy / "manifest.json").read_text())
    data["labels"] = list(reversed(data["labels"]))
    (bundle_copy / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match=r"labels\.json"):
        load_bundle(bundle_copy)


def test_missing_model_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="does not exist"):
        load_bundle(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match=r"no manifest\.json and no numeric version"):
        load_bundle(tmp_path / "empty")


def test_runtime_refuses_a_manifest_that_lies_about_the_input(bundle_copy: Path) -> None:
    data = json.loads((bundle_copy / "manifest.json").read_text())
    data["input"]["name"] = "tokens"
    (bundle_copy / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match="input is 'input_ids'"):
        ModelRuntime(load_bundle(bundle_copy))


def test_runtime_gives_probabilities_per_label(shipped_bundle_dir: Path) -> None:
    runtime = ModelRuntime(load_bundle(shipped_bundle_dir))
    runtime.warm_up()
    ids = runtime.bundle.tokenizer.encode(["what a great flight", "worst service ever", ""])
    probs = runtime.predict(ids)
    assert probs.shape == (3, 3)
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
