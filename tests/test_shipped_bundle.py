"""The bundle committed under models/ is what `make run` serves: it must meet the bar."""

from pathlib import Path

from service.bundle.format import load_bundle, sha256_file

ACCURACY_BAR = 0.74
MACRO_F1_BAR = 0.71
MAX_BUNDLE_BYTES = 15 * 1024 * 1024


def test_every_file_matches_its_checksum(shipped_bundle_dir: Path) -> None:
    manifest = load_bundle(shipped_bundle_dir).manifest
    listed = set(manifest.files)
    present = {
        p.relative_to(shipped_bundle_dir).as_posix()
        for p in shipped_bundle_dir.rglob("*") if p.is_file()
    } - {"manifest.json"}
    assert listed == present
    for rel, entry in manifest.files.items():
        assert sha256_file(shipped_bundle_dir / rel) == entry.sha256


def test_test_metrics_meet_the_bar(shipped_bundle_dir: Path) -> None:
    test = load_bundle(shipped_bundle_dir).manifest.metrics["test"]
    assert test["accuracy"] >= ACCURACY_BAR
    assert test["macro_f1"] >= MACRO_F1_BAR
    assert test["rows"] > 3000


def test_labels_are_the_corpus_labels_and_provenance_is_recorded(shipped_bundle_dir: Path) -> None:
    manifest = load_bundle(shipped_bundle_dir).manifest
    assert manifest.labels == ["negative", "neutral", "positive"]
    assert manifest.dataset["license"].startswith("MIT")
    assert manifest.dataset["rows_read"] == 38158
    assert len(manifest.dataset["sha256"]) == 64
    assert manifest.libraries["opset"] == 17
    assert manifest.libraries["tf2onnx"].startswith("1.17")


def test_parity_was_checked_on_the_whole_test_split(shipped_bundle_dir: Path) -> None:
    manifest = load_bundle(shipped_bundle_dir).manifest
    parity = manifest.parity
    assert parity is not None
    assert parity["rows"] == manifest.metrics["test"]["rows"]
    assert parity["max_abs_diff"] <= 1e-4
    assert parity["bucketed_max_abs_diff"] <= 1e-4
    assert parity["argmax_mismatches"] == 0
    assert parity["tf2onnx_loop_max_abs_diff"] <= 1e-4  # the fused graph equals tf2onnx's plain one


def test_the_served_graph_uses_fused_lstm_operators(shipped_bundle_dir: Path) -> None:
    """The fast graph (LSTM + sequence_lens), not tf2onnx's per-step Loop."""
    import onnx

    graph = onnx.load(str(shipped_bundle_dir / "model.onnx")).graph
    ops = [n.op_type for n in graph.node]
    assert ops.count("LSTM") == 2 and "Loop" not in ops
    assert all(n.input[4] == "textserve_sequence_lens" for n in graph.node if n.op_type == "LSTM")


def test_bundle_is_small_enough_to_commit(shipped_bundle_dir: Path) -> None:
    total = sum(p.stat().st_size for p in shipped_bundle_dir.rglob("*") if p.is_file())
    assert total <= MAX_BUNDLE_BYTES


def test_the_lstm_is_not_worse_than_the_linear_baseline(shipped_bundle_dir: Path) -> None:
    """TF-IDF + logistic regression, fitted and scored on the very same splits at export."""
    metrics = load_bundle(shipped_bundle_dir).manifest.metrics
    assert metrics["test"]["accuracy"] >= metrics["baseline"]["accuracy"]
    assert metrics["test"]["macro_f1"] >= metrics["baseline"]["macro_f1"]


def test_the_int8_variant_is_no_more_than_half_a_point_less_accurate(shipped_bundle_dir: Path) -> None:
    manifest = load_bundle(shipped_bundle_dir).manifest
    int8 = manifest.variants["int8"]
    assert int8.file == "model.int8.onnx" and int8.file in manifest.files
    drop = manifest.metrics["test"]["accuracy"] - int8.metrics["test"]["accuracy"]
    assert drop <= 0.005
    assert int8.agreement["argmax_agreement_vs_fp32"] >= 0.98
    assert int8.agreement["rows"] == manifest.metrics["test"]["rows"]
