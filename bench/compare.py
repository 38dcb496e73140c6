"""Two servers in alternating pairs: is B faster or slower than A, on this noisy machine?

    python -m bench.compare --a-dir /tmp/textserve-old --pairs 5            # old code vs this checkout
    python -m bench.compare --a-env TEXTSERVE_MODEL_PATH=/tmp/lstm/sentiment --b-env ... --cells 64x1 64x16
    python -m bench.compare --a-dir /tmp/old --a-env TEXTSERVE_WORKERS=2 --b-env TEXTSERVE_WORKERS=2 \\
        --server-cpu 0,1 --load-cpu 0,1                                        # both cores each
    python -m bench.compare --b-env TEXTSERVE_TRACING=true --otlp-sink         # tracing off / on
    python -m bench.compare --api grpc --b-env TEXTSERVE_GRPC_SCHED_BATCH=false --cells 8x1 64x1 64x16

A and B are ``python -m service`` started from a checkout (``--a-dir``/``--b-dir``, default
this one) with extra settings (``--a-env``/``--b-env``). Each pair starts A and B in turn
(A first in odd pairs, B first in even ones, so a drift of the machine's speed falls on both
alike), measures every cell on each (``--api``: /predict or V2 over HTTP with wrk, gRPC's
ModelInfer with h2load), and stops it. The report gives each pair's texts/s and B/A, the
median ratio over the pairs (a ratio is compared within a pair, minutes apart at most, never
across runs), and how many times the server's threads were put on a CPU per request. Results
go to ``bench/results/compare-<time>`` (``.json`` and ``.md``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.run import REPO, RESULTS, Server, measure_cell, rss_mb


def _env(pairs: list[str]) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in pairs)


def _cell(text: str) -> tuple[int, int]:
    concurrency, texts = text.lower().split("x")
    return int(concurrency), int(texts)


def otlp_sink() -> str:
    """An OTLP/HTTP endpoint on loopback that answers every export with 200 and keeps nothing."""

    class Sink(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def measure(side: dict[str, Any], cells: list[tuple[int, int]], args: argparse.Namespace) -> dict[str, Any]:
    server = Server(args.server_cpu, args.port, side["env"], cwd=side["dir"])
    try:
        out: dict[str, Any] = {"ready_s": server.ready_s, "rss_mb": rss_mb(server.proc.pid), "cells": {}}
        print(f" {side['name']}:", flush=True)
        for concurrency, texts in cells:
            # The benchmark's own cell: gRPC refusals counted from the server's metrics, HTTP V2
            # given the gRPC load's bodies.
            cell = measure_cell(server, concurrency, texts, args, api=args.api)
            out["cells"][f"{concurrency}x{texts}"] = {
                "texts_per_s": cell["texts_per_s"],
                "p99_ms": cell["latency_us"]["p99"] / 1000,
                "errors": cell["error_count"],
                "switches_per_request": cell["cpu"]["switches_per_request"],
            }
    finally:
        server.stop()
    return out


def _switches(cell: dict[str, Any]) -> str:
    value = cell.get("switches_per_request")  # absent from results written before it was counted
    return "-" if value is None else f"{value:.1f}"


def report(result: dict[str, Any]) -> str:
    a, b = result["a"], result["b"]
    lines = [
        f"# {b['name']} (B) against {a['name']} (A), {len(result['pairs'])} alternating pairs",
        "",
        f"A: {a['dir']} {' '.join(f'{k}={v}' for k, v in a['env'].items())}".rstrip(),
        f"B: {b['dir']} {' '.join(f'{k}={v}' for k, v in b['env'].items())}".rstrip(),
        f"{result.get('api', 'predict')}, server on CPU {result['server_cpu']}, load on CPU {result['load_cpu']},"
        f" {result['seconds']:g} s per cell",
        "",
        "| cell | pair | A texts/s | B texts/s | B / A | A p99 ms | B p99 ms | errors A/B | switches/req A/B |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for cell in result["cells"]:
        ratios = []
        for i, pair in enumerate(result["pairs"], 1):
            ca, cb = pair["a"]["cells"][cell], pair["b"]["cells"][cell]
            ratio = cb["texts_per_s"] / ca["texts_per_s"] if ca["texts_per_s"] else float("nan")
            ratios.append(ratio)
            lines.append(
                f"| {cell} | {i} | {ca['texts_per_s']:,.0f} | {cb['texts_per_s']:,.0f} | {ratio:.3f} |"
                f" {ca['p99_ms']:.1f} | {cb['p99_ms']:.1f} | {ca['errors']}/{cb['errors']} |"
                f" {_switches(ca)}/{_switches(cb)} |"
            )
        lines.append(
            f"| **{cell}** | median | | | **{statistics.median(ratios):.3f}** "
            f"({min(ratios):.3f}-{max(ratios):.3f}) | | | | |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--a-dir", type=Path, default=REPO)
    parser.add_argument("--b-dir", type=Path, default=REPO)
    parser.add_argument("--a-name", default="A")
    parser.add_argument("--b-name", default="B")
    parser.add_argument("--a-env", nargs="*", default=[])
    parser.add_argument("--b-env", nargs="*", default=[])
    parser.add_argument("--api", choices=["predict", "v2", "grpc"], default="predict")
    parser.add_argument("--grpc-connections", type=int, default=8,
                        help="HTTP/2 connections the gRPC load is spread over")
    parser.add_argument("--cells", nargs="+", default=["64x1", "64x16"], help="CONCURRENCYxTEXTS")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--load-cpu", default="1")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--otlp-sink", action="store_true",
                        help="run an OTLP/HTTP receiver that drops what it gets, and point both servers at it"
                             " (for TEXTSERVE_TRACING=true on one side)")
    args = parser.parse_args()
    cells = [_cell(c) for c in args.cells]
    if args.otlp_sink:
        endpoint = f"OTEL_EXPORTER_OTLP_ENDPOINT={otlp_sink()}"
        args.a_env, args.b_env = [*args.a_env, endpoint], [*args.b_env, endpoint]
    sides = {
        key: {"name": getattr(args, f"{key}_name"), "dir": str(getattr(args, f"{key}_dir").resolve()),
              "env": _env(getattr(args, f"{key}_env"))}
        for key in ("a", "b")
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"a": sides["a"], "b": sides["b"], "api": args.api,
                              "cells": [f"{c}x{t}" for c, t in cells], "server_cpu": args.server_cpu,
                              "load_cpu": args.load_cpu, "seconds": args.seconds, "pairs": []}
    for i in range(args.pairs):
        order = ("a", "b") if i % 2 == 0 else ("b", "a")
        print(f"pair {i + 1} of {args.pairs}", flush=True)
        result["pairs"].append({key: measure(sides[key], cells, args) for key in order})
    stem = RESULTS / f"compare-{dt.datetime.now():%Y%m%d-%H%M%S}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1))
    stem.with_suffix(".md").write_text(report(result))
    print(report(result))
    print(f"written to {stem}.json and .md")


if __name__ == "__main__":
    main()
