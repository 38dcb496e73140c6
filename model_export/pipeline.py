"""load -> fit vocabulary -> build -> train -> evaluate -> export -> parity -> bundle."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import os
import platform
import shutil
import tempfile
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from model_export import report as report_mod
from model_export.baseline import linear_baseline
from model_export.data import Corpus, Splits, stratified_split
from model_export.export import BATCH_DIM, SEQUENCE_DIM, export_onnx, export_reference
from model_export.model import INPUT_NAME, OUTPUT_NAME, ModelConfig, build_model, unmasked_twin
from model_export.options import ExportOptions, read_corpus
from model_export.parity import check_parity
from model_export.quantize import int8_variant
from model_export.train import TrainConfig, evaluate, fit
from model_export.writer import next_version, publish, staging_directory, write_manifest
from service.bundle.format import LABELS_FILE, MODEL_FILE, SCHEMA_VERSION, TOKENIZER_FILE, load_bundle
from service.bundle.tokenizer import Tokenizer, TokenizerConfig


def _say(message: str) -> None:
    print(f"[export] {message}", flush=True)


def library_versions(opset: int) -> dict[str, Any]:
    names = ("tensorflow-cpu", "keras", "tf2onnx", "onnx", "onnxruntime", "numpy", "scikit-learn")
    versions: dict[str, Any] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    versions["tensorflow"] = tf.__version__
    versions["python"] = platform.python_version()
    versions["opset"] = opset
    return versions


def _label_ids(labels: list[str], names: list[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(names)}
    return np.array([index[label] for label in labels], dtype=np.int32)


def _dataset_info(corpus: Corpus, splits: Splits) -> dict[str, Any]:
    label_counts = dict(sorted(Counter(corpus.labels).items()))
    return {**corpus.info, "splits": splits.sizes(), "label_counts": label_counts}


def run(options: ExportOptions, corpus: Corpus | None = None) -> Path:
    """Run every step; returns the published bundle directory. Raises on any failure.

    ``corpus`` lets the CLI read and check the data before TensorFlow is even imported.
    """
    if corpus is None:
        corpus = read_corpus(options)
    splits = stratified_split(corpus, options.seed)
    keras.utils.set_random_seed(options.seed)
    tf.config.experimental.enable_op_determinism()
    labels = splits.label_names
    _say(f"{len(corpus.texts)} rows after de-duplication; splits {splits.sizes()}; labels {labels}")

    tokenizer = Tokenizer.fit(
        splits.train.texts,
        TokenizerConfig(options.max_length, options.vocab_size, options.min_count),
    )
    _say(f"vocabulary: {len(tokenizer.vocabulary)} ids (cap {options.vocab_size})")
    x = {name: tokenizer.encode(getattr(splits, name).texts) for name in ("train", "validation", "test")}
    y = {name: _label_ids(getattr(splits, name).labels, labels) for name in x}

    model_config = ModelConfig(
        vocab_size=len(tokenizer.vocabulary),
        n_classes=len(labels),
        embedding_dim=options.embedding_dim,
        lstm_units=options.lstm_units,
        dropout=options.dropout,
        learning_rate=options.learning_rate,
    )
    model = build_model(model_config)
    train_config = TrainConfig(
        epochs=options.epochs,
        batch_size=options.batch_size,
        patience=options.patience,
        class_weighting=options.class_weighting,
        verbose=options.verbose,
    )
    _say("training")
    result = fit(model, x["train"], y["train"], x["validation"], y["validation"], train_config)
    keras_probs = model.predict(x["test"], batch_size=256, verbose=0)
    metrics = {"test": evaluate(keras_probs, y["test"], labels), "baseline": linear_baseline(splits, options.seed)}
    _say(
        f"test accuracy {metrics['test']['accuracy']:.4f}, macro-F1 {metrics['test']['macro_f1']:.4f}"
        f" after {result.epochs_run} epochs ({result.seconds:.0f} s); linear baseline on the same split:"
        f" {metrics['baseline']['accuracy']:.4f} / {metrics['baseline']['macro_f1']:.4f}"
    )

    model_root = options.output_dir / options.name
    version = options.version or next_version(model_root)
    with staging_directory(model_root) as stage:
        _say("exporting to ONNX with tf2onnx")
        export_onnx(unmasked_twin(model, model_config), stage / MODEL_FILE, options.opset)
        reference = Path(tempfile.mkdtemp(prefix="textserve-reference-")) / "reference.onnx"
        export_reference(model, reference, options.opset)
        tokenizer.save(stage / TOKENIZER_FILE)
        (stage / LABELS_FILE).write_text(json.dumps(labels) + "\n", encoding="utf-8")
        hyperparameters = {
            k: v for k, v in asdict(options).items()
            if k not in ("data", "output_dir", "name", "version", "verbose", "text_column", "label_column")
        }
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
            "dataset": _dataset_info(corpus, splits),
            "libraries": library_versions(options.opset),
            "parity": None,
            "training": {
                "hyperparameters": hyperparameters,
                "epochs_run": result.epochs_run,
                "best_epoch": result.best_epoch,
                "seconds": round(result.seconds, 1),
            },
        }
        write_manifest(stage, manifest)
        _say("checking ONNX against Keras on the whole test split")
        parity = check_parity(stage, splits.test.texts, keras_probs, reference)
        shutil.rmtree(reference.parent, ignore_errors=True)
        manifest["parity"] = parity.to_dict()
        manifest["variants"] = {}
        if options.quantize:
            _say("quantizing to int8 and scoring it on the test split")
            entry, measured = int8_variant(
                stage, MODEL_FILE, tokenizer.encode(splits.test.texts), y["test"], keras_probs,
                metrics["test"], labels,
            )
            manifest["training"]["int8"] = measured
            if entry is not None:
                manifest["variants"]["int8"] = entry
            _say(
                f"int8: accuracy {measured['accuracy']:.4f} (drop {measured['accuracy_drop']:+.4f}),"
                f" {'shipped' if entry else 'not shipped'}"
            )
        summary = {**manifest, "history": result.history}
        report_mod.write_report(stage / "report", summary, labels)
        write_manifest(stage, manifest)
        load_bundle(stage)  # the exact checks the service will run
        final = model_root / str(version)
        publish(stage, final)

    _say(
        f"parity: max |diff| {parity.max_abs_diff:.2e} (bucketed {parity.bucketed_max_abs_diff:.2e},"
        f" vs tf2onnx's Loop graph {parity.reference_max_abs_diff:.2e})"
    )
    print(report_mod.summary_table(metrics["test"], labels, metrics["baseline"]), flush=True)
    _say(f"bundle written to {final}")
    return final
