"""More than one worker process when the server is given both cores (``TEXTSERVE_WORKERS``).

    python -m bench.workers                  # ~3 minutes: 3 rounds x 3 servers x 2 cells
    python -m bench.workers --rounds 5 --texts 1

Unlike ``bench.run`` (one core for the server, one for wrk), every server here may use both
cores (``taskset -c 0,1``), and so may wrk: on a 2-vCPU machine the load generator takes
its share of the same cores, so these figures are what each server layout gets out of the
whole machine with wrk on it, compared in turns, not per-core figures. The servers:

* 1 worker (the default): one event loop and one inference thread;
* 1 worker, 2 onnxruntime threads: the same, with each batch run on both cores;
* 2 workers: two processes on the port (``TEXTSERVE_WORKERS=2``).

Each round starts each server, waits until all its workers are ready, and measures every
cell (``--concurrency`` clients x ``--texts`` per request, after a warm-up); the table
shows each cell's median round, the range over the rounds, and its texts/s over the one
worker's in the same round (the median of those ratios). RSS is the server's processes'
sum.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import time
from pathlib import Path
from typing import Any

from bench.load import run_load
from bench.run import RESULTS, Server, median_by, rss_mb

LAYOUTS: list[tuple[str, dict[str, str]]] = [
    ("1 worker", {}),
    ("1 worker, 2 onnxruntime threads", {"TEXTSERVE_INTRA_OP_THREADS": "2"}),
    ("2 workers", {"TEXTSERVE_WORKERS": "2"}),
]


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def wait_until_ready(server: Server, workers: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while server.log_path.read_text(errors="replace").count('"msg":"ready"') < workers:
        if time.monotonic() > deadline:
            raise SystemExit(f"{workers} workers not ready within {timeout:.0f} s; see {server.log_path}")
        time.sleep(0.05)


def summarize(rounds: list[dict[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per layout and cell: the median round, the range, and the median of the
    per-round ratios to the first layout (the baseline) in the same cell."""
    rows = []
    baseline = LAYOUTS[0][0]
    for name, _ in LAYOUTS:
        for cell in rounds[0][name]["cells"]:
            runs = [r[name]["cells"][cell] for r in rounds]
            ratios = [r[name]["cells"][cell]["texts_per_s"] / r[baseline]["cells"][cell]["texts_per_s"] for r in rounds]
            median = median_by(runs, lambda c: c["texts_per_s"])
            rows.append({
                "layout": name, "cell": cell, "texts_per_s": median["texts_per_s"],
                "range": (min(c["texts_per_s"] for c in runs), max(c["texts_per_s"] for c in runs)),
                "ratio": statistics.median(ratios), "p50_ms": median["latency_us"]["p50"] / 1000,
                "p99_ms": median["latency_us"]["p99"] / 1000, "errors": sum(c["error_count"] for c in runs),
                "rss_mb": max(r[name]["rss_mb"] for r in rounds),
            })
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| server | conc x texts/req | texts/s | texts/s range | x 1 worker | p50 ms | p99 ms | errors | RSS MB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        low, high = r["range"]
        lines.append(
            f"| {r['layout']} | {r['cell']} | {r['texts_per_s']:,.0f} | {low:,.0f}-{high:,.0f} | {r['ratio']:.2f} |"
            f" {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} | {r['rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/sentiment")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10, help="measured time per cell")
    parser.add_argument("--warmup", type=float, default=2, help="warm-up time per cell")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[64])
    parser.add_argument("--texts", type=int, nargs="+", default=[1, 16], help="texts per request")
    parser.add_argument("--cpus", default="0,1", help="the cores every server and wrk may use (taskset list)")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--json", type=Path, help="where to write the result (default bench/results/<time>.json)")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    rounds: list[dict[str, dict[str, Any]]] = []
    for number in range(1, args.rounds + 1):
        measured: dict[str, dict[str, Any]] = {}
        for name, env in LAYOUTS:
            workers = int(env.get("TEXTSERVE_WORKERS", "1"))
            server = Server(args.cpus, args.port, {"TEXTSERVE_MODEL_PATH": args.model, **env})
            try:
                wait_until_ready(server, workers)
                cells = {}
                for concurrency in args.concurrency:
                    for texts in args.texts:
                        cell = run_load(server.url, concurrency, texts, args.seconds, args.warmup, cpu=args.cpus)
                        cells[f"{concurrency} x {texts}"] = cell
                        print(f"round {number}, {name}, {concurrency} x {texts}: {cell['texts_per_s']:,.0f} texts/s",
                              flush=True)
                pids = [server.proc.pid, *children(server.proc.pid)]
                measured[name] = {"cells": cells, "rss_mb": sum(rss_mb(pid) for pid in pids)}
            finally:
                server.stop()
        rounds.append(measured)
    rows = summarize(rounds)
    print()
    print(table(rows))
    out = args.json or RESULTS / f"workers-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rounds": rounds, "rows": rows},
                              indent=1))
    print(f"\nfull results: {out}")


if __name__ == "__main__":
    main()
