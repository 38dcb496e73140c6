"""The benchmark's report: medians over rounds are real rounds, and the table says so."""

from __future__ import annotations

from typing import Any

from bench.run import batch_summary, median_cell, table


def cell(texts_per_s: float, p99_us: int) -> dict[str, Any]:
    return {
        "concurrency": 64, "texts_per_request": 1, "req_per_s": texts_per_s, "texts_per_s": texts_per_s,
        "error_count": 0, "latency_us": {"p50": 20_000, "p90": 30_000, "p99": p99_us},
        "batches": {"mean": 31.0, "p50_le": 32.0, "p90_le": 64.0},
    }


def test_median_cell_is_the_middle_round_with_its_own_latencies() -> None:
    median = median_cell([cell(2_900, 40_000), cell(2_100, 90_000), cell(2_500, 55_000)])
    assert median["texts_per_s"] == 2_500 and median["latency_us"]["p99"] == 55_000
    assert median["rounds_texts_per_s"] == [2_900, 2_100, 2_500]


def test_table_shows_the_range_over_rounds_and_the_ratio_to_the_limit() -> None:
    median = median_cell([cell(2_900, 40_000), cell(2_100, 90_000), cell(2_500, 55_000)])
    text = table({"rounds": 3, "limit_texts_per_s": 5_000.0, "cells": [median]})
    header, _, row = text.splitlines()
    assert "texts/s range" in header
    assert "| 2,500 | 2,100-2,900 |" in row and row.endswith("| 0.50 |")
    single = table({"limit_texts_per_s": 5_000.0, "cells": [cell(2_500, 55_000)]})
    assert "range" not in single


def test_batch_summary_counts_only_the_runs_between_two_scrapes() -> None:
    def page(counts: dict[str, int], total: int, texts: int) -> str:
        lines = [f'textserve_batch_size_bucket{{le="{le}"}} {n}' for le, n in counts.items()]
        return "\n".join([*lines, f"textserve_batch_size_sum {texts}", f"textserve_batch_size_count {total}"])

    before = page({"1.0": 5, "32.0": 5, "64.0": 5, "+Inf": 5}, 5, 5)
    after = page({"1.0": 5, "32.0": 9, "64.0": 15, "+Inf": 15}, 15, 5 + 4 * 30 + 6 * 50)
    summary = batch_summary(before, after)
    assert summary["runs"] == 10 and summary["mean"] == 42.0
    assert summary["p50_le"] == 64.0 and summary["p90_le"] == 64.0
