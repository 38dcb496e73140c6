"""The converter's graphs: the fused LSTM graph is only a first attempt, kept only if parity
holds; a wrong one is dropped for the generic graph, not shipped."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import onnx
import pytest

import model_export.convert.graph as graph
from model_export.convert import main as convert_main
from tests.export.keras_cases import Case, TokenizerRecipe, tokenizer_case

pytestmark = pytest.mark.export
L = keras.layers


@pytest.fixture(scope="module")
def masked_lstm(tmp_path_factory: pytest.TempPathFactory) -> Case:
    """Pre-padded, so the fused graph (fed post-padded rows) is right only with its mask."""
    return tokenizer_case("masked", tmp_path_factory.mktemp("masked"), TokenizerRecipe(classes=2, maxlen=12),
                          lambda v: [L.Embedding(v, 8, mask_zero=True), L.LSTM(8), L.Dense(1, activation="sigmoid")])


def manifest(models: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((models / "masked" / "1" / "manifest.json").read_text())
    return data


def test_a_masked_lstm_gets_the_fused_graph(masked_lstm: Case, tmp_path: Path) -> None:
    assert convert_main(masked_lstm.cli_args(tmp_path)[1:]) == 0
    parity = manifest(tmp_path)["parity"]
    assert isinstance(parity, dict) and parity["onnx_graph"] == graph.FUSED and parity["padding_invariant"]
    ops = {n.op_type for n in onnx.load(str(tmp_path / "masked" / "1" / "model.onnx")).graph.node}
    assert "LSTM" in ops and "Loop" not in ops


def test_a_fused_graph_that_fails_parity_is_replaced_by_the_generic_one(
    masked_lstm: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without the sequence_lens rewrite the twin runs over padding: wrong, and caught."""
    monkeypatch.setattr(graph, "mask_with_sequence_lengths", lambda proto: None)
    assert convert_main(masked_lstm.cli_args(tmp_path)[1:]) == 0
    assert "the fused LSTM graph failed its check (parity failed" in capsys.readouterr().out
    parity = manifest(tmp_path)["parity"]
    assert isinstance(parity, dict) and parity["onnx_graph"] == graph.GENERIC and parity["max_abs_diff"] <= 1e-4
    assert sorted(p.name for p in (tmp_path / "masked").iterdir()) == ["1"]
