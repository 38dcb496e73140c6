"""A new model version published under steady load: failed requests, and p99 during the swap
against the steady p99 of the same run.

    python -m bench.swap                       # 5 swaps at 64 clients x 1 text, ~2 minutes
    python -m bench.swap --swaps 10 --texts 16 --concurrency 64

The server (pinned to ``--server-cpu``) serves a temporary repository in poll mode. wrk (on
``--load-cpu``) runs in windows of ``--window`` seconds: ``--steady`` windows with nothing
happening, then one window during which a new version is renamed into the repository, so that
its loading, warm-up, the switch and the old version's closing all fall inside it. The report
gives, per swap, the window's p99 over the median p99 of the steady windows before it, and the
requests that failed (non-2xx or socket errors). Results go to ``bench/results/swap-<time>``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.load import run_load
from bench.run import RESULTS, Server, http_get, rss_mb

SHIPPED_MODEL = Path(__file__).resolve().parents[1] / "models" / "sentiment"


def shipped_bundle() -> Path:
    """The bundle ``models/sentiment`` serves: its highest version."""
    from service.bundle.format import resolve_bundle_dir

    return resolve_bundle_dir(SHIPPED_MODEL)


def publish(model_dir: Path, version: int) -> None:
    """The shipped bundle as ``version``: written aside, then renamed into place."""
    staging = model_dir / f".staging-{version}"
    shutil.copytree(shipped_bundle(), staging)
    manifest = json.loads((staging / "manifest.json").read_text())
    manifest["version"] = version
    (staging / "manifest.json").write_text(json.dumps(manifest))
    staging.rename(model_dir / str(version))


def serving(url: str) -> list[str]:
    models = json.loads(http_get(url + "/models")[1])["models"]
    return [v["version"] for m in models for v in m["versions"]]


def window(url: str, args: argparse.Namespace) -> dict[str, Any]:
    cell = run_load(url, args.concurrency, args.texts, args.window, 0, cpu=args.load_cpu)
    return {"p99_ms": cell["latency_us"]["p99"] / 1000, "p50_ms": cell["latency_us"]["p50"] / 1000,
            "texts_per_s": cell["texts_per_s"], "failed": cell["error_count"], "requests": cell["requests"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--swaps", type=int, default=5)
    parser.add_argument("--steady", type=int, default=3, help="steady windows before each swap")
    parser.add_argument("--window", type=float, default=3.0, help="seconds per wrk window")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--texts", type=int, default=1)
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--load-cpu", default="1")
    parser.add_argument("--port", type=int, default=8767)
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="textserve-swap-"))
    model_dir = root / "sentiment"
    model_dir.mkdir()
    publish(model_dir, 1)
    env = {"TEXTSERVE_MODEL_REPOSITORY": str(root), "TEXTSERVE_MODEL_CONTROL_MODE": "poll",
           "TEXTSERVE_REPOSITORY_POLL_S": "0.25"}
    server = Server(args.server_cpu, args.port, env)
    swaps: list[dict[str, Any]] = []
    try:
        rss_first = 0.0
        for n in range(args.swaps):
            steady = [window(server.url, args) for _ in range(args.steady)]
            version = n + 2
            timer = threading.Timer(0.5, publish, (model_dir, version))
            timer.start()
            during = window(server.url, args)
            deadline = time.monotonic() + 30
            while serving(server.url) != [str(version)] and time.monotonic() < deadline:
                time.sleep(0.05)
            shutil.rmtree(model_dir / str(version - 1))  # the old one is closed by now
            rss = rss_mb(server.proc.pid)
            rss_first = rss_first or rss
            p99_steady = statistics.median(w["p99_ms"] for w in steady)
            swaps.append({"version": version, "steady": steady, "during": during, "steady_p99_ms": p99_steady,
                          "ratio": during["p99_ms"] / p99_steady, "rss_mb": rss,
                          "served_after": serving(server.url)})
            print(f"swap to {version}: p99 {during['p99_ms']:.1f} ms during, {p99_steady:.1f} ms steady"
                  f" (x {during['p99_ms'] / p99_steady:.2f}); failed {during['failed']} of {during['requests']};"
                  f" steady failed {sum(w['failed'] for w in steady)}; RSS {rss:.0f} MB", flush=True)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    result = {"when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "args": vars(args), "swaps": swaps}
    stem = RESULTS / f"swap-{dt.datetime.now():%Y%m%d-%H%M%S}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1))
    stem.with_suffix(".md").write_text(report(result))
    print(report(result))
    print(f"written to {stem}.json and .md")


def report(result: dict[str, Any]) -> str:
    a = result["args"]
    lines = [
        f"# Swapping versions under load: {a['concurrency']} clients x {a['texts']} text(s), {a['window']:g}-s windows",
        "",
        "| swap to | steady p99 ms (median of windows) | p99 ms during the swap | x steady | failed during"
        " | failed steady | texts/s during | RSS MB after |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in result["swaps"]:
        d = s["during"]
        lines.append(
            f"| {s['version']} | {s['steady_p99_ms']:.1f} | {d['p99_ms']:.1f} | {s['ratio']:.2f} |"
            f" {d['failed']} of {d['requests']} | {sum(w['failed'] for w in s['steady'])} |"
            f" {d['texts_per_s']:,.0f} | {s['rss_mb']:.0f} |"
        )
    ratios = [s["ratio"] for s in result["swaps"]]
    if ratios:
        lines += ["", f"median x steady {statistics.median(ratios):.2f} (max {max(ratios):.2f});"
                  f" failed in all: {sum(s['during']['failed'] for s in result['swaps'])}"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
