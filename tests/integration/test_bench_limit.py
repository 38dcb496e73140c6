"""The limit script on the shipped model: the best batch size, then its sustained run."""

from __future__ import annotations

from bench.limit import run
from tests.conftest import SHIPPED_MODEL


def test_the_best_batch_size_runs_once_more_for_the_sustained_figure() -> None:
    result = run(SHIPPED_MODEL, [1], 0.02, batch_sizes=(1, 8), sustained=0.1)
    best = result["limit"]["1"]
    assert best["batch"] == max(result["rows"], key=lambda r: r["texts_per_s"])["batch"]
    assert best["texts_per_s"] == max(r["texts_per_s"] for r in result["rows"])
    assert best["sustained_texts_per_s"] > 0


def test_without_a_sustained_time_only_the_peak_is_reported() -> None:
    best = run(SHIPPED_MODEL, [1], 0.02, batch_sizes=(1,))["limit"]["1"]
    assert set(best) == {"batch", "texts_per_s"}
