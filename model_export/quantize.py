"""The optional int8 variant: onnxruntime's dynamic quantization of the exported graph.

The fused LSTM operators become ``DynamicQuantizeLSTM`` (int8 weights): about twice as fast
for one text and 1.3-1.5 times for batches of 64 on one core. The variant is shipped only if
its test accuracy is at most half a point below the fp32 graph's; either way the figures go
into the manifest or the training report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import QuantType, quantize_dynamic

from model_export.train import evaluate

INT8_FILE = "model.int8.onnx"
MAX_ACCURACY_DROP = 0.005


def int8_variant(
    stage: Path, model_file: str, ids: np.ndarray, y_true: np.ndarray, fp32_probs: np.ndarray,
    fp32_metrics: dict[str, Any], labels: list[str],
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(the manifest's variant entry or None if refused, what was measured)."""
    target = stage / INT8_FILE
    quantize_dynamic(str(stage / model_file), str(target), weight_type=QuantType.QInt8)
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    (probs,) = session.run(None, {session.get_inputs()[0].name: ids})
    metrics = evaluate(probs, y_true, labels)
    measured = {
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "accuracy_drop": fp32_metrics["accuracy"] - metrics["accuracy"],
        "max_abs_diff_vs_fp32": float(np.abs(probs - fp32_probs).max()),
        "argmax_agreement_vs_fp32": float((probs.argmax(1) == fp32_probs.argmax(1)).mean()),
        "rows": len(y_true),
    }
    if measured["accuracy_drop"] > MAX_ACCURACY_DROP:
        target.unlink()
        return None, {**measured, "shipped": False, "reason": f"accuracy drop over {MAX_ACCURACY_DROP}"}
    entry = {
        "file": INT8_FILE,
        "description": "onnxruntime.quantization.quantize_dynamic, QInt8 weights (DynamicQuantizeLSTM)",
        "metrics": {"test": metrics},
        "agreement": {k: measured[k] for k in ("max_abs_diff_vs_fp32", "argmax_agreement_vs_fp32", "rows")},
    }
    return entry, {**measured, "shipped": True}
