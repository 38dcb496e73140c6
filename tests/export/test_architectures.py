"""Every architecture trains on a small slice of the corpus, exports with tf2onnx, passes the
parity checks and gives a text the same probabilities however much padding follows it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from service.bundle.format import Bundle, load_bundle
from service.bundle.options import RuntimeOptions
from service.bundle.runtime import ModelRuntime

pytestmark = pytest.mark.export
SMALL = {"limit_rows": 800, "epochs": 1, "verbose": 0}
TEXTS = [
    "",
    "ok",
    "@united thanks, great crew!",
    "lost my bag again and nobody at the desk could tell me where it went, worst trip ever",
    " ".join(["delayed"] * 60),  # truncated at max_length
    "the self-driving car stopped for the cat :)",
]


def export(tmp_path: Path, **options: object) -> Bundle:
    from model_export import pipeline
    from model_export.options import ExportOptions

    final = pipeline.run(ExportOptions(output_dir=tmp_path, **{**SMALL, **options}))
    return load_bundle(final)


def assert_padding_changes_nothing(bundle: Bundle, variant: str, atol: float = 1e-5) -> None:
    """Each text alone at its own length, padded to max_length, and batched with longer texts."""
    runtime = ModelRuntime(bundle, RuntimeOptions(variant=variant))
    tokenizer = bundle.tokenizer
    full = runtime.predict(tokenizer.encode(TEXTS))
    seqs = [tokenizer.ids(t) for t in TEXTS]
    batch = runtime.predict(tokenizer.pad(seqs, max(len(s) for s in seqs)))
    alone = np.vstack([runtime.predict(tokenizer.pad([s], max(1, len(s)))) for s in seqs])
    np.testing.assert_allclose(batch, full, atol=atol)
    np.testing.assert_allclose(alone, full, atol=atol)
    np.testing.assert_allclose(full.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("arch", ["lstm", "bilstm", "cnn", "transformer"])
def test_each_architecture_exports_a_checked_padding_invariant_bundle(tmp_path: Path, arch: str) -> None:
    bundle = export(tmp_path, arch=arch, ensemble=1)
    manifest = bundle.manifest
    assert manifest.training["hyperparameters"]["arch"] == arch
    parity = manifest.parity
    assert parity is not None
    assert parity["rows"] == manifest.metrics["test"]["rows"]
    assert parity["max_abs_diff"] <= 1e-4 and parity["bucketed_max_abs_diff"] <= 1e-4
    assert parity["argmax_mismatches"] == 0

    ops = [n.op_type for n in onnx.load(str(bundle.model_path)).graph.node]
    assert "Loop" not in ops
    if arch in ("lstm", "bilstm"):
        assert parity["tf2onnx_loop_max_abs_diff"] <= 1e-4
        assert ops.count("LSTM") == 2
    if arch == "cnn":
        assert "Conv" in ops

    assert_padding_changes_nothing(bundle, "fp32")
    if "int8" in manifest.variants:
        # Dynamic quantization scales activations by each run's whole input tensor, so an int8
        # text moves slightly with its batch mates and padding (~1e-4 here), never by much.
        assert_padding_changes_nothing(bundle, "int8", atol=1e-2)

    (card,) = manifest.training["cards"]
    assert card["arch"] == arch
    assert card["parameters"] > 0 and card["onnx_bytes"] == bundle.manifest.files["model.onnx"].bytes
    assert set(card["ms_per_text"]) == {"batch_1", "batch_32"}
    assert card["test"]["accuracy"] == manifest.metrics["test"]["accuracy"]


def test_an_ensemble_of_bidirectional_lstms_is_averaged_inside_one_graph(tmp_path: Path) -> None:
    """Two copies: two final LSTMs for the sequence_lens rewrite, one Average."""
    bundle = export(tmp_path, arch="bilstm", ensemble=2, quantize=False)
    manifest = bundle.manifest
    assert manifest.training["hyperparameters"]["ensemble"] == 2
    assert len(manifest.training["epochs_run"]) == 2
    assert manifest.parity is not None and manifest.parity["tf2onnx_loop_max_abs_diff"] <= 1e-4
    ops = [n.op_type for n in onnx.load(str(bundle.model_path)).graph.node]
    assert ops.count("LSTM") == 4
    assert_padding_changes_nothing(bundle, "fp32")
