"""Parity, the converter's contract: the staged bundle, loaded and run by the service's own
code (``load_bundle``, its tokenizer, ``ModelRuntime``), against the user's Keras pipeline.

1. The tokenizer: textserve's ids, laid out as Keras laid them out, must equal the ids the
   Keras model saw, on every probe.
2. The graph, every row padded to ``max_length``: max |Δp| <= 1e-4 and the same argmax on
   every probe, or nothing is written.
3. Padding invariance, only for a model that masks padding (an Embedding with
   ``mask_zero``) and takes any length: the same holds with each probe padded only to its
   own length, and in groups of similar lengths padded to the group's longest (what the
   service's batcher does). Only then may the service pad a batch to its longest text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from model_export.convert.errors import ConvertError
from model_export.convert.probes import Probe
from model_export.parity import padded_in_groups
from service.bundle.format import load_bundle
from service.bundle.runtime import ModelRuntime
from service.bundle.tokenizer import TextTokenizer
from service.bundle.tokenizer.sequences import Layout

TOLERANCE = 1e-4
_CHUNK = 256
_GROUP = 8


class ParityError(ConvertError):
    """The bundle does not answer as Keras does; the message says where."""


@dataclass(frozen=True)
class Reference:
    """What the user's own pipeline gave on the probes."""

    probes: list[Probe]
    probs: np.ndarray  # [n, labels]
    ids: np.ndarray  # [n, max_length]: what the Keras model was fed
    layout: Layout  # how Keras cut and padded them
    description: str


def _show(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _scores(row: np.ndarray) -> str:
    return "[" + ", ".join(f"{v:.6f}" for v in row) + "]"


def _compare(reference: Reference, got: np.ndarray) -> tuple[float, int, str]:
    """Max |Δp|, argmax mismatches, and where the worst difference is."""
    diff = np.nan_to_num(np.abs(got - reference.probs), nan=np.inf).max(axis=1)
    mismatched = np.flatnonzero(got.argmax(axis=1) != reference.probs.argmax(axis=1))
    row = int(mismatched[0]) if len(mismatched) and diff.max() <= TOLERANCE else int(diff.argmax())
    probe = reference.probes[row]
    where = (
        f"on {probe.origin} {_show(probe.text)}: Keras {_scores(reference.probs[row])},"
        f" textserve {_scores(got[row])}"
    )
    return float(diff.max()), len(mismatched), where


def check_finite(reference: Reference) -> None:
    """Keras's own answers must be numbers: a masked average over a text with no known token,
    for one, divides 0 by 0, and textserve cannot serve NaN."""
    bad = np.flatnonzero(~np.isfinite(reference.probs).all(axis=1))
    if len(bad):
        probe = reference.probes[int(bad[0])]
        raise ParityError(
            f"your Keras model itself gives scores that are not numbers ({_scores(reference.probs[bad[0]])}) on"
            f" {len(bad)} probe(s), first {probe.origin} {_show(probe.text)}; textserve cannot serve them"
            " (a masked average over a text with no known word divides 0 by 0)"
        )


def _check_ids(tokenizer: TextTokenizer, reference: Reference) -> None:
    ours = reference.layout.pad([tokenizer.ids(p.text) for p in reference.probes])
    differs = np.flatnonzero((ours != reference.ids).any(axis=1))
    if len(differs):
        row = int(differs[0])
        probe = reference.probes[row]
        raise ParityError(
            f"parity failed: textserve's tokenizer gives other ids than Keras on {len(differs)} probe(s), first"
            f" {probe.origin} {_show(probe.text)}: Keras {reference.ids[row].tolist()}, textserve {ours[row].tolist()}"
        )


def _run(runtime: ModelRuntime, tokenizer: TextTokenizer, texts: list[str]) -> np.ndarray:
    chunks = [texts[i : i + _CHUNK] for i in range(0, len(texts), _CHUNK)]
    return np.concatenate([runtime.predict(tokenizer.encode(chunk)) for chunk in chunks])


def _padded_to_longest(
    runtime: ModelRuntime, tokenizer: TextTokenizer, texts: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Each text padded to its own length, and groups of similar lengths to their longest."""
    seqs = [tokenizer.ids(t) for t in texts]
    alone = np.concatenate([runtime.predict(tokenizer.pad([s], max(1, len(s)))) for s in seqs])
    return alone, padded_in_groups(runtime, seqs, _GROUP)


def check_parity(stage: Path, reference: Reference, may_be_invariant: bool, method: str) -> dict[str, Any]:
    """The parity report for the manifest; ParityError if the bundle must not be written.
    ``report["padding_invariant"]`` is what the tokenizer spec may then claim."""
    bundle = load_bundle(stage)
    runtime = ModelRuntime(bundle)
    tokenizer = bundle.tokenizer
    texts = [p.text for p in reference.probes]
    _check_ids(tokenizer, reference)
    full = _run(runtime, tokenizer, texts)
    worst, mismatches, where = _compare(reference, full)
    if worst > TOLERANCE or mismatches:
        raise ParityError(
            f"parity failed: max |diff| {worst:.2e} (tolerance {TOLERANCE:.0e}), {mismatches} argmax"
            f" difference(s) over {len(texts)} probes; worst {where}"
        )
    longest_diff: float | None = None
    invariant = False
    if may_be_invariant:
        try:
            alone, grouped = _padded_to_longest(runtime, tokenizer, texts)
        except Exception as exc:  # onnxruntime's own errors, e.g. a convolution wider than a short row
            print(f"[convert] the graph fails on rows padded only to their own length ({type(exc).__name__})")
        else:
            (alone_diff, alone_mis, _), (grouped_diff, grouped_mis, _) = (
                _compare(reference, alone), _compare(reference, grouped)
            )
            longest_diff = max(alone_diff, grouped_diff)
            invariant = longest_diff <= TOLERANCE and not alone_mis and not grouped_mis
    bundle_probes = sum(p.origin.startswith("built-in") for p in reference.probes)
    return {
        "probes": len(texts),
        "built_in_probes": bundle_probes,
        "user_probes": len(texts) - bundle_probes,
        "ids_identical": True,
        "max_abs_diff": worst,
        "argmax_mismatches": 0,
        "padded_to_longest_max_abs_diff": longest_diff,
        "padding_invariant": invariant,
        "tolerance": TOLERANCE,
        "reference": reference.description,
        "onnx_graph": method,
    }
