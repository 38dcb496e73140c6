"""Splitting a batch into runs of similar lengths.

onnxruntime's LSTM computes every row of a run for every time step up to the run's
longest row, so a batch of tweets (mean ~16 tokens, longest ~32) pays for padding it never
uses. Sorting a batch by length and running it as a few groups of similar lengths costs a
few more runs and saves most of the padding: on the shipped model, one core, about 6,000
texts/s instead of 4,300 for batches of 64. How many groups pays depends on the model and
the CPU, so the cost of a run is measured on the loaded model at start (:func:`calibrate`)
and each batch takes the split with the lowest estimated cost (:func:`length_groups`).

The model masks padding, so the split changes no output (tests compare both ways).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

_MAX_GROUPS = 16


@dataclass(frozen=True)
class RunCost:
    """Estimated seconds of one run of ``rows`` rows padded to ``steps`` time steps."""

    per_run: float
    per_step: float
    per_row_step: float

    def __call__(self, rows: int, steps: int) -> float:
        return self.per_run + steps * (self.per_step + rows * self.per_row_step)


# Measured on the shipped model (one core of the development machine); used when
# calibration is skipped or gives nonsense.
DEFAULT_COST = RunCost(per_run=125e-6, per_step=12e-6, per_row_step=7.3e-6)


def length_groups(sorted_lengths: Sequence[int], cost: RunCost) -> list[tuple[int, int]]:
    """``[start, end)`` bounds of contiguous groups of ``sorted_lengths`` (ascending) with the
    lowest estimated total cost, among splits into 1 to 16 groups of equal size."""
    n = len(sorted_lengths)
    best: list[tuple[int, int]] = [(0, n)]
    best_cost = cost(n, max(1, sorted_lengths[-1])) if n else 0.0
    for k in range(2, min(n, _MAX_GROUPS) + 1):
        bounds = [(i * n // k, (i + 1) * n // k) for i in range(k)]
        total = sum(cost(end - start, max(1, sorted_lengths[end - 1])) for start, end in bounds)
        if total < best_cost:
            best, best_cost = bounds, total
    return best


def calibrate(run: Callable[[np.ndarray], object], repeats: int = 5) -> RunCost:
    """Time three shapes on the real model and solve for the three costs."""

    def fastest(rows: int, steps: int) -> float:
        ids = np.ones((rows, steps), dtype=np.int32)
        run(ids)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            run(ids)
            times.append(time.perf_counter() - started)
        return min(times)

    one_short, one_long, many_long = fastest(1, 1), fastest(1, 24), fastest(24, 24)
    per_row_step = (many_long - one_long) / (24 * 23)
    per_step = (one_long - one_short) / 23 - per_row_step
    per_run = one_short - per_step - per_row_step
    if per_row_step <= 0 or per_step < 0 or per_run < 0:
        return DEFAULT_COST  # a noisy measurement; the defaults are close for this model
    return RunCost(per_run, per_step, per_row_step)
