"""Proof that the exported model is the trained model, measured through the service's code."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from service.bundle.format import load_bundle
from service.bundle.runtime import ModelRuntime

TOLERANCE = 1e-4
# The service sorts a batch's texts by length and runs groups of similar length, each padded
# only to its longest text; groups this small give most texts little or no padding.
_GROUP = 32


class ParityError(Exception):
    """ONNX and Keras disagree; the export must not be used."""


@dataclass(frozen=True)
class ParityReport:
    rows: int
    max_abs_diff: float
    argmax_mismatches: int
    bucketed_max_abs_diff: float
    reference_max_abs_diff: float | None
    method: str
    tolerance: float = TOLERANCE

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rows": self.rows,
            "max_abs_diff": self.max_abs_diff,
            "argmax_mismatches": self.argmax_mismatches,
            "bucketed_max_abs_diff": self.bucketed_max_abs_diff,
            "bucketed": f"texts sorted by length, groups of {_GROUP} padded to their longest text",
        }
        if self.reference_max_abs_diff is not None:
            out["tf2onnx_loop_max_abs_diff"] = self.reference_max_abs_diff
        return {
            **out,
            "tolerance": self.tolerance,
            "reference": "keras (tensorflow) predictions on the whole test split",
            "onnx_graph": self.method,
        }


def padded_in_groups(runtime: ModelRuntime, seqs: list[list[int]], group: int = _GROUP) -> np.ndarray:
    """Probabilities with the sequences sorted by length and each ``group`` of similar
    lengths padded only to its own longest, as the service's batcher runs a batch."""
    tokenizer = runtime.bundle.tokenizer
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    out = np.empty((len(seqs), len(runtime.bundle.labels)), dtype=np.float32)
    for start in range(0, len(order), group):
        rows = order[start : start + group]
        width = max(1, max(len(seqs[i]) for i in rows))
        out[rows] = runtime.predict(tokenizer.pad([seqs[i] for i in rows], width))
    return out


def check_parity(
    bundle_dir: Path, texts: list[str], keras_probs: np.ndarray, reference: Path | None, method: str
) -> ParityReport:
    """Load the bundle as the service does and compare its outputs with Keras's.

    Keras saw every text padded to ``max_length``. The ONNX graph is run on the same ids,
    on the ids padded only as the service's batcher pads them (the padding must change
    nothing), and, for recurrent models, the served graph is also compared with
    ``reference``, tf2onnx's plain conversion of the masked model.
    """
    bundle = load_bundle(bundle_dir)
    runtime = ModelRuntime(bundle)
    ids = bundle.tokenizer.encode(texts)
    full = runtime.predict(ids)
    bucketed = padded_in_groups(runtime, [bundle.tokenizer.ids(t) for t in texts])
    reference_diff = None
    if reference is not None:
        plain = ort.InferenceSession(str(reference), providers=["CPUExecutionProvider"])
        (loop_probs,) = plain.run(None, {bundle.manifest.input.name: ids})
        reference_diff = float(np.abs(full - loop_probs).max())
    report = ParityReport(
        rows=len(texts),
        max_abs_diff=float(np.abs(full - keras_probs).max()),
        argmax_mismatches=int(
            ((full.argmax(1) != keras_probs.argmax(1)) | (bucketed.argmax(1) != keras_probs.argmax(1))).sum()
        ),
        bucketed_max_abs_diff=float(np.abs(bucketed - keras_probs).max()),
        reference_max_abs_diff=reference_diff,
        method=method,
    )
    diffs = [report.max_abs_diff, report.bucketed_max_abs_diff, reference_diff or 0.0]
    if max(diffs) > TOLERANCE or report.argmax_mismatches:
        loop = "" if reference_diff is None else f", vs tf2onnx's Loop graph {reference_diff:.2e}"
        raise ParityError(
            f"ONNX differs from Keras: max |diff| {report.max_abs_diff:.2e}, bucketed"
            f" {report.bucketed_max_abs_diff:.2e}{loop} (tolerance {TOLERANCE:.0e}),"
            f" {report.argmax_mismatches} argmax mismatches over {report.rows} rows"
        )
    return report
