"""load -> fit vocabulary -> tuned linear baseline -> train -> export -> parity -> quantize
-> (the compared architectures, for their cards) -> report -> bundle."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from model_export import report as report_mod
from model_export.baseline import linear_baseline
from model_export.build import build_bundle
from model_export.candidate import Candidate, Encoded, encode_splits, train_candidate
from model_export.data import DEFAULT_CORPUS_FILE, Corpus
from model_export.options import ExportOptions, read_corpus
from model_export.recipes import Arch
from model_export.split_record import write_split_record
from model_export.tried import TRIED
from model_export.writer import next_version, publish, staging_directory, write_manifest
from service.bundle.format import load_bundle


def _say(message: str) -> None:
    print(f"[export] {message}", flush=True)


def _dataset_info(corpus: Corpus, data: Encoded) -> dict[str, Any]:
    label_counts = dict(sorted(Counter(corpus.labels).items()))
    return {**corpus.info, "splits": data.splits.sizes(), "label_counts": label_counts}


def _train(arch: Arch, data: Encoded, options: ExportOptions) -> Candidate:
    recipe = options.recipe_for(arch)
    copies = f", {recipe['ensemble']} copies averaged" if recipe["ensemble"] > 1 else ""
    _say(f"training {arch}{copies}")
    candidate = train_candidate(arch, recipe, data, options)
    summary = candidate.training_summary()
    _say(f"{arch}: trained in {summary['seconds']:.0f} s, epochs {summary['epochs_run']}"
         f" (best {summary['best_epoch']})")
    return candidate


def _scratch_card(
    candidate: Candidate, data: Encoded, options: ExportOptions, version: int, dataset: dict[str, Any]
) -> dict[str, Any]:
    """Export and check ``candidate`` in a scratch directory; keep only its card."""
    scratch = Path(tempfile.mkdtemp(prefix=f"textserve-card-{candidate.arch}-"))
    try:
        return build_bundle(scratch, candidate, data, options, version, dataset).card
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _cards(
    shipped: Candidate, data: Encoded, options: ExportOptions, version: int, dataset: dict[str, Any]
) -> list[dict[str, Any]]:
    """The other architectures' cards; for an ensemble, also its first copy alone (no retraining),
    so every architecture is compared at one copy as well."""
    cards = []
    if options.arch in options.cards and len(shipped.members) > 1:
        cards.append(_scratch_card(shipped.first_copy(), data, options, version, dataset))
    for arch in options.cards:
        if arch != options.arch:
            cards.append(_scratch_card(_train(arch, data, options), data, options, version, dataset))
    return cards


def _tried(options: ExportOptions, dataset: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The recorded validation experiments, when this run trains on the corpus they were run on."""
    whole_default = dataset.get("path") == DEFAULT_CORPUS_FILE and options.limit_rows is None
    return [dict(run) for run in TRIED] if whole_default and options.seed == 42 else None


def run(options: ExportOptions, corpus: Corpus | None = None) -> Path:
    """Run every step; returns the published bundle directory. Raises on any failure.

    ``corpus`` lets the CLI read and check the data before TensorFlow is even imported.
    """
    if corpus is None:
        corpus = read_corpus(options)
    data = encode_splits(corpus, options)
    labels = data.labels
    dataset = _dataset_info(corpus, data)
    _say(f"{len(corpus.texts)} rows after de-duplication; splits {data.splits.sizes()}; labels {labels}")
    _say(f"vocabulary: {len(data.tokenizer.vocabulary)} ids (cap {options.vocab_size})")
    _say("linear baseline: choosing C on the validation split")
    baseline = linear_baseline(data.splits, options.seed)
    _say(f"linear baseline: C={baseline['C']:g}, test {baseline['accuracy']:.4f} / {baseline['macro_f1']:.4f}")
    candidate = _train(options.arch, data, options)

    model_root = options.output_dir / options.name
    version = options.version or next_version(model_root)
    with staging_directory(model_root) as stage:
        built = build_bundle(stage, candidate, data, options, version, dataset)
        cards = [built.card, *_cards(candidate, data, options, version, dataset)]
        manifest = built.manifest
        manifest["metrics"]["baseline"] = baseline
        manifest["training"]["cards"] = cards
        tried = _tried(options, dataset)
        if tried is not None:
            manifest["training"]["tried"] = tried
        write_split_record(stage / "report", data.splits, dataset)
        histories = [r.history for r in candidate.results]
        report_mod.write_report(stage / "report", {**manifest, "histories": histories}, labels)
        write_manifest(stage, manifest)
        load_bundle(stage)  # the exact checks the service will run
        final = model_root / str(version)
        publish(stage, final)

    parity = manifest["parity"]
    _say(f"parity: max |diff| {parity['max_abs_diff']:.2e} (bucketed {parity['bucketed_max_abs_diff']:.2e})")
    print(report_mod.summary_table(manifest["metrics"], labels), flush=True)
    print(report_mod.cards_table(cards), flush=True)
    _say(f"bundle written to {final}")
    return final
