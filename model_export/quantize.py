"""The optional int8 variant: onnxruntime's dynamic quantization of the exported graph.

Weights become int8: fused LSTM operators become ``DynamicQuantizeLSTM``, MatMul its integer
forms, embedding tables int8 rows dequantized after the lookup; convolutions stay float. The
variant is shipped only if its test accuracy is at most half a point below the fp32 graph's;
either way the figures go into the manifest or the training report (the report's cards give
each architecture's int8 speed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.quantization.registry import IntegerOpsRegistry

from model_export.train import evaluate

INT8_FILE = "model.int8.onnx"
MAX_ACCURACY_DROP = 0.005
# onnxruntime's ConvInteger runs the CNN's convolutions several times slower than float Conv
# (measured on this model: 4-6x per text): convolutions keep float weights.
_OP_TYPES = [op for op in IntegerOpsRegistry if op != "Conv"]
_QUANTIZED_OPS = ("DynamicQuantizeLSTM", "MatMulInteger", "DynamicQuantizeMatMul", "QAttention", "DequantizeLinear")


def _description(path: Path) -> str:
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    found = [op for op in _QUANTIZED_OPS if op in ops]
    return "onnxruntime.quantization.quantize_dynamic, QInt8 weights (" + ", ".join(found or ["no integer ops"]) + ")"


def int8_variant(
    stage: Path, model_file: str, ids: np.ndarray, y_true: np.ndarray, fp32_probs: np.ndarray,
    fp32_metrics: dict[str, Any], labels: list[str],
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(the manifest's variant entry or None if refused, what was measured)."""
    target = stage / INT8_FILE
    quantize_dynamic(str(stage / model_file), str(target), weight_type=QuantType.QInt8, op_types_to_quantize=_OP_TYPES)
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
        "description": _description(target),
        "metrics": {"test": metrics},
        "agreement": {k: measured[k] for k in ("max_abs_diff_vs_fp32", "argmax_agreement_vs_fp32", "rows")},
    }
    return entry, {**measured, "shipped": True}
