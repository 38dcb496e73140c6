"""CPU instructions per POST /predict request, counted by valgrind: a measure that moves far
less with the machine's load than timing does.

On this shared machine two wall-clock runs of the same build can differ by 20-30%, so a
lever worth 5% cannot be judged from them. ``callgrind`` counts the instructions the
process executes instead, which usually repeat to ~1% (373,541 and 373,483 per request for
one build, run side by side). Not always: one run in a dozen came out 8% high, probably
because timers such as the access log's flush fire by the clock while valgrind's speed
varies with the machine's load. Measure a build twice. This drives the app in-process,
under callgrind: 64 concurrent requests at a time, the model stubbed (uniform scores, no
onnxruntime run), real tokenizer, batcher, checks, metrics and access log (to /dev/null).
Only the measured rounds are counted: a small C helper, built here with gcc, tells
callgrind to zero its counts before them and to dump them after.

    python -m bench.instructions                  # the service, 1 text per request
    python -m bench.instructions --app bare       # bench/bare_server.py, for comparison
    python -m bench.instructions --texts 16
    TEXTSERVE_ACCESS_LOG=false python -m bench.instructions   # any TEXTSERVE_* setting

Needs valgrind, gcc and valgrind's headers (Debian: valgrind). Takes 2-4 minutes a run; two
runs can go side by side on two cores, since the counts do not depend on the load. What it
leaves out: uvicorn's HTTP and the kernel's socket work (the same for both apps), and the
model. Under valgrind everything runs ~50x slower, so request clocks are kept in their
common case (answered before the clock starts watching), as in the real server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CONCURRENCY = 64
_HELPER = """
#include <valgrind/callgrind.h>
void counts_zero(void) { CALLGRIND_ZERO_STATS; }
void counts_dump(void) { CALLGRIND_DUMP_STATS; }
"""


def request_scope(body: bytes) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/predict", "raw_path": b"/predict", "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8000),
        "headers": [
            (b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk"),
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        ],
    }  # fmt: skip


async def post(app: Any, body: bytes) -> int:
    """One POST /predict through the ASGI app; its status."""
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client stays
        raise AssertionError("unreachable")

    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(request_scope(body), receive, send)
    return statuses[0]


async def started(app: Any) -> asyncio.Future[None]:
    """Run the app's lifespan startup; the lifespan's task, left running. Keep a reference to
    it: a task that is garbage-collected ends the lifespan, and the app drains (503s)."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    lifespan: asyncio.Future[None] = asyncio.ensure_future(app(scope, inbox.get, outbox.put))
    message = await outbox.get()
    if message["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"the app did not start: {message}")
    return lifespan


class StubModel:
    """The shipped model's runtime with onnxruntime's run replaced by uniform scores: the
    model's cost is not what this counts (``bench.limit`` measures it)."""

    def __init__(self, runtime: Any) -> None:
        self._runtime = runtime

    def predict(self, ids: Any) -> Any:
        import numpy as np

        labels = len(self._runtime.bundle.labels)
        return np.full((len(ids), labels), 1 / labels, np.float32)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._runtime, name)


def build_app(which: str) -> Any:
    """The service's app (or the bare server's) on the shipped model, the model stubbed."""
    from service.app import create_app
    from service.engine.served import load_runtime
    from service.settings import Settings

    settings = Settings()
    runtime: Any = StubModel(load_runtime(settings))
    if which == "bare":
        from bench import bare_server

        return bare_server.build_app(settings, runtime)
    return create_app(settings, runtime=runtime)


def child(args: argparse.Namespace) -> None:
    """Inside valgrind: start, warm up, then count ``args.rounds`` rounds only."""
    import ctypes

    import uvloop

    from bench.corpus import load_texts
    from service.asgi import deadlines as clock
    from service.observability import access_log as logs
    from service.process.server import settle_heap

    clock.WATCH_AFTER_S = 3600.0  # see the module's docstring
    logs.AccessLog.__init__.__defaults__ = (open(os.devnull, "wb"),)  # noqa: SIM115
    counts = ctypes.CDLL(args.helper)
    texts = load_texts()
    n = args.texts
    bodies = [json.dumps({"texts": texts[i : i + n]}).encode() for i in range(0, len(texts) - n, n)]
    app = build_app(args.app)

    async def main() -> None:
        lifespan = await started(app)
        settle_heap()  # as the server does once it listens
        sent = 0

        async def round_() -> None:
            nonlocal sent
            batch = [bodies[(sent + i) % len(bodies)] for i in range(CONCURRENCY)]
            sent += CONCURRENCY
            statuses = await asyncio.gather(*(post(app, body) for body in batch))
            if set(statuses) != {200}:
                raise RuntimeError(f"statuses {sorted(set(statuses))}")

        for _ in range(3):
            await round_()
        counts.counts_zero()
        for _ in range(args.rounds):
            await round_()
        counts.counts_dump()
        lifespan.cancel()

    uvloop.run(main())


def measure(app: str, texts: int, rounds: int) -> float:
    """Instructions per request, from a callgrind run of this module in child mode."""
    with tempfile.TemporaryDirectory() as tmp:
        helper = Path(tmp, "counts.so")
        source = Path(tmp, "counts.c")
        source.write_text(_HELPER)
        subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-o", str(helper), str(source)], check=True)
        out = Path(tmp, "callgrind.out")
        command = [
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
            sys.executable, "-m", "bench.instructions", "--child", "--helper", str(helper),
            "--app", app, "--texts", str(texts), "--rounds", str(rounds),
        ]  # fmt: skip
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        run = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
        dumps = sorted(Path(tmp).glob("callgrind.out.*"))
        if run.returncode != 0 or not dumps:
            raise RuntimeError(f"valgrind run failed:\n{run.stderr[-3000:]}")
        total = next(
            int(line.split()[1]) for line in dumps[0].read_text().splitlines() if line.startswith("totals:")
        )
    return total / (rounds * CONCURRENCY)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", choices=["textserve", "bare"], default="textserve")
    parser.add_argument("--texts", type=int, default=1, help="texts per request")
    parser.add_argument("--rounds", type=int, default=10, help=f"measured rounds of {CONCURRENCY} requests")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--helper", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    per_request = measure(args.app, args.texts, args.rounds)
    print(f"{args.app}, {args.texts} text(s) per request: {per_request:,.0f} instructions per request")


if __name__ == "__main__":
    main()
