"""Milliseconds per text in onnxruntime on one thread, through the service's own runtime
class and session settings, at batch 1 and batch 32. As the service does, the texts are
sorted by length before they are grouped, and each batch is padded to its longest text.

The machine may be shared, so each figure is the best of several timed passes: the cost of
the model itself, not of whatever else was running.
"""

from __future__ import annotations

import time
from pathlib import Path

from service.bundle.format import load_bundle
from service.bundle.options import RuntimeOptions
from service.bundle.runtime import ModelRuntime

BATCHES = (1, 32)
_TEXTS = 1024
_PASSES = 5


def ms_per_text(bundle_dir: Path, texts: list[str], variant: str = "fp32") -> dict[str, float]:
    """``{"batch_1": ms, "batch_32": ms}`` over the first texts given (in their order)."""
    bundle = load_bundle(bundle_dir)
    runtime = ModelRuntime(bundle, RuntimeOptions(intra_op_threads=1, inter_op_threads=1, variant=variant))
    runtime.warm_up()
    tokenizer = bundle.tokenizer
    seqs = sorted((tokenizer.ids(t) for t in texts[:_TEXTS]), key=len)
    out: dict[str, float] = {}
    for size in BATCHES:
        batches = [seqs[i : i + size] for i in range(0, len(seqs), size)]
        matrices = [tokenizer.pad(b, max(1, max(len(s) for s in b))) for b in batches]
        best = float("inf")
        for _ in range(_PASSES):
            started = time.perf_counter()
            for ids in matrices:
                runtime.predict(ids)
            best = min(best, time.perf_counter() - started)
        out[f"batch_{size}"] = best * 1000 / len(seqs)
    return out
