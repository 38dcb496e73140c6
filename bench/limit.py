"""The in-process limit: tokenizer + onnxruntime throughput, by batch size and thread count.

No HTTP, no queue: what one process can do at best with the service's own code path
(``Predictor.encode`` then ``Predictor.run_batch``: pad to the batch's longest text, run).
Pin it to one core (``taskset -c 0``) to get the per-core limit the server is compared to.

Each batch size gets the best of three short runs: its peak, which finds the best batch size.
On a machine whose speed swings from one second to the next, a best-of-three second is not
what the core sustains, so ``--sustained SECONDS`` also runs the best batch size once for that
long: the figure to compare with a server's throughput over a load run of the same length.

    python -m bench.limit [--model models/sentiment] [--threads 1 2] [--seconds 1.5] [--sustained 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from bench.corpus import load_texts
from service.bundle.format import load_bundle
from service.bundle.options import RuntimeOptions
from service.bundle.runtime import ModelRuntime
from service.engine.predictor import Predictor

BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def measure(predictor: Predictor, texts: list[str], batch: int, seconds: float, repeats: int = 3) -> dict[str, float]:
    """Texts/s for batches of ``batch`` consecutive texts, rotating through ``texts``: the
    best of ``repeats`` timed runs: a peak, usually above what the core sustains on a noisy machine."""
    offset = 0

    def one() -> None:
        nonlocal offset
        chunk = texts[offset : offset + batch]
        if len(chunk) < batch:
            offset = 0
            chunk = texts[:batch]
        offset += batch
        ids, _ = predictor.encode(chunk)
        predictor.run_batch(ids)

    for _ in range(3):
        one()
    best: dict[str, float] = {"texts_per_s": 0.0, "ms_per_run": 0.0}
    for _ in range(repeats):
        runs = 0
        started = time.perf_counter()
        deadline = started + seconds
        while True:
            one()
            runs += 1
            now = time.perf_counter()
            if now >= deadline:
                break
        elapsed = now - started
        if runs * batch / elapsed > best["texts_per_s"]:
            best = {"texts_per_s": runs * batch / elapsed, "ms_per_run": 1000 * elapsed / runs}
    return best


def run(
    model: Path, threads: list[int], seconds: float, batch_sizes: tuple[int, ...] = BATCH_SIZES,
    precision: str = "fp32", sustained: float = 0.0,
) -> dict[str, Any]:
    """The table by batch size, and per thread count the best batch size's peak
    (``texts_per_s``) and, with ``sustained`` seconds, its one long run
    (``sustained_texts_per_s``)."""
    texts = load_texts()
    bundle = load_bundle(model)
    rows = []
    limit: dict[str, dict[str, Any]] = {}
    for n_threads in threads:
        options = RuntimeOptions(intra_op_threads=n_threads, inter_op_threads=1, variant=precision)
        runtime = ModelRuntime(bundle, options)
        predictor = Predictor(runtime, max_batch_size=max(batch_sizes), max_delay=0, max_queue_size=max(batch_sizes))
        mine = [
            {"threads": n_threads, "batch": batch, **measure(predictor, texts, batch, seconds)} for batch in batch_sizes
        ]
        rows += mine
        best = max(mine, key=lambda r: r["texts_per_s"])
        limit[str(n_threads)] = {"batch": best["batch"], "texts_per_s": best["texts_per_s"]}
        if sustained > 0:
            long_run = measure(predictor, texts, int(best["batch"]), sustained, repeats=1)
            limit[str(n_threads)]["sustained_texts_per_s"] = long_run["texts_per_s"]
    return {
        "model": str(bundle.path),
        "precision": precision,
        "rows": rows,
        "limit": limit,
        "batch1_ms": {
            str(n): next(r["ms_per_run"] for r in rows if r["threads"] == n and r["batch"] == 1) for n in threads
        },
    }


def table(result: dict[str, Any]) -> str:
    threads = sorted({r["threads"] for r in result["rows"]})
    lines = [
        "| batch | " + " | ".join(f"{n} thread{'s' if n > 1 else ''}: texts/s (ms/run)" for n in threads) + " |",
        "| ---: | " + " | ".join("---:" for _ in threads) + " |",
    ]
    for batch in sorted({r["batch"] for r in result["rows"]}):
        cells = []
        for n in threads:
            row = next(r for r in result["rows"] if r["threads"] == n and r["batch"] == batch)
            cells.append(f"{row['texts_per_s']:,.0f} ({row['ms_per_run']:.2f})")
        lines.append(f"| {batch} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/sentiment"))
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--seconds", type=float, default=1.0, help="per timed run (best of 3 per cell)")
    parser.add_argument("--sustained", type=float, default=0.0,
                        help="also run the best batch size once for this many seconds")
    parser.add_argument("--precision", choices=["fp32", "int8"], default="fp32", help="which graph of the bundle")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    result = run(args.model, args.threads, args.seconds, precision=args.precision, sustained=args.sustained)
    print(table(result))
    for n, best in result["limit"].items():
        line = f"\nlimit ({n} thread(s)): {best['texts_per_s']:,.0f} texts/s at batch {best['batch']} (best short run)"
        if "sustained_texts_per_s" in best:
            line += f"; {best['sustained_texts_per_s']:,.0f} sustained for {args.sustained:g} s"
        print(line)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
