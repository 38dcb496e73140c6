"""Proof that the exported model is the trained model, measured through the service's code."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from model_export.lstm_masking import METHOD
from service.bundle.format import load_bundle
from service.bundle.runtime import ModelRuntime

TOLERANCE = 1e-4
_CHUNK = 256


class ParityError(Exception):
    """ONNX and Keras disagree; the export must not be used."""


@dataclass(frozen=True)
class ParityReport:
    rows: int
    max_abs_diff: float
    argmax_mismatches: int
    bucketed_max_abs_diff: float
    reference_max_abs_diff: float
    tolerance: float = TOLERANCE

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "max_abs_diff": self.max_abs_diff,
            "argmax_mismatches": self.argmax_mismatches,
            "bucketed_max_abs_diff": self.bucketed_max_abs_diff,
            "tf2onnx_loop_max_abs_diff": self.reference_max_abs_diff,
            "tolerance": self.tolerance,
            "reference": "keras (tensorflow) predictions on the whole test split",
            "onnx_graph": METHOD,
        }


def check_parity(bundle_dir: Path, texts: list[str], keras_probs: np.ndarray, reference: Path) -> ParityReport:
    """Load the bundle as the service does and compare its outputs with Keras's.

    Three comparisons: ids padded to ``max_length`` (what Keras saw), ids padded per chunk
    to the chunk's longest text (what the service's batcher sends), and the same ids through
    ``reference``, tf2onnx's plain conversion of the masked model.
    """
    bundle = load_bundle(bundle_dir)
    runtime = ModelRuntime(bundle)
    tokenizer = bundle.tokenizer
    full = runtime.predict(tokenizer.encode(texts))
    bucketed = np.empty_like(full)
    for start in range(0, len(texts), _CHUNK):
        seqs = [tokenizer.ids(t) for t in texts[start : start + _CHUNK]]
        width = max(1, max(len(s) for s in seqs))
        bucketed[start : start + _CHUNK] = runtime.predict(tokenizer.pad(seqs, width))
    plain = ort.InferenceSession(str(reference), providers=["CPUExecutionProvider"])
    (loop_probs,) = plain.run(None, {bundle.manifest.input.name: tokenizer.encode(texts)})
    report = ParityReport(
        rows=len(texts),
        max_abs_diff=float(np.abs(full - keras_probs).max()),
        argmax_mismatches=int(
            ((full.argmax(1) != keras_probs.argmax(1)) | (bucketed.argmax(1) != keras_probs.argmax(1))).sum()
        ),
        bucketed_max_abs_diff=float(np.abs(bucketed - keras_probs).max()),
        reference_max_abs_diff=float(np.abs(full - loop_probs).max()),
    )
    if (
        report.max_abs_diff > TOLERANCE
        or report.bucketed_max_abs_diff > TOLERANCE
        or report.reference_max_abs_diff > TOLERANCE
        or report.argmax_mismatches
    ):
        raise ParityError(
            f"ONNX differs from Keras: max |diff| {report.max_abs_diff:.2e}, bucketed"
            f" {report.bucketed_max_abs_diff:.2e}, vs tf2onnx's Loop graph"
            f" {report.reference_max_abs_diff:.2e} (tolerance {TOLERANCE:.0e}),"
            f" {report.argmax_mismatches} argmax mismatches over {report.rows} rows"
        )
    return report
