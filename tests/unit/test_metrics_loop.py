"""``LoopFamily`` series read on /metrics exactly as prometheus-client's own would."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from service.observability.loop_metrics import LoopFamily
from service.observability.metrics import LATENCY_BUCKETS

# Values on the bounds themselves, between them, below the first and above the last.
AMOUNTS = [0.0, 0.0005, 0.0007, 0.001, 0.0025, 0.01, 0.0101, 1.0, 9.99, 10.0, 10.5, 1e6]


def test_a_histogram_reads_as_prometheus_clients() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    mine = LoopFamily("histogram", "t_seconds", "help text", ["route"], LATENCY_BUCKETS, registry=ours)
    reference = Histogram("t_seconds", "help text", ["route"], buckets=LATENCY_BUCKETS, registry=theirs)
    rng = random.Random(7)
    for amount in AMOUNTS + [rng.expovariate(20) for _ in range(500)]:
        route = rng.choice(["/predict", "/v2/models/{model_name}/infer"])
        mine.labels(route).observe(amount)
        reference.labels(route).observe(amount)
    assert generate_latest(ours) == generate_latest(theirs)


def test_an_unlabelled_histogram_reads_as_prometheus_clients() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    mine = LoopFamily("histogram", "w_seconds", "waits", buckets=LATENCY_BUCKETS, registry=ours).labels()
    reference = Histogram("w_seconds", "waits", buckets=LATENCY_BUCKETS, registry=theirs)
    for amount in AMOUNTS:
        mine.observe(amount)
        reference.observe(amount)
    assert generate_latest(ours) == generate_latest(theirs)


def test_a_counter_reads_as_prometheus_clients() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    mine = LoopFamily("counter", "t_requests", "help", ["route", "method", "status"], registry=ours)
    reference = Counter("t_requests", "help", ["route", "method", "status"], registry=theirs)
    assert generate_latest(ours) == generate_latest(theirs)  # no series yet: the header only
    for key, amount in [(("/predict", "POST", "200"), 1), (("/predict", "POST", "422"), 2.5), (("/predict", "POST", "200"), 1)]:
        mine.labels(*key).inc(amount)
        reference.labels(*key).inc(amount)
    assert generate_latest(ours) == generate_latest(theirs)


def test_integer_and_tiny_bounds_read_as_prometheus_clients() -> None:
    bounds = (1e-5, 1, 2, 64, 1e22, float("inf"))
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    mine = LoopFamily("histogram", "b", "sizes", buckets=bounds, registry=ours).labels()
    reference = Histogram("b", "sizes", buckets=bounds, registry=theirs)
    for amount in (0, 1e-5, 1, 3, 64, 65, 1e30):
        mine.observe(amount)
        reference.observe(amount)
    assert generate_latest(ours) == generate_latest(theirs)


def test_counters_only_go_up_and_labels_must_fit() -> None:
    family = LoopFamily("counter", "c", "help", ["label"], registry=CollectorRegistry())
    with pytest.raises(ValueError):
        family.labels("a").inc(-1)
    with pytest.raises(ValueError):
        family.labels("a", "b")


@pytest.mark.parametrize("kind", ["counter", "histogram"])
def test_flushes_add_to_the_librarys_family_exactly_what_was_observed(kind: str) -> None:
    """With several workers the loop families are flushed into prometheus-client's own (whose
    values are then the multiprocess files): after any number of flushes, with or without
    news in between, the library's family reads as if it had seen every update itself."""
    flushed, direct = CollectorRegistry(), CollectorRegistry()
    make = (lambda r: Counter("f", "h", ["route"], registry=r)) if kind == "counter" else (
        lambda r: Histogram("f_seconds", "h", ["route"], buckets=LATENCY_BUCKETS, registry=r))
    sink, reference = make(flushed), make(direct)
    mine = LoopFamily(kind, "f", "h", ["route"], LATENCY_BUCKETS, registry=None)
    rng = random.Random(11)
    for step in range(600):
        route, amount = rng.choice(["/a", "/b", "/c"]), rng.choice([*AMOUNTS, rng.expovariate(20)])
        if kind == "counter":
            mine.labels(route).inc(amount)
            reference.labels(route).inc(amount)
        else:
            mine.labels(route).observe(amount)
            reference.labels(route).observe(amount)
        if step % rng.choice([1, 7, 50]) == 0:
            mine.flush_into(sink)
            mine.flush_into(sink)  # nothing new: adds nothing
    mine.flush_into(sink)
    assert generate_latest(flushed) == generate_latest(direct)
    (mine.labels("/d").inc if kind == "counter" else mine.labels("/d").observe)(0.3)
    assert generate_latest(flushed) == generate_latest(direct)  # not flushed yet: not seen
    mine.flush_into(sink)
    assert '"/d"' in generate_latest(flushed).decode()
