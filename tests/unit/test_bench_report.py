"""The benchmark's report: medians over rounds are real rounds, and the table says so."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from bench.cpu import cpu_share, thread_cpu_seconds
from bench.run import batch_summary, cpu_bound, limit_texts_per_s, median_cell, peak_ratios, table, versus_bare


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
    assert "| 2,500 | 2,100-2,900 |" in row and row.endswith("| 0.50 | - | - | - |")  # no CPU figures
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


def test_cpu_share_splits_the_event_loop_from_the_model_thread() -> None:
    pid, model_thread, born_later = 100, 101, 102
    before = {pid: 1.0, model_thread: 2.0}
    after = {pid: 1.5, model_thread: 2.3, born_later: 0.1}
    share = cpu_share(pid, before, after, requests=1_000, texts=2_000, wall_s=1.0)
    assert share.loop_us_per_request == pytest.approx(500)  # 0.5 s over 1,000 requests
    assert share.model_us_per_text == pytest.approx(200)  # (0.3 + 0.1) s over 2,000 texts
    assert share.busy == pytest.approx(0.9)
    assert share.io_us_per_request == 0


def test_cpu_share_counts_grpcios_threads_per_request_apart_from_the_model() -> None:
    pid, model_thread, event_engine = 100, 101, 103
    before = {pid: 1.0, model_thread: 2.0, event_engine: 0.5}
    after = {pid: 1.5, model_thread: 2.3, event_engine: 0.6}
    share = cpu_share(pid, before, after, requests=1_000, texts=2_000, wall_s=1.0, io={event_engine})
    assert share.io_us_per_request == pytest.approx(100)  # 0.1 s over 1,000 requests
    assert share.model_us_per_text == pytest.approx(150)  # the inference thread only
    assert share.busy == pytest.approx(0.9)


def test_io_threads_finds_grpcios_threads_by_their_names() -> None:
    import grpc

    from bench.cpu import io_threads

    server = grpc.server(ThreadPoolExecutor(max_workers=1))  # starts grpcio's C-core threads
    server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        found = io_threads(os.getpid())
        names = {Path(f"/proc/{os.getpid()}/task/{tid}/comm").read_text().strip() for tid in found}
        assert found and all(name.startswith(("event_engine", "grpc_")) for name in names)
        assert os.getpid() not in found and threading.get_native_id() not in found
    finally:
        server.stop(None)


def test_cpu_share_counts_the_switches_per_request() -> None:
    share = cpu_share(100, {100: 1.0}, {100: 1.5}, requests=1_000, texts=1_000, wall_s=1.0, switches=14_600)
    assert share.switches_per_request == pytest.approx(14.6)


def test_thread_switches_counts_each_time_a_thread_goes_back_on_a_cpu() -> None:
    from bench.cpu import thread_switches

    before = thread_switches(os.getpid())
    for _ in range(20):
        time.sleep(0.001)  # each sleep takes this thread off its CPU, and its return puts it back
    assert thread_switches(os.getpid()) - before >= 20


def test_task_switches_reads_schedstat_else_the_context_switches_in_status(tmp_path: Path) -> None:
    from bench.cpu import task_switches

    (tmp_path / "status").write_text("Name:\tpython\nvoluntary_ctxt_switches:\t1031\nnonvoluntary_ctxt_switches:\t99\n")
    assert task_switches(tmp_path) == 1_130  # no schedstat (a kernel without it)
    (tmp_path / "schedstat").write_text("129044160 17959999 1131\n")
    assert task_switches(tmp_path) == 1_131
    assert task_switches(tmp_path / "ended") == 0


def test_thread_cpu_seconds_reads_this_process_threads() -> None:
    spin = threading.Thread(target=lambda: sum(range(3_000_000)))
    spin.start()
    spin.join()
    seconds = thread_cpu_seconds(os.getpid())
    assert os.getpid() in seconds and all(s >= 0 for s in seconds.values())
    assert seconds[os.getpid()] > 0  # this test process has run Python for a while


def test_the_cpu_columns_and_the_bound_follow_the_measured_shares() -> None:
    measured = cell(2_500, 55_000) | {"cpu": {"loop_us_per_request": 220.0, "model_us_per_text": 180.0,
                                              "busy": 0.99}}
    row = table({"limit_texts_per_s": 6_000.0, "cells": [measured]}).splitlines()[2]
    assert row.endswith("| 220 | 180 | 99% |")
    bound = cpu_bound(measured, 6_000.0)
    assert bound is not None
    assert "at most 2,500 texts/s" in bound  # 1e6 / (220 + 180)
    assert "loop share of at most 153 µs" in bound  # 2e6 / 6,000 - 180
    assert cpu_bound(cell(2_500, 55_000), 6_000.0) is None  # no CPU figures, no claim


def test_versus_bare_compares_the_cells_both_servers_ran() -> None:
    ours = [cell(2_400, 45_000), {**cell(4_000, 300_000), "texts_per_request": 16}]
    bare = [cell(3_000, 40_000)]  # the bare server ran 64 x 1 only
    lines = versus_bare(ours, bare, limit_texts_per_s=6_000.0)
    assert lines == [
        "conc 64 x 1: bare server 3,000 texts/s (0.50 x limit); textserve 2,400 (0.40 x limit), 80% of the bare server"
    ]


def test_the_ratio_divides_by_the_sustained_limit_and_reports_the_peak_beside_it() -> None:
    limit = {"limit": {"1": {"batch": 256, "texts_per_s": 7_000.0, "sustained_texts_per_s": 6_000.0}}}
    assert limit_texts_per_s(limit) == 6_000.0
    assert limit_texts_per_s({"limit": {"1": {"batch": 256, "texts_per_s": 7_000.0}}}) == 7_000.0  # older files
    sixteen = {**cell(5_600, 200_000), "texts_per_request": 16}
    assert peak_ratios([cell(3_500, 30_000), sixteen], 7_000.0) == (
        "the best 1-s runs' median 7,000, against which texts/s ÷ limit would be 0.50 at 64 x 1, 0.80 at 64 x 16"
    )


def test_workers_report_pairs_each_layout_with_one_worker_in_the_same_round() -> None:
    from bench.workers import LAYOUTS, summarize
    from bench.workers import table as workers_table

    def round_(one: float, threads: float, two: float) -> dict[str, dict[str, Any]]:
        return {name: {"cells": {"64 x 1": cell(v, 20_000)}, "rss_mb": 120.0 * (i + 1)}
                for i, ((name, _), v) in enumerate(zip(LAYOUTS, (one, threads, two), strict=True))}

    # The machine was slow in the second round: the ratio is taken within each round.
    rows = summarize([round_(4_000, 5_000, 7_000), round_(2_000, 2_400, 3_800), round_(4_200, 5_000, 7_200)])
    two = rows[-1]
    assert two["layout"] == "2 workers" and two["texts_per_s"] == 7_000 and two["range"] == (3_800, 7_200)
    assert two["ratio"] == pytest.approx(7_000 / 4_000)  # median of 1.75, 1.90, 1.71
    assert rows[0]["ratio"] == 1.0
    assert "| 2 workers | 64 x 1 | 7,000 | 3,800-7,200 | 1.75 |" in workers_table(rows)


def test_the_swap_bench_publishes_the_shipped_bundle() -> None:
    from bench.swap import shipped_bundle
    from service.bundle.format import load_bundle

    assert load_bundle(shipped_bundle()).manifest.name == "sentiment"


def test_grpc_over_http_v2_is_the_median_of_each_rounds_own_ratio() -> None:
    """A round measures both protocols back to back; the machine's speed drifts between rounds,
    so the ratio of the two medians (here 1,000 / 1,100 = 0.91) would mislead."""
    from bench.run import v2_table

    def cell(api: str, rounds: list[float]) -> dict[str, object]:
        return {"api": api, "concurrency": 64, "texts_per_request": 1, "req_per_s": rounds[1],
                "texts_per_s": sorted(rounds)[1], "rounds_texts_per_s": rounds, "error_count": 0,
                "latency_us": {"p50": 30_000, "p99": 50_000}, "batches": {"mean": 32.0}}

    http = cell("v2", [2_000.0, 1_100.0, 800.0])
    grpc = cell("grpc", [2_100.0, 1_000.0, 880.0])  # rounds: 1.05, 0.91, 1.10
    table = v2_table([http, grpc], rounds=True)
    assert "| gRPC | 64 | 1 |" in table
    assert table.rstrip().endswith("| 1.05 (0.91-1.10) |")


def test_the_protocol_table_shows_grpcios_io_threads_and_the_switches_beside_the_loop() -> None:
    from bench.run import v2_table

    grpc = {"api": "grpc", "concurrency": 64, "texts_per_request": 16, "req_per_s": 200.0, "texts_per_s": 3_200.0,
            "error_count": 0, "latency_us": {"p50": 30_000, "p99": 50_000}, "batches": {"mean": 250.0},
            "cpu": {"loop_us_per_request": 550.0, "model_us_per_text": 280.0, "busy": 1.0, "io_us_per_request": 64.0,
                    "switches_per_request": 14.62}}
    header, _, row = v2_table([grpc], rounds=False).splitlines()
    assert "| I/O threads µs/req | switches/req |" in header
    assert row.endswith("| 250.0 | 550 | 64 | 14.6 | - |")


def test_compare_reports_each_pairs_ratio_their_median_and_the_switches() -> None:
    from bench.compare import report

    def side(texts_per_s: float, switches: float | None) -> dict[str, Any]:
        cell = {"texts_per_s": texts_per_s, "p99_ms": 6.0, "errors": 0}
        return {"cells": {"8x1": cell if switches is None else cell | {"switches_per_request": switches}}}

    result = {"a": {"name": "A", "dir": "/a", "env": {}}, "b": {"name": "B", "dir": "/a", "env": {"X": "1"}},
              "api": "grpc", "cells": ["8x1"], "server_cpu": "0", "load_cpu": "1", "seconds": 8,
              "pairs": [{"a": side(1_000, 11.04), "b": side(1_100, 3.0)}, {"a": side(1_000, None), "b": side(900, 2.96)},
                        {"a": side(1_000, 11.1), "b": side(1_050, 3.1)}]}
    lines = report(result).splitlines()
    assert "grpc, server on CPU 0, load on CPU 1, 8 s per cell" in lines
    assert "| 8x1 | 1 | 1,000 | 1,100 | 1.100 | 6.0 | 6.0 | 0/0 | 11.0/3.0 |" in lines
    assert "| 8x1 | 2 | 1,000 | 900 | 0.900 | 6.0 | 6.0 | 0/0 | -/3.0 |" in lines  # a result from before the count
    assert lines[-1].startswith("| **8x1** | median | | | **1.050** (0.900-1.100) |")
