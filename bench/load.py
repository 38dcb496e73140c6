"""Drive a running server with wrk (closed loop, fixed concurrency), after a warm-up.

Each request carries TEXTS_PER_REQUEST tweets from bench/texts.json; the Lua script rotates
through hundreds of different bodies so nothing is cached. Loopback only, bounded in time.
Falls back to ``hey`` (one fixed body) when wrk is missing. ``--api v2`` posts the same
texts as Open Inference Protocol JSON requests to ``/v2/models/sentiment/infer`` instead of
/predict (gRPC: ``bench/grpc_load.py``).

    python -m bench.load --url http://127.0.0.1:8000 --concurrency 64 --texts 1 --seconds 10
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from bench.corpus import load_texts
from bench.cpu import Snapshot, cpu_share, io_threads, snapshot

LUA = Path(__file__).with_name("post.lua")
N_BODIES = 500
PATHS = {"predict": "/predict", "v2": "/v2/models/sentiment/infer"}


def text_chunks(texts_per_request: int, count: int = N_BODIES) -> list[list[str]]:
    """``count`` requests' texts, rotating through the corpus."""
    texts = load_texts()
    chunks = []
    for i in range(count):
        start = (i * texts_per_request) % len(texts)
        chunks.append((texts + texts)[start : start + texts_per_request])
    return chunks


def write_bodies(texts_per_request: int, path: Path, api: str = "predict", count: int = N_BODIES) -> None:
    lines = []
    for chunk in text_chunks(texts_per_request, count):
        body: dict[str, Any] = {"texts": chunk}
        if api == "v2":
            body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(chunk)], "data": chunk}]}
        lines.append(json.dumps(body, ensure_ascii=False))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _check_loopback(url: str) -> None:
    host = urlparse(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"refusing to load {host}: the benchmark targets loopback only")


def _wrk(url: str, concurrency: int, seconds: float, bodies: Path, cpu: str | None) -> dict[str, Any]:
    cmd = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
           "-s", str(LUA), url]
    if cpu is not None:
        cmd = ["taskset", "-c", cpu, *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60,
                         env={**os.environ, "BODIES_FILE": str(bodies)}, check=True).stdout
    summary: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    summary["tool"] = "wrk"
    return summary


def _hey(url: str, concurrency: int, seconds: float, bodies: Path, cpu: str | None) -> dict[str, Any]:
    body = bodies.read_text(encoding="utf-8").splitlines()[0]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        fh.write(body)
    cmd = ["hey", "-z", f"{max(1, round(seconds))}s", "-c", str(concurrency), "-m", "POST",
           "-T", "application/json", "-D", fh.name, url]
    if cpu is not None:
        cmd = ["taskset", "-c", cpu, *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    os.unlink(fh.name)

    def pct(p: int) -> int:
        m = re.search(rf"{p}%% in ([\d.]+) secs", out)
        return int(float(m.group(1)) * 1e6) if m else 0

    total = int(re.search(r"\[200\]\s+(\d+) responses", out).group(1)) if "[200]" in out else 0  # type: ignore[union-attr]
    failed = sum(int(n) for code, n in re.findall(r"\[(\d+)\]\s+(\d+) responses", out) if code != "200")
    return {"tool": "hey (one fixed body)", "requests": total + failed, "duration_us": int(seconds * 1e6),
            "errors": {"status": failed, "connect": 0, "read": 0, "write": 0, "timeout": 0},
            "latency_us": {"p50": pct(50), "p90": pct(90), "p99": pct(99), "max": 0, "mean": 0}}


def run_load(url: str, concurrency: int, texts_per_request: int, seconds: float, warmup: float,
             cpu: str | None = None, server_pid: int | None = None, api: str = "predict",
             bodies: int = N_BODIES) -> dict[str, Any]:
    """Warm up, then measure; returns wrk's summary plus req/s and texts/s, and with
    ``server_pid`` (a local server) the CPU it spent per request by thread (``bench/cpu.py``).
    The requests rotate through ``bodies`` different bodies (``text_chunks``)."""
    _check_loopback(url)
    tool = _wrk if shutil.which("wrk") else _hey if shutil.which("hey") else None
    if tool is None:
        raise SystemExit("neither wrk nor hey is installed: apt-get install wrk")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bodies.jsonl"
        write_bodies(texts_per_request, path, api, bodies)
        if warmup > 0:
            tool(url + PATHS[api], concurrency, warmup, path, cpu)
        before = snapshot(server_pid)
        result = tool(url + PATHS[api], concurrency, seconds, path, cpu)
        after = snapshot(server_pid)
    return summarize(result, concurrency, texts_per_request, server_pid, before, after)


def summarize(result: dict[str, Any], concurrency: int, texts_per_request: int, server_pid: int | None,
              before: Snapshot, after: Snapshot) -> dict[str, Any]:
    """A load tool's summary plus req/s, texts/s and the server's CPU per request."""
    elapsed = result["duration_us"] / 1e6
    errors = sum(result["errors"].values())
    ok = result["requests"] - result["errors"]["status"]
    result.update(
        concurrency=concurrency,
        texts_per_request=texts_per_request,
        req_per_s=result["requests"] / elapsed,
        texts_per_s=ok * texts_per_request / elapsed,
        error_count=errors,
    )
    if server_pid is not None:
        result["cpu"] = asdict(cpu_share(server_pid, before[0], after[0], result["requests"], ok * texts_per_request,
                                         elapsed, io_threads(server_pid), switches=after[1] - before[1]))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--texts", type=int, default=1, help="texts per request")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--cpu", help="pin the load generator to these CPUs (taskset list)")
    parser.add_argument("--api", choices=sorted(PATHS), default="predict")
    args = parser.parse_args()
    print(json.dumps(run_load(args.url, args.concurrency, args.texts, args.seconds, args.warmup, args.cpu,
                              api=args.api), indent=2))


if __name__ == "__main__":
    main()
