"""Drive a running server's gRPC ModelInfer with h2load (closed loop, fixed concurrency).

h2load (Debian's nghttp2-client) is nghttp2's C load generator: it posts one prebuilt body
over HTTP/2, so a gRPC call is that body framed as gRPC frames it (a 0 flag byte, a 4-byte
big-endian length, the ``ModelInferRequest``), with ``content-type: application/grpc`` and
``te: trailers``. It outruns any Python gRPC client on one core, so the server, not the
load, is what is measured. Concurrency is ``--connections`` HTTP/2 connections (channels)
times streams per connection: one h2load per connection, each posting its own body, the
texts of ``bench.load.text_chunks(texts, connections)``. ``bench/run.py`` gives HTTP V2 the
same bodies (``run_load(..., bodies=connections)``), so both protocols carry the same texts:
the shipped model's cost grows with a text's length, and one body of 16 tweets can be a
sixth longer than the corpus's average.

h2load sees HTTP status 200 for every gRPC call, failed or not: a call's gRPC status is in
its trailers. ``bench/run.py`` counts refusals from the server's own request metrics.
Latency percentiles come from h2load's per-request log. Loopback only, bounded in time.

    python -m bench.grpc_load --target 127.0.0.1:8001 --concurrency 64 --texts 1 --seconds 10
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench.cpu import snapshot
from bench.load import summarize, text_chunks

PATH = "/inference.GRPCInferenceService/ModelInfer"


def grpc_body(texts: list[str], model: str = "sentiment") -> bytes:
    """One ModelInfer call as gRPC puts it on the wire: the texts as tritonclient.grpc sends
    them (``raw_input_contents``)."""
    from service.v2.grpc.generated import grpc_service_pb2 as pb

    request = pb.ModelInferRequest(model_name=model)
    request.inputs.add(name="text", datatype="BYTES", shape=[len(texts)])
    request.raw_input_contents.append(b"".join(struct.pack("<I", len(t.encode())) + t.encode() for t in texts))
    message: bytes = request.SerializeToString()
    return b"\0" + struct.pack(">I", len(message)) + message


def percentile(values: list[int], q: float) -> int:
    if not values:
        return 0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def _h2load(target: str, concurrency: int, seconds: float, bodies: list[Path], cpu: str | None,
            logs: list[Path]) -> dict[str, Any]:
    """One h2load per body, each over one connection, all at once; their sums."""
    streams = max(1, concurrency // len(bodies))
    procs = []
    for body, log in zip(bodies, logs, strict=True):
        cmd = ["h2load", "-t1", "-c1", f"-m{streams}", f"-D{max(1, round(seconds))}",
               "-d", str(body), "-H", "content-type: application/grpc", "-H", "te: trailers",
               f"--log-file={log}", f"http://{target}{PATH}"]
        if cpu is not None:
            cmd = ["taskset", "-c", cpu, *cmd]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outs = [proc.communicate(timeout=seconds + 60)[0] for proc in procs]
    counts = [0] * 4
    duration_s = 0.0
    for out in outs:
        done = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                         r"(\d+) errored, (\d+) timeout", out)
        finished = re.search(r"finished in ([\d.]+)(ms|s),", out)
        if done is None or finished is None:
            raise SystemExit(f"h2load said something unexpected:\n{out[-2000:]}")
        duration_s = max(duration_s, float(finished.group(1)) / (1000 if finished.group(2) == "ms" else 1))
        for i, group in enumerate((3, 5, 6, 7)):
            counts[i] += int(done.group(group))
    latencies = [int(line.split("\t")[2]) for log in logs for line in log.read_text().splitlines()
                 if line.count("\t") >= 2]
    requests, failed, errored, timeout = counts
    return {
        "tool": f"h2load ({len(bodies)} connections x {streams} streams, a body each)",
        "requests": requests,
        "duration_us": int(duration_s * 1e6),
        "errors": {"status": failed, "connect": 0, "read": errored, "write": 0, "timeout": timeout},
        "latency_us": {"p50": percentile(latencies, 50), "p90": percentile(latencies, 90),
                       "p99": percentile(latencies, 99), "max": max(latencies, default=0),
                       "mean": sum(latencies) / len(latencies) if latencies else 0.0},
    }


def connections_for(concurrency: int, connections: int) -> int:
    """How many connections (and so bodies) the load opens: at most one per call in flight."""
    return max(1, min(connections, concurrency))


def run_grpc_load(target: str, concurrency: int, texts_per_request: int, seconds: float, warmup: float,
                  cpu: str | None = None, server_pid: int | None = None, connections: int = 8) -> dict[str, Any]:
    """Warm up, then measure; the same summary as ``bench.load.run_load``."""
    if not target.startswith(("127.", "localhost:", "[::1]:")):
        raise SystemExit(f"refusing to load {target}: the benchmark targets loopback only")
    if shutil.which("h2load") is None:
        raise SystemExit("h2load is not installed: apt-get install nghttp2-client")
    connections = connections_for(concurrency, connections)
    with tempfile.TemporaryDirectory() as tmp:
        bodies = [Path(tmp) / f"call-{i}.bin" for i in range(connections)]
        logs = [Path(tmp) / f"h2load-{i}.log" for i in range(connections)]
        for body, texts in zip(bodies, text_chunks(texts_per_request, connections), strict=True):
            body.write_bytes(grpc_body(texts))
        if warmup > 0:
            _h2load(target, concurrency, warmup, bodies, cpu, logs)
        before = snapshot(server_pid)
        result = _h2load(target, concurrency, seconds, bodies, cpu, logs)
        after = snapshot(server_pid)
    return summarize(result, concurrency, texts_per_request, server_pid, before, after)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="127.0.0.1:8001")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--texts", type=int, default=1, help="texts per call")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--cpu", help="pin the load generator to these CPUs (taskset list)")
    args = parser.parse_args()
    result = run_grpc_load(args.target, args.concurrency, args.texts, args.seconds, args.warmup, args.cpu,
                           connections=args.connections)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
