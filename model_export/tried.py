"""What was tried on the default corpus (seed 42, whole corpus), with validation figures only.

Each run trained through the export's own code on the same split; ``python -m
model_export.search`` with the options in ``what`` reproduces a run (training is
deterministic); the test split played no part in any choice. The export copies this list
into the manifest (``training.tried``) and the report when it trains on that same corpus.
A single run moves by about half a point with its seed, so the choice rests on the
ensembles, not on one lucky run.
"""

from __future__ import annotations

from typing import Any


def _run(arch: str, what: str, accuracy: float, macro_f1: float, kept: str = "") -> dict[str, Any]:
    return {"arch": arch, "what": what, "validation_accuracy": accuracy, "validation_macro_f1": macro_f1,
            "kept": kept}


TRIED: tuple[dict[str, Any], ...] = (
    _run("lstm", "the previous default (embedding 128, 2 x LSTM 128, lr 3e-4)", 0.7592, 0.7357, "lstm recipe"),
    _run("bilstm", "the LSTM recipe with bidirectional layers", 0.7545, 0.7285, "bilstm recipe"),
    _run("transformer", "width 128, 4 heads, 2 blocks, ff 256, lr 5e-4, dropout 0.1", 0.7548, 0.7288),
    _run("transformer", "the same, lr 3e-4, dropout 0.3, embedding dropout 0.1", 0.7507, 0.7296),
    _run("transformer", "width 64, ff 128, lr 5e-4, dropout 0.1", 0.7587, 0.7333, "transformer recipe"),
    _run("cnn", "Kim: embedding 128, widths 3,4,5 x 100 filters, lr 1e-3", 0.7614, 0.7415),
    _run("cnn", "the same, lr 5e-4", 0.7548, 0.7376),
    _run("cnn", "the same, embedding dropout 0.3", 0.7595, 0.7401),
    _run("cnn", "the same, embedding 64", 0.7644, 0.7440),
    _run("cnn", "the same, embedding 256", 0.7620, 0.7429),
    _run("cnn", "widths 1,2 x 200", 0.7581, 0.7352),
    _run("cnn", "widths 1,2,3 x 200", 0.7677, 0.7469),
    _run("cnn", "widths 1,2,3 x 300", 0.7686, 0.7482),
    _run("cnn", "widths 1,2,3 x 200, dropout 0.3", 0.7691, 0.7484),
    _run("cnn", "widths 1,2,3 x 200, embedding dropout 0.2", 0.7677, 0.7459),
    _run("cnn", "widths 1,2,3 x 200, words seen once get ids too (min count 1)", 0.7686, 0.7485),
    _run("cnn", "widths 1,2,3 x 200, learning rate halved each epoch", 0.7677, 0.7469),
    _run("cnn", "widths 1,2,3 x 200, balanced class weights", 0.7556, 0.7416),
    _run("cnn", "widths 1-5 x 100", 0.7642, 0.7440),
    _run("cnn", "widths 1-5 x 200", 0.7664, 0.7452),
    _run("cnn", "embedding 64, widths 1,2,3 x 200", 0.7650, 0.7429),
    _run("cnn", "embedding 64, widths 1-5 x 200", 0.7705, 0.7505, "first copy of the default"),
    _run("cnn", "widths 1,2,3 x 200, 5 copies averaged (copies alone: 0.7589-0.7677)", 0.7713, 0.7483),
    _run("cnn", "widths 1,2,3 x 200, 3 copies averaged (20 MB: too large to ship)", 0.7650, 0.7416),
    _run("cnn", "embedding 64, widths 1,2,3 x 100, 3 copies averaged", 0.7606, 0.7362),
    _run("cnn", "embedding 64, widths 1,2,3 x 200, 3 copies averaged", 0.7606, 0.7352),
    _run("cnn", "embedding 64, widths 1-5 x 100, 3 copies averaged", 0.7664, 0.7431),
    _run("cnn", "embedding 32, widths 1-5 x 200, 3 copies averaged", 0.7664, 0.7454),
    _run("cnn", "embedding 64, widths 1-5 x 200, 3 copies averaged", 0.7710, 0.7501, "the default"),
)
