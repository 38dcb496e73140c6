"""Train on a small slice of the real corpus, export with tf2onnx, load as the service does."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from service.bundle.format import load_bundle
from service.bundle.runtime import ModelRuntime

pytestmark = pytest.mark.export
REPO = Path(__file__).resolve().parents[2]
QUICK = ["--limit-rows", "1500", "--epochs", "1", "--verbose", "0"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "model_export", *args],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )


def test_cli_writes_a_verified_bundle_the_service_can_load(tmp_path: Path) -> None:
    """The default architecture and recipe (an ensemble), and a card for its first copy alone."""
    result = run_cli(*QUICK, "--output-dir", str(tmp_path), "--name", "quick", "--cards", "cnn")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "parity: max |diff|" in result.stdout
    bundle_dir = tmp_path / "quick" / "1"
    assert sorted(p.name for p in (tmp_path / "quick").iterdir()) == ["1"]  # no staging left
    assert bundle_dir.stat().st_mode & 0o055 == 0o055  # others may read it (the service's own user)

    bundle = load_bundle(tmp_path / "quick")
    manifest = bundle.manifest
    assert manifest.name == "quick" and manifest.version == 1
    assert manifest.labels == ["negative", "neutral", "positive"]
    assert manifest.input.shape == ["batch", "sequence"]
    assert manifest.parity is not None
    assert manifest.parity["max_abs_diff"] <= 1e-4
    assert manifest.parity["rows"] == manifest.metrics["test"]["rows"]
    assert manifest.dataset["subsampled_to"] == 1500
    for name in ("report.md", "report.json", "curves.png", "confusion_matrix.png"):
        assert (bundle_dir / "report" / name).stat().st_size > 0
    report = json.loads((bundle_dir / "report" / "report.json").read_text())
    copies = manifest.training["hyperparameters"]["ensemble"]
    assert [len(h["loss"]) for h in report["histories"]] == [1] * copies
    cards = manifest.training["cards"]
    assert [c["arch"] for c in cards] == ["cnn"] * (2 if copies > 1 else 1)
    assert [c["recipe"]["ensemble"] for c in cards][-1] == 1
    split = json.loads((bundle_dir / "report" / "split.json").read_text())
    assert [len(split[name]) for name in ("train", "validation", "test")] == list(manifest.dataset["splits"].values())

    runtime = ModelRuntime(bundle)
    runtime.warm_up()
    texts = ["thanks for the great flight", "worst customer service ever", ""]
    full = runtime.predict(bundle.tokenizer.encode(texts))
    short = runtime.predict(bundle.tokenizer.encode(texts, length=5))
    assert full.shape == (3, 3)
    np.testing.assert_allclose(full.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(short, full, atol=1e-5)

    again = run_cli(*QUICK, "--output-dir", str(tmp_path), "--name", "quick", "--version", "1")
    assert again.returncode == 2
    assert "already exists" in again.stderr
    assert load_bundle(bundle_dir).manifest.created_at == manifest.created_at


def test_an_export_that_differs_from_keras_is_refused_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from model_export import build, pipeline
    from model_export.model import ModelConfig, build_model
    from model_export.options import ExportOptions
    from model_export.parity import ParityError

    real_export = build.export_onnx

    def export_an_untrained_copy(model, path, opset, recurrent):  # type: ignore[no-untyped-def]
        import keras

        embedding = next(x for x in model.layers if isinstance(x, keras.layers.Embedding))
        config = ModelConfig(vocab_size=embedding.input_dim, n_classes=3, arch="lstm")
        return real_export(build_model(config, mask_padding=False), path, opset, recurrent)

    monkeypatch.setattr(build, "export_onnx", export_an_untrained_copy)
    options = ExportOptions(output_dir=tmp_path, limit_rows=1000, epochs=1, verbose=0, arch="lstm")
    with pytest.raises(ParityError, match="ONNX differs from Keras"):
        pipeline.run(options)
    assert list((tmp_path / "sentiment").iterdir()) == []
