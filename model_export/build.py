"""A trained candidate -> a bundle directory: ONNX graph(s), tokenizer, labels, manifest,
checked for parity, quantized, scored and timed. Used for the shipped model and for every
architecture compared with it, so each card comes from the same export path."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from model_export.candidate import Candidate, Encoded
from model_export.export import BATCH_DIM, SEQUENCE_DIM, export_onnx, export_reference, method
from model_export.model import INPUT_NAME, OUTPUT_NAME
from model_export.options import ExportOptions
from model_export.parity import check_parity
from model_export.quantize import INT8_FILE, int8_variant
from model_export.speed import ms_per_text
from model_export.train import evaluate
from model_export.writer import library_versions, write_manifest
from service.bundle.format import LABELS_FILE, MODEL_FILE, SCHEMA_VERSION, TOKENIZER_FILE


def _say(message: str) -> None:
    print(f"[export] {message}", flush=True)


@dataclass(frozen=True)
class Built:
    manifest: dict[str, Any]
    card: dict[str, Any]


def _hyperparameters(options: ExportOptions, candidate: Candidate) -> dict[str, Any]:
    general = ("limit_rows", "seed", "max_length", "vocab_size", "min_count", "epochs", "batch_size",
               "patience", "class_weighting", "opset", "quantize")
    return {"arch": candidate.arch, **candidate.recipe, **{k: getattr(options, k) for k in general}}


def _export(stage: Path, candidate: Candidate, opset: int) -> Path | None:
    """Write the served graph; for recurrent models also the reference (its path, to delete)."""
    export_onnx(candidate.served_graph(), stage / MODEL_FILE, opset, recurrent=candidate.recurrent)
    if not candidate.recurrent:
        return None
    reference = Path(tempfile.mkdtemp(prefix="textserve-reference-")) / "reference.onnx"
    export_reference(candidate.model, reference, opset)
    return reference


def build_bundle(
    stage: Path, candidate: Candidate, data: Encoded, options: ExportOptions, version: int,
    dataset: dict[str, Any],
) -> Built:
    """Everything a bundle holds except the report; raises ParityError if ONNX differs from Keras."""
    labels = data.labels
    _say(f"{candidate.arch}: exporting to ONNX with tf2onnx")
    reference = _export(stage, candidate, options.opset)
    data.tokenizer.save(stage / TOKENIZER_FILE)
    (stage / LABELS_FILE).write_text(json.dumps(labels) + "\n", encoding="utf-8")
    keras_probs = {name: candidate.model.predict(data.x[name], batch_size=256, verbose=0)
                   for name in ("validation", "test")}
    metrics = {name: evaluate(keras_probs[name], data.y[name], labels) for name in ("test", "validation")}
    manifest: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "name": options.name,
        "version": version,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "labels": labels,
        "input": {"name": INPUT_NAME, "dtype": "int32", "shape": [BATCH_DIM, SEQUENCE_DIM]},
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": [BATCH_DIM, len(labels)]},
        "max_length": options.max_length,
        "metrics": metrics,
        "dataset": dataset,
        "libraries": library_versions(options.opset, "scikit-learn"),
        "parity": None,
        "training": {"hyperparameters": _hyperparameters(options, candidate), **candidate.training_summary()},
        "variants": {},
    }
    write_manifest(stage, manifest)
    _say(f"{candidate.arch}: checking ONNX against Keras on the whole test split")
    try:
        parity = check_parity(stage, data.splits.test.texts, keras_probs["test"], reference,
                              method(candidate.recurrent))
    finally:
        if reference is not None:
            shutil.rmtree(reference.parent, ignore_errors=True)
    manifest["parity"] = parity.to_dict()
    if options.quantize:
        entry, measured = int8_variant(
            stage, MODEL_FILE, data.x["test"], data.y["test"], keras_probs["test"], metrics["test"], labels,
        )
        manifest["training"]["int8"] = measured
        if entry is not None:
            manifest["variants"]["int8"] = entry
        _say(
            f"{candidate.arch}: int8 accuracy {measured['accuracy']:.4f} (drop {measured['accuracy_drop']:+.4f}),"
            f" {'shipped' if entry else 'not shipped'}"
        )
    write_manifest(stage, manifest)
    return Built(manifest, card(stage, candidate, manifest, data.splits.test.texts))


def card(stage: Path, candidate: Candidate, manifest: dict[str, Any], texts: list[str]) -> dict[str, Any]:
    """Size, accuracy and speed of one exported architecture, for the report's comparison."""
    metrics = manifest["metrics"]
    out: dict[str, Any] = {
        "arch": candidate.arch,
        "recipe": candidate.recipe,
        "parameters": int(candidate.model.count_params()),
        "onnx_bytes": (stage / MODEL_FILE).stat().st_size,
        "validation": {k: metrics["validation"][k] for k in ("accuracy", "macro_f1")},
        "test": {k: metrics["test"][k] for k in ("accuracy", "macro_f1")},
        "ms_per_text": ms_per_text(stage, texts),
        "training_seconds": manifest["training"]["seconds"],
        "parity_max_abs_diff": max(manifest["parity"]["max_abs_diff"], manifest["parity"]["bucketed_max_abs_diff"]),
    }
    int8 = manifest["training"].get("int8")
    if int8 is not None:
        out["int8"] = {
            "shipped": int8["shipped"],
            "test": {"accuracy": int8["accuracy"], "macro_f1": int8["macro_f1"]},
        }
        if int8["shipped"]:
            out["int8"]["onnx_bytes"] = (stage / INT8_FILE).stat().st_size
            out["int8"]["ms_per_text"] = ms_per_text(stage, texts, variant="int8")
    return out


def label_counts(labels: list[str]) -> dict[str, int]:
    values, counts = np.unique(np.array(labels), return_counts=True)
    return {str(v): int(c) for v, c in zip(values, counts, strict=True)}
