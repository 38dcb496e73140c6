"""Texts in, predictions out: tokenizer -> micro-batcher -> onnxruntime -> labels.

Tokenizing happens on the caller's side (the event loop, or a thread for big requests),
so it overlaps with the model running the previous batch in the inference thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from service.engine.batcher import MicroBatcher
from service.engine.bucketing import DEFAULT_COST, RunCost, calibrate, length_groups
from service.engine.hooks import BatchObserver

if TYPE_CHECKING:
    from service.bundle.runtime import ModelRuntime

# Above this many characters in one request, tokenizing moves off the event loop.
_OFFLOAD_CHARS = 50_000


@dataclass(slots=True)  # not frozen: a frozen dataclass is made at twice the cost, per text
class Prediction:
    label: str
    scores: dict[str, float]
    truncated: bool

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "scores": self.scores, "truncated": self.truncated}


class Predictor:
    def __init__(
        self,
        runtime: ModelRuntime,
        *,
        max_batch_size: int,
        max_delay: float,
        max_queue_size: int,
        observer: BatchObserver | None = None,
        run_cost: RunCost | None = None,
    ) -> None:
        self.runtime = runtime
        self.tokenizer = runtime.bundle.tokenizer
        # A graph whose outputs depend on the amount of padding (a converted model with
        # pre-padding, no mask or a fixed input length) runs every row padded to max_length,
        # in one run per batch; the bundle's parity check decided which kind this is.
        self.pad_to_longest = self.tokenizer.padding_invariant
        if run_cost is None:
            run_cost = calibrate(runtime.predict) if self.pad_to_longest else DEFAULT_COST
        self.run_cost = run_cost
        self.labels = list(runtime.bundle.labels)
        self.batcher = MicroBatcher(
            self.answer_batch,
            max_batch_size=max_batch_size,
            max_delay=max_delay,
            max_queue_size=max_queue_size,
            observer=observer,
        )

    def run_batch(self, sequences: Sequence[list[int]]) -> np.ndarray:
        """Probabilities for a batch, in order. The batch runs as groups of similar lengths,
        each padded only to its own longest text (see ``bucketing.py``)."""
        if len(sequences) <= 2 or not self.pad_to_longest:
            return self.run_padded(sequences)
        order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
        lengths = [len(sequences[i]) for i in order]
        groups = length_groups(lengths, self.run_cost)
        if len(groups) == 1:
            return self.run_padded(sequences)
        out = np.empty((len(sequences), len(self.labels)), dtype=np.float32)
        for start, end in groups:
            rows = order[start:end]
            out[rows] = self.run_padded([sequences[i] for i in rows])
        return out

    def answer_batch(self, sequences: Sequence[list[int]]) -> list[tuple[str, dict[str, float]]]:
        """(label, scores) per text, in order: what the batcher hands each request. Made
        once per batch (two numpy calls), not per request on a one-row slice, where the
        numpy calls cost more than the answer they make."""
        probs = self.run_batch(sequences)
        labels = self.labels
        return [
            (labels[b], dict(zip(labels, row, strict=True)))
            for b, row in zip(probs.argmax(axis=1).tolist(), probs.tolist(), strict=True)
        ]

    def run_padded(self, sequences: Sequence[list[int]]) -> np.ndarray:
        """One run, every row padded to the longest (the model masks padding), or to
        max_length if the model's outputs depend on padding."""
        width = max(1, max(len(s) for s in sequences)) if self.pad_to_longest else None
        return self.runtime.predict(self.tokenizer.pad(sequences, width))

    def encode(self, texts: Sequence[str]) -> tuple[Sequence[list[int]], Sequence[bool]]:
        """Token ids and truncation flags, in order (one pass, split by ``zip``)."""
        if not texts:
            return [], []
        ids, truncated = zip(*map(self.tokenizer.ids_and_truncated, texts), strict=True)
        return ids, truncated

    async def predict(self, texts: Sequence[str], hold: float | None = None) -> list[Prediction]:
        """``hold``: how long, under load, their batch may wait for company (seconds; the
        batcher's ``max_delay`` if None)."""
        self.batcher.check_room(len(texts))  # shed before tokenizing, not after
        if sum(map(len, texts)) > _OFFLOAD_CHARS:
            ids, truncated = await asyncio.to_thread(self.encode, texts)
        else:
            ids, truncated = self.encode(texts)
        answers = await self.batcher.submit(ids, hold)
        return [
            Prediction(label, scores, cut) for (label, scores), cut in zip(answers, truncated, strict=True)
        ]
