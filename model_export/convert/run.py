"""read -> plan -> probe Keras -> convert -> stage the bundle -> parity -> publish.

The bundle is staged and published as the export step's are (``writer.py``): it appears
whole, or nothing does.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import keras
import onnx
import tensorflow as tf

from model_export.convert.graph import GENERIC, INPUT_NAME, OPSET, OUTPUT_NAME, Graph, candidates
from model_export.convert.options import ConvertOptions, read_probe_texts
from model_export.convert.parity import ParityError, Reference, check_finite, check_parity
from model_export.convert.plan import Plan, make_plan
from model_export.convert.probes import all_probes
from model_export.convert.source import SourceModel, load_source
from model_export.convert.tokenizer_json import read_keras_tokenizer
from model_export.writer import library_versions, next_version, publish, staging_directory, write_manifest
from service.bundle.format import LABELS_FILE, MODEL_FILE, SCHEMA_VERSION, TOKENIZER_FILE, load_bundle, sha256_file
from service.bundle.runtime import ModelRuntime
from service.bundle.tokenizer.sequences import Layout


def say(message: str) -> None:
    print(f"[convert] {message}", flush=True)


def _file_entry(path: Path) -> dict[str, Any]:
    if path.is_file():
        return {"file": path.name, "sha256": sha256_file(path), "bytes": path.stat().st_size}
    # A SavedModel directory: the sha256 of "relative path NUL file sha256 LF" for each file, sorted.
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        digest.update(f"{file.relative_to(path).as_posix()}\0{sha256_file(file)}\n".encode())
    return {"file": path.name, "sha256_of_files": digest.hexdigest(), "files": len(files),
            "bytes": sum(f.stat().st_size for f in files)}


def _manifest(options: ConvertOptions, version: int, plan: Plan, graph: Graph, source: SourceModel) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "name": options.name,
        "version": version,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "labels": options.labels,
        "input": {"name": INPUT_NAME, "dtype": "int32", "shape": ["batch", graph.length or "sequence"]},
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": ["batch", len(options.labels)]},
        "max_length": plan.max_length,
        "libraries": library_versions(OPSET),
        "parity": None,
        "source": {
            "model": {**_file_entry(options.keras_model), "format": source.format},
            "tokenizer": _file_entry(options.tokenizer) if options.tokenizer else None,
            "keras": keras.__version__ if source.format != "saved_model" else None,
            "tensorflow": tf.__version__,
            "pipeline": plan.pipeline,
        },
    }


def _served_layout(plan: Plan, graph: Graph, invariant: bool) -> Layout:
    user = plan.user_layout
    return Layout(user.max_length, graph.padding or user.padding, user.truncating, invariant)


def _try(
    graph: Graph, options: ConvertOptions, plan: Plan, source: SourceModel, reference: Reference, root: Path
) -> Path:
    version = options.version or next_version(root)
    with staging_directory(root) as stage:
        onnx.save(graph.proto, str(stage / MODEL_FILE))
        plan.make_tokenizer(_served_layout(plan, graph, False)).save(stage / TOKENIZER_FILE)
        (stage / LABELS_FILE).write_text(json.dumps(options.labels) + "\n", encoding="utf-8")
        manifest = _manifest(options, version, plan, graph, source)
        write_manifest(stage, manifest)
        may_be_invariant = source.masks_padding and graph.length is None
        report = check_parity(stage, reference, may_be_invariant, graph.method)
        manifest["parity"] = report
        plan.make_tokenizer(_served_layout(plan, graph, report["padding_invariant"])).save(stage / TOKENIZER_FILE)
        write_manifest(stage, manifest)
        ModelRuntime(load_bundle(stage)).warm_up()  # the exact checks the service will run
        final = root / str(version)
        publish(stage, final)
    padding = "padding-invariant" if report["padding_invariant"] else "every row padded to max-length"
    say(f"parity on {report['probes']} probes: max |diff| {report['max_abs_diff']:.2e}, same argmax; {padding}")
    return final


def convert(options: ConvertOptions) -> Path:
    """Convert, check and publish; returns the bundle directory. ConvertError on any refusal."""
    tokenizer_file = read_keras_tokenizer(options.tokenizer) if options.tokenizer else None
    user_texts = read_probe_texts(options.probe_texts)
    root = options.output_dir / options.name
    say(f"loading {options.keras_model} ({options.model_format})")
    source = load_source(options.keras_model, options.model_format)
    plan = make_plan(options, source, tokenizer_file)
    probes = all_probes(plan.words, plan.max_length, user_texts, plan.joiner)
    say(f"running your Keras pipeline on {len(probes)} probe texts ({len(user_texts)} of them yours)")
    try:
        reference = plan.reference(probes)
    except Exception as exc:  # Keras' own failure on a probe, e.g. an id beyond the Embedding
        raise ParityError(f"Keras itself fails on the probe texts: {' '.join(str(exc).split())[:300]}") from exc
    check_finite(reference)
    for graph in candidates(source, len(options.labels)):
        say(f"converted with tf2onnx ({graph.name}); checking parity")
        try:
            return _try(graph, options, plan, source, reference, root)
        except ParityError as exc:
            if graph.method == GENERIC:
                raise
            say(f"{graph.name} failed its check ({exc}); trying the generic graph")
    raise AssertionError("candidates() always ends with the generic graph")
