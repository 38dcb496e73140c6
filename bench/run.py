"""The benchmark: the per-core limit, then the real server under wrk, in one run.

The server is pinned to one core (``taskset -c SERVER_CPU``) and wrk to the other, so the
figures are per core. For each concurrency x texts-per-request cell it reports req/s,
texts/s, p50/p90/p99, errors, the batch sizes the server actually ran (read from /metrics
before and after the cell), texts/s divided by the limit measured in the same run, and the
server's CPU per request by thread (``bench/cpu.py``), which bounds what one core can do.
The limit is ``bench/limit.py``'s best batch size (found by the best of three 1-second runs
per size) run once for as long as a cell, so that both sides of the ratio are averages over
the same length of time; the best 1-second runs' figure is printed beside it.

    make bench                       # or: python -m bench.run [--seconds 10] [--rounds 3] [--json out.json]

With ``--rounds N`` the limit and every cell are measured N times, interleaved, and the table
shows each cell's median round (its latencies and batch sizes are that round's), the range
of texts/s over the rounds, and the ratio to the median limit: on a shared, noisy machine
one round can be 20% off.

With ``--bare [CONC ...]`` every round also runs ``bench/bare_server.py`` (the same uvicorn,
tokenizer, batcher and model with nothing else) at those concurrencies, and the report gives
textserve's texts/s as a share of it: how far the design itself gets on this machine.

Every round also measures the Open Inference Protocol at ``--v2-cells`` (default 64 x 1 and
64 x 16): over HTTP (wrk, JSON requests to /v2/models/sentiment/infer) and over gRPC
(h2load, ``bench/grpc_load.py``, ``--grpc-connections`` channels), one after the other on
the same server, and reports gRPC's texts/s over HTTP V2's. ``--v2-cells`` with no cell
leaves them out.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bench.grpc_load import PATH as GRPC_INFER
from bench.grpc_load import connections_for, run_grpc_load
from bench.load import N_BODIES, run_load

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def _bucket_counts(metrics: str) -> dict[float, float]:
    """Cumulative batch-size buckets, summed over every model version's series."""
    out: dict[float, float] = {}
    for labels, value in re.findall(r"^textserve_batch_size_bucket\{([^}]*)\} (\S+)$", metrics, re.M):
        le = re.search(r'le="([^"]+)"', labels)
        if le:
            bound = float("inf") if le.group(1) == "+Inf" else float(le.group(1))
            out[bound] = out.get(bound, 0.0) + float(value)
    return out


def _sum_count(metrics: str, name: str) -> tuple[float, float]:
    def total(suffix: str) -> float:
        return sum(float(v) for v in re.findall(rf"^{name}_{suffix}(?:\{{[^}}]*\}})? (\S+)$", metrics, re.M))

    return total("sum"), total("count")


def batch_summary(before: str, after: str) -> dict[str, Any]:
    """Batch-size distribution of the runs between two /metrics pages."""
    b, a = _bucket_counts(before), _bucket_counts(after)
    deltas = {le: a[le] - b.get(le, 0.0) for le in sorted(a)}
    s0, c0 = _sum_count(before, "textserve_batch_size")
    s1, c1 = _sum_count(after, "textserve_batch_size")
    runs, texts = c1 - c0, s1 - s0
    if runs <= 0:
        return {"runs": 0, "mean": 0.0, "p50_le": None, "p90_le": None}

    def quantile_le(q: float) -> float:
        for le, cumulative in deltas.items():
            if cumulative >= q * runs:
                return le
        return float("inf")

    return {"runs": int(runs), "mean": texts / runs, "p50_le": quantile_le(0.5), "p90_le": quantile_le(0.9)}


def http_get(url: str, timeout: float = 10) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Server:
    """``python -m <module>`` (the service, or ``bench.bare_server``) pinned to ``cpu``, up
    once its /health answers 200."""

    def __init__(
        self, cpu: str, port: int, env: dict[str, str], module: str = "service", cwd: Path | str = REPO
    ) -> None:
        self.url = f"http://127.0.0.1:{port}"
        environment = {k: v for k, v in os.environ.items() if not k.startswith("TEXTSERVE_")}
        environment.update({"TEXTSERVE_HOST": "127.0.0.1", "TEXTSERVE_PORT": str(port),
                            "TEXTSERVE_GRPC_PORT": str(port + 1000), **env})
        self.grpc_target = f"127.0.0.1:{environment['TEXTSERVE_GRPC_PORT']}"
        self.log_path = RESULTS / f"{module.rsplit('.', 1)[-1]}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            ["taskset", "-c", cpu, sys.executable, "-m", module], cwd=cwd, env=environment,
            stdout=subprocess.DEVNULL, stderr=self.log,
        )
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"{module} exited with {self.proc.returncode}; see {self.log_path}")
            try:
                if http_get(self.url + "/health", timeout=1)[0] == 200:
                    break
            except OSError:
                pass
            if time.perf_counter() - started > 60:
                raise SystemExit(f"{module} not ready within 60 s")
            time.sleep(0.01)
        self.ready_s = time.perf_counter() - started

    def metrics(self) -> str:
        return http_get(self.url + "/metrics")[1]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


def bare_round_trip(url: str, seconds: float, cpu: str) -> dict[str, Any]:
    """wrk at concurrency 1 on GET /health/live: the HTTP floor of this server."""
    out = subprocess.run(
        ["taskset", "-c", cpu, "wrk", "-t1", "-c1", f"-d{max(1, round(seconds))}s", "--latency", url + "/health/live"],
        capture_output=True, text=True, timeout=seconds + 30, check=True,
    ).stdout
    p50 = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)$", out, re.M)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    return {"p50_ms": float(p50.group(1)) * scale[p50.group(2)] if p50 else None}


def measure_limit(model: str, cpu: str, precision: str, sustained: float) -> dict[str, Any]:
    """The in-process limit (``bench/limit.py``) in a fresh process pinned to ``cpu``: the best
    batch size's peak, then that batch size run for ``sustained`` seconds, the length of a cell."""
    print(f"limit: in-process tokenizer + onnxruntime ({precision}), 1 thread, pinned to CPU {cpu} ...",
          flush=True)
    proc = subprocess.run(
        ["taskset", "-c", cpu, sys.executable, "-c",
         "import json,sys; from pathlib import Path; from bench.limit import run; "
         f"print(json.dumps(run(Path({model!r}), [1], 1.0, precision={precision!r}, sustained={sustained!r})))"],
        cwd=REPO, capture_output=True, text=True, check=True, timeout=600,
    )
    limit: dict[str, Any] = json.loads(proc.stdout)
    print(f"limit: {limit_texts_per_s(limit):,.0f} texts/s sustained for {sustained:g} s at batch"
          f" {limit['limit']['1']['batch']} (best 1-s run {peak_texts_per_s(limit):,.0f});"
          f" batch-1 run {limit['batch1_ms']['1']:.2f} ms", flush=True)
    return limit


def limit_texts_per_s(limit: dict[str, Any]) -> float:
    """The limit at one onnxruntime thread: its best batch size run as long as a load cell.
    This is what a server's texts/s is divided by: both are averages over the same length of
    time (a results file from before the sustained run has only the peak)."""
    best = limit["limit"]["1"]
    return float(best.get("sustained_texts_per_s", best["texts_per_s"]))


def peak_texts_per_s(limit: dict[str, Any]) -> float:
    """The best batch size's best 1-second run (of three): a peak, usually above what the core sustains."""
    return float(limit["limit"]["1"]["texts_per_s"])


def median_by(items: list[dict[str, Any]], key: Any) -> dict[str, Any]:
    """The item of median ``key`` (the lower middle one for an even count): a real run, so its
    other figures (latencies, batch sizes) belong together."""
    ordered = sorted(items, key=key)
    return ordered[(len(ordered) - 1) // 2]


def median_cell(cell_runs: list[dict[str, Any]]) -> dict[str, Any]:
    cell = dict(median_by(cell_runs, lambda c: c["texts_per_s"]))
    cell["rounds_texts_per_s"] = [c["texts_per_s"] for c in cell_runs]
    cell["rounds_p99_us"] = [c["latency_us"]["p99"] for c in cell_runs]
    return cell


def fmt_le(le: float | None) -> str:
    return "-" if le is None else ("inf" if le == float("inf") else f"≤{le:g}")


def table(result: dict[str, Any]) -> str:
    limit = result["limit_texts_per_s"]
    rounds = result.get("rounds", 1) > 1
    lines = [
        "| conc | texts/req | req/s | texts/s |" + (" texts/s range |" if rounds else "")
        + " p50 ms | p90 ms | p99 ms | errors | batch mean | batch p50 | batch p90 | ÷ limit |"
        " loop µs/req | model µs/text | core busy |",
        "| ---: | ---: | ---: | ---: |" + (" ---: |" if rounds else "")
        + " ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in result["cells"]:
        lat, b = c["latency_us"], c["batches"]
        spread = c.get("rounds_texts_per_s", [c["texts_per_s"]])
        cpu = c.get("cpu")
        lines.append(
            f"| {c['concurrency']} | {c['texts_per_request']} | {c['req_per_s']:,.0f} | {c['texts_per_s']:,.0f} |"
            + (f" {min(spread):,.0f}-{max(spread):,.0f} |" if rounds else "")
            + f" {lat['p50'] / 1000:.2f} | {lat['p90'] / 1000:.2f} | {lat['p99'] / 1000:.2f} | {c['error_count']}"
            f" | {b['mean']:.1f} | {fmt_le(b['p50_le'])} | {fmt_le(b['p90_le'])} | {c['texts_per_s'] / limit:.2f} |"
            + (f" {cpu['loop_us_per_request']:,.0f} | {cpu['model_us_per_text']:,.0f} | {cpu['busy']:.0%} |"
               if cpu else " - | - | - |")
        )
    return "\n".join(lines)


def cpu_bound(cell: dict[str, Any], limit_texts_per_s: float) -> str | None:
    """What one core's CPU time allows in a one-text-per-request cell, and what the loop's
    share would have to be for half the limit."""
    cpu = cell.get("cpu")
    if not cpu or cell["texts_per_request"] != 1 or cpu["loop_us_per_request"] <= 0:
        return None
    loop, model = cpu["loop_us_per_request"], cpu["model_us_per_text"]
    half_limit_us = 2e6 / limit_texts_per_s  # CPU per text that 0.5 x limit allows
    return (
        f"conc {cell['concurrency']} x 1: the core spent {loop:.0f} µs per request in the event loop and"
        f" {model:.0f} µs per text in the model thread, so one core can answer at most"
        f" {1e6 / (loop + model):,.0f} texts/s ({cpu['busy']:.0%} busy); 0.5 x limit needs"
        f" {half_limit_us:.0f} µs in all, i.e. a loop share of at most {max(0.0, half_limit_us - model):.0f} µs"
    )


def peak_ratios(cells: list[dict[str, Any]], peak_texts_per_s: float) -> str:
    """The 64-client rows divided by the limit's peak instead (best 1-s runs): the stricter
    reading, printed so that both can be compared."""
    ratios = [
        f"{c['texts_per_s'] / peak_texts_per_s:.2f} at 64 x {c['texts_per_request']}"
        for c in cells if c["concurrency"] == 64
    ]
    return f"the best 1-s runs' median {peak_texts_per_s:,.0f}" + (
        ", against which texts/s ÷ limit would be " + ", ".join(ratios) if ratios else ""
    )


def versus_bare(cells: list[dict[str, Any]], bare_cells: list[dict[str, Any]], limit_texts_per_s: float) -> list[str]:
    """For each cell the bare server also ran: textserve's texts/s as a share of the bare
    server's, and the bare server's ratio to the limit (the most this design reached)."""
    ours = {(c["concurrency"], c["texts_per_request"]): c for c in cells}
    lines = []
    for bare in bare_cells:
        key = (bare["concurrency"], bare["texts_per_request"])
        if key not in ours or bare["texts_per_s"] <= 0:
            continue
        mine = ours[key]["texts_per_s"]
        lines.append(
            f"conc {key[0]} x {key[1]}: bare server {bare['texts_per_s']:,.0f} texts/s"
            f" ({bare['texts_per_s'] / limit_texts_per_s:.2f} x limit); textserve {mine:,.0f}"
            f" ({mine / limit_texts_per_s:.2f} x limit), {mine / bare['texts_per_s']:.0%} of the bare server"
        )
    return lines


def measure_cell(
    server: Server, concurrency: int, texts: int, args: argparse.Namespace, api: str = "predict"
) -> dict[str, Any]:
    before = server.metrics()
    if api == "grpc":
        cell = run_grpc_load(server.grpc_target, concurrency, texts, args.seconds, args.warmup, cpu=args.load_cpu,
                             server_pid=server.proc.pid, connections=args.grpc_connections)
    else:
        # HTTP V2 posts the gRPC load's bodies (one per connection), so both carry the same texts.
        bodies = connections_for(concurrency, args.grpc_connections) if api == "v2" else N_BODIES
        cell = run_load(server.url, concurrency, texts, args.seconds, args.warmup, cpu=args.load_cpu,
                        server_pid=server.proc.pid, api=api, bodies=bodies)
    after = server.metrics()
    cell["batches"] = batch_summary(before, after)
    if api == "grpc":  # h2load sees HTTP 200 for every call: the gRPC status is in the trailers
        refused = grpc_refusals(after) - grpc_refusals(before)
        cell["error_count"] += refused
        cell["texts_per_s"] -= refused * texts / (cell["duration_us"] / 1e6)
    name = {"predict": "", "v2": "HTTP V2 ", "grpc": "gRPC "}[api]
    print(f"  {name}conc {concurrency:>3} x {texts:>2} texts: {cell['texts_per_s']:>8,.0f} texts/s,"
          f" p99 {cell['latency_us']['p99'] / 1000:.1f} ms, errors {cell['error_count']},"
          f" mean batch {cell['batches']['mean']:.1f}", flush=True)
    return cell


def grpc_refusals(metrics: str) -> int:
    """ModelInfer calls answered with an error status (CANCELLED aside: h2load cancels the
    calls still in flight when its time is up)."""
    total = 0.0
    for labels, value in re.findall(r"^textserve_requests_total\{([^}]*)\} (\S+)$", metrics, re.M):
        found = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if found.get("route") == GRPC_INFER and found.get("status") not in ("OK", "CANCELLED"):
            total += float(value)
    return int(total)


def protocol_ratios(grpc: dict[str, Any], http: dict[str, Any]) -> list[float]:
    """gRPC's texts/s over HTTP V2's in each round (each round measures both, one right
    after the other), so a drift of the machine between rounds cancels."""
    pairs = zip(grpc.get("rounds_texts_per_s", [grpc["texts_per_s"]]),
                http.get("rounds_texts_per_s", [http["texts_per_s"]]), strict=True)
    return [g / h for g, h in pairs if h]


def v2_table(cells: list[dict[str, Any]], rounds: bool) -> str:
    """HTTP V2 and gRPC cells side by side, with gRPC's texts/s over HTTP V2's: the median of
    the rounds' own ratios, and their range."""
    http = {(c["concurrency"], c["texts_per_request"]): c for c in cells if c["api"] == "v2"}
    head = "| protocol | conc | texts/req | req/s | texts/s |" + (" texts/s range |" if rounds else "")
    rule = "| --- | ---: | ---: | ---: | ---: |" + (" ---: |" if rounds else "")
    lines = [head + " p50 ms | p99 ms | errors | batch mean | loop µs/req | I/O threads µs/req | switches/req |"
                    " gRPC ÷ HTTP V2 |",
             rule + " ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for c in cells:
        spread = c.get("rounds_texts_per_s", [c["texts_per_s"]])
        twin = http.get((c["concurrency"], c["texts_per_request"]))
        grpc = c["api"] == "grpc"
        ratio = "-"
        if grpc and twin and twin["texts_per_s"]:
            ratios = protocol_ratios(c, twin)
            ratio = f"{statistics.median(ratios):.2f}"
            ratio += f" ({min(ratios):.2f}-{max(ratios):.2f})" if len(ratios) > 1 else ""
        cpu = c.get("cpu")
        cpu_columns = "- | - | -"
        if cpu:
            cpu_columns = (f"{cpu['loop_us_per_request']:,.0f} | {cpu.get('io_us_per_request', 0):,.0f} |"
                           f" {cpu.get('switches_per_request', 0):.1f}")
        row = f"| {'gRPC' if grpc else 'HTTP V2'} | {c['concurrency']} | {c['texts_per_request']} |"
        row += f" {c['req_per_s']:,.0f} | {c['texts_per_s']:,.0f} |"
        row += f" {min(spread):,.0f}-{max(spread):,.0f} |" if rounds else ""
        row += f" {c['latency_us']['p50'] / 1000:.2f} | {c['latency_us']['p99'] / 1000:.2f} | {c['error_count']} |"
        row += f" {c['batches']['mean']:.1f} | {cpu_columns} | {ratio} |"
        lines.append(row)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/sentiment")
    parser.add_argument("--seconds", type=float, default=10, help="measured time per cell")
    parser.add_argument("--warmup", type=float, default=2, help="warm-up time per cell")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64, 128])
    parser.add_argument("--texts", type=int, nargs="+", default=[1, 16], help="texts per request")
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--load-cpu", default="1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--env", nargs="*", default=[],
                        help="extra server settings, e.g. TEXTSERVE_MAX_BATCH_DELAY_MS=1")
    parser.add_argument("--json", type=Path, help="where to write the result (default bench/results/<time>.json)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat the limit and every cell this many times; the table shows each cell's"
                             " median round, its range, and the ratio to the median limit")
    parser.add_argument("--v2-cells", nargs="*", default=["64x1", "64x16"], metavar="CONCxTEXTS",
                        help="Open Inference Protocol cells measured over HTTP V2 and gRPC (none: skip them)")
    parser.add_argument("--grpc-connections", type=int, default=8,
                        help="HTTP/2 connections the gRPC load is spread over (streams per connection:"
                             " concurrency / connections)")
    parser.add_argument("--bare", type=int, nargs="*", metavar="CONC",
                        help="also run bench/bare_server.py (the least a server of this design does) at these"
                             " concurrencies (default 64), interleaved with the service in every round")
    args = parser.parse_args()
    bare_concurrency = [] if args.bare is None else (args.bare or [64])
    RESULTS.mkdir(parents=True, exist_ok=True)
    env = {"TEXTSERVE_MODEL_PATH": args.model, **dict(kv.split("=", 1) for kv in args.env)}
    precision = env.get("TEXTSERVE_PRECISION", "fp32")  # the limit is measured on the graph served

    server = Server(args.server_cpu, args.port, env)
    rss = rss_mb(server.proc.pid)
    print(f"server ready in {server.ready_s:.2f} s (start to /health 200), RSS {rss:.0f} MB", flush=True)
    limits: list[dict[str, Any]] = []
    runs: dict[tuple[int, int], list[dict[str, Any]]] = {}
    bare_runs: dict[tuple[int, int], list[dict[str, Any]]] = {}
    v2_runs: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
    v2_cells = [tuple(int(n) for n in cell.lower().split("x")) for cell in args.v2_cells]
    peak_rss = rss
    bare: Server | None = None
    try:
        if bare_concurrency:
            bare = Server(args.server_cpu, args.port + 1, env, module="bench.bare_server")
        floor = bare_round_trip(server.url, 5, args.load_cpu)
        for round_no in range(1, args.rounds + 1):
            if args.rounds > 1:
                print(f"round {round_no} of {args.rounds}", flush=True)
            # The server idles on its CPU meanwhile, so the limit is measured on the same core.
            limits.append(measure_limit(args.model, args.server_cpu, precision, args.seconds))
            for texts in args.texts:
                for conc in args.concurrency:
                    runs.setdefault((conc, texts), []).append(measure_cell(server, conc, texts, args))
                    peak_rss = max(peak_rss, rss_mb(server.proc.pid))
            for conc, texts in v2_cells:
                # Each protocol first in every other round, so the machine's drift favours neither.
                for api in ("v2", "grpc") if round_no % 2 else ("grpc", "v2"):
                    cell = measure_cell(server, conc, texts, args, api=api)
                    v2_runs.setdefault((api, conc, texts), []).append({**cell, "api": api})
            if bare is not None:
                print("  bare server (bench/bare_server.py):", flush=True)
                for texts in args.texts:
                    for conc in bare_concurrency:
                        bare_runs.setdefault((conc, texts), []).append(measure_cell(bare, conc, texts, args))
    finally:
        server.stop()
        if bare is not None:
            bare.stop()
    limit = median_by(limits, limit_texts_per_s)
    limit_tps = limit_texts_per_s(limit)
    cells = [median_cell(cell_runs) for cell_runs in runs.values()]
    bare_cells = [median_cell(cell_runs) for cell_runs in bare_runs.values()]
    protocol_cells = [median_cell(cell_runs) for cell_runs in v2_runs.values()]
    result = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "cpu": _cpu_name(), "python": platform.python_version(),
                    "server_cpu": args.server_cpu, "load_cpu": args.load_cpu},
        "settings": env,
        "rounds": args.rounds,
        "limit_texts_per_s": limit_tps,
        "limit": limit,
        "limit_rounds": [limit_texts_per_s(r) for r in limits],
        "limit_peak_rounds": [peak_texts_per_s(r) for r in limits],
        "server_ready_s": server.ready_s,
        "peak_rss_mb": peak_rss,
        "bare_round_trip_p50_ms": floor["p50_ms"],
        "cells": cells,
        "bare_cells": bare_cells,
        "v2_cells": protocol_cells,
    }
    out = args.json or RESULTS / f"{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(result, indent=2))
    print()
    print(table(result))
    if protocol_cells:
        print("\nOpen Inference Protocol, HTTP V2 (wrk, JSON) and gRPC (h2load), same rounds:\n")
        print(v2_table(protocol_cells, args.rounds > 1))
    if bare_cells:
        print("\nbare server (bench/bare_server.py), same rounds:\n")
        print(table({**result, "cells": bare_cells}))
        print()
        print("\n".join(versus_bare(cells, bare_cells, limit_tps)))
    c1 = next((c for c in cells if c["concurrency"] == 1 and c["texts_per_request"] == 1), None)
    if c1 is not None and floor["p50_ms"] is not None:
        budget = floor["p50_ms"] + limit["batch1_ms"]["1"]
        print(f"\nconcurrency 1: /predict p50 {c1['latency_us']['p50'] / 1000:.2f} ms vs bare round trip"
              f" {floor['p50_ms']:.2f} ms + batch-1 inference {limit['batch1_ms']['1']:.2f} ms = {budget:.2f} ms")
    c64 = next((c for c in cells if c["concurrency"] == 64 and c["texts_per_request"] == 1), None)
    bound = cpu_bound(c64, limit_tps) if c64 is not None else None
    if bound:
        print(bound)
    if args.rounds > 1:
        print("limit by round: " + ", ".join(f"{t:,.0f}" for t in result["limit_rounds"]) + " texts/s (median used);"
              " best 1-s runs " + ", ".join(f"{t:,.0f}" for t in result["limit_peak_rounds"]))
    peak = peak_texts_per_s(median_by(limits, peak_texts_per_s))  # picked as the limit's median is
    print(f"limit {limit_tps:,.0f} texts/s sustained for {args.seconds:g} s; {peak_ratios(cells, peak)}")
    print(f"ready in {server.ready_s:.2f} s; peak RSS {peak_rss:.0f} MB")
    print(f"results in {out}")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
