"""Counters and histograms updated on the event loop without locks.

Replaces: prometheus-client's children (a lock per update) for the 4 series a request touches.
Gain: 27,000 instructions per request, 7% of its CPU in-process (``bench/instructions.py``).
Off: ``LOOP_METRICS = False`` in ``service/observability/metrics.py``: the library's own children.

The four series are requests, request latency, queue wait and predictions by label. The
families are prometheus-client custom collectors: the registry and the exposition stay the
library's, and the page is the same (a test compares it with the library's own). With several
worker processes (prometheus-client's multiprocess mode, whose values are files shared by the
workers) a family is not exposed itself: ``flush_into`` adds what its series gained since the
last flush to the library's family of the same name, about once a second and on each scrape
and stop (``Metrics``). There the library's mmap'd values cost 43,700 instructions per request
(344,524 against 300,787, ``bench/instructions.py``; 299,616 flushed); two workers' texts/s at
64 clients x 1 text, over the hand-written supervisor's, went from 0.88 to 0.95 (medians of
alternating pairs, docs/performance.md).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString


class LoopCounter:
    """One series of a counter; no lock: updated and read on the event loop only."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("counters only go up")
        self.value += amount


class LoopHistogram:
    """One series of a histogram; no lock: updated and read on the event loop only."""

    __slots__ = ("_bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self._bounds = list(bounds)
        self.counts = [0] * (len(self._bounds) + 1)  # the last is +Inf's own
        self.sum = 0.0

    def observe(self, amount: float) -> None:
        self.counts[bisect_left(self._bounds, amount)] += 1  # the first bound >= amount: "le"
        self.sum += amount


class LoopFamily(Collector):
    """A counter or histogram, by label values, exposed through prometheus-client's registry."""

    def __init__(
        self,
        kind: str,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        buckets: Sequence[float] = (),
        *,
        registry: CollectorRegistry | None,
    ) -> None:
        if kind not in ("counter", "histogram"):
            raise ValueError(kind)
        self.kind = kind
        self.name = name
        self.documentation = documentation
        self.labelnames = list(labelnames)
        self.buckets = sorted(b for b in buckets if b != float("inf"))  # +Inf is always added
        self._children: dict[tuple[str, ...], LoopCounter | LoopHistogram] = {}
        self._flushed: dict[tuple[str, ...], list[float]] = {}  # per series: [sum or value, *counts]
        if registry is not None:
            registry.register(self)

    def labels(self, *values: str) -> Any:
        """The series for these label values (made on first use, then kept)."""
        child = self._children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name} takes labels {self.labelnames}")
            child = LoopCounter() if self.kind == "counter" else LoopHistogram(self.buckets)
            self._children[values] = child
        return child

    def remove(self, *values: str) -> None:
        """Drop a series (a model version that is no longer loaded)."""
        self._children.pop(values, None)
        self._flushed.pop(values, None)

    def flush_into(self, family: Any) -> None:
        """Add what every series gained since the last call to ``family``, prometheus-client's
        counter or histogram with the same labels and buckets (on the event loop only)."""
        for values, child in self._children.items():
            if isinstance(child, LoopCounter):
                sent = self._flushed.setdefault(values, [0.0])
                if child.value != sent[0]:
                    family.labels(*values).inc(child.value - sent[0])
                    sent[0] = child.value
                continue
            sent = self._flushed.setdefault(values, [0.0] * (1 + len(child.counts)))
            if child.sum == sent[0] and sum(child.counts) == sum(sent[1:]):
                continue
            target = family.labels(*values)
            # The histogram's own values (not public API): a sum, and one count per bucket, +Inf last.
            target._sum.inc(child.sum - sent[0])
            sent[0] = child.sum
            for i, count in enumerate(child.counts):
                if count != sent[i + 1]:
                    target._buckets[i].inc(count - sent[i + 1])
                    sent[i + 1] = count

    def collect(self) -> Iterator[Metric]:
        family: CounterMetricFamily | HistogramMetricFamily
        if self.kind == "counter":
            family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
            for values, counter in self._children.items():
                assert isinstance(counter, LoopCounter)
                family.add_metric(list(values), counter.value)
        else:
            family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
            for values, histogram in self._children.items():
                assert isinstance(histogram, LoopHistogram)
                cumulative, total = [], 0
                for bound, count in zip([*map(floatToGoString, self.buckets), "+Inf"], histogram.counts, strict=True):
                    total += count
                    cumulative.append((bound, float(total)))
                family.add_metric(list(values), cumulative, histogram.sum)
        yield family
