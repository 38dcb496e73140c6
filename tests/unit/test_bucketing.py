import itertools

import numpy as np
import pytest

from service.engine.bucketing import DEFAULT_COST, RunCost, calibrate, length_groups


def covers(bounds: list[tuple[int, int]], n: int) -> bool:
    return bounds[0][0] == 0 and bounds[-1][1] == n and all(a[1] == b[0] for a, b in itertools.pairwise(bounds))


def test_uniform_lengths_stay_one_run() -> None:
    assert length_groups([16] * 64, DEFAULT_COST) == [(0, 64)]


def test_mixed_tweet_lengths_are_split_and_every_row_is_kept() -> None:
    lengths = sorted(np.random.default_rng(0).integers(3, 33, size=64).tolist())
    bounds = length_groups(lengths, DEFAULT_COST)
    assert 1 < len(bounds) <= 16
    assert covers(bounds, 64)
    one_run = DEFAULT_COST(64, lengths[-1])
    assert sum(DEFAULT_COST(e - s, lengths[e - 1]) for s, e in bounds) < one_run


def test_a_costly_run_overhead_keeps_batches_whole() -> None:
    expensive_runs = RunCost(per_run=1.0, per_step=0.0, per_row_step=1e-6)
    assert length_groups(list(range(1, 65)), expensive_runs) == [(0, 64)]


def test_empty_texts_count_as_one_step() -> None:
    assert covers(length_groups([0, 0, 0, 5], DEFAULT_COST), 4)


def test_calibration_recovers_a_known_cost() -> None:
    truth = RunCost(per_run=2e-3, per_step=4e-4, per_row_step=1e-4)

    def fake_model(ids: np.ndarray) -> None:
        import time

        time.sleep(truth(*ids.shape))

    got = calibrate(fake_model, repeats=2)
    assert got.per_row_step == pytest.approx(truth.per_row_step, rel=0.3)
    assert got.per_run == pytest.approx(truth.per_run, rel=0.5, abs=1e-3)
