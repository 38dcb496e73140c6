"""One /metrics page for all worker processes (``TEXTSERVE_WORKERS`` > 1).

Each worker keeps its own registry (``metrics.py``), and the kernel hands a scrape to any
one of them. So every worker publishes its own page to a directory the workers share, once
a second and whenever it is scraped, and the worker that is scraped answers with the sum
of every worker's latest page: its own as of now, the others' at most ``PUBLISH_EVERY_S``
old.

* Counters and histograms are summed over every worker that ever served, including those
  that have exited (the supervisor marks their page retired): a restart never makes a
  counter go down.
* Gauges come from the live workers only: texts queued and requests in flight are summed,
  ``textserve_ready`` is the lowest (1 only when every worker is ready), and
  ``textserve_model_info`` the highest (every worker serves the same model).

Written here rather than with prometheus-client's multiprocess mode: that mode keeps every
value in a memory-mapped file updated under a lock on each change, the per-request cost
``LoopFamily`` exists to avoid, and it does not take gauges read at scrape time. Pages are
read back with prometheus-client's own parser and written with its own exposition.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

log = logging.getLogger("textserve")

PUBLISH_EVERY_S = 1.0
LIVE = ".prom"
RETIRED = ".retired"
_LOWEST = frozenset({"textserve_ready"})
_HIGHEST = frozenset({"textserve_model_info"})


def page_path(directory: Path, worker: int) -> Path:
    return directory / f"{worker}{LIVE}"


def retire(directory: Path, worker: int) -> None:
    """Called by the supervisor once ``worker`` has exited: its counts stay in the sum, its
    gauges leave it."""
    with contextlib.suppress(FileNotFoundError):
        page_path(directory, worker).rename(directory / f"{worker}{RETIRED}")


def merge(pages: Iterable[tuple[str, bool]]) -> bytes:
    """Prometheus text for the sum of ``(page text, worker alive)`` pages (rules above)."""
    families: dict[str, Metric] = {}
    # family -> (sample name, label set) -> [labels as first seen, value]
    values: dict[str, dict[tuple[str, frozenset[tuple[str, str]]], list[Any]]] = {}
    for text, alive in pages:
        for family in text_string_to_metric_families(text):
            gauge = family.type in ("gauge", "unknown")
            if gauge and not alive:
                continue
            if family.name not in families:
                families[family.name] = Metric(family.name, family.documentation, family.type)
                values[family.name] = {}
            merged = values[family.name]
            for sample in family.samples:
                key = (sample.name, frozenset(sample.labels.items()))
                entry = merged.get(key)
                if entry is None:
                    merged[key] = [sample.labels, sample.value]
                elif family.name in _LOWEST:
                    entry[1] = min(entry[1], sample.value)
                elif family.name in _HIGHEST:
                    entry[1] = max(entry[1], sample.value)
                else:
                    entry[1] += sample.value
    for name, family in families.items():
        for (sample_name, _), (labels, value) in values[name].items():
            family.add_sample(sample_name, labels, value)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(list(families.values())))
    return generate_latest(registry)


class _Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


class SharedPages:
    """A worker's side: publish its own page, and render everyone's."""

    def __init__(self, directory: Path, worker: int, render_own: Callable[[], bytes]) -> None:
        self.directory = directory
        self.worker = worker
        self._render_own = render_own
        self._path = page_path(directory, worker)

    def publish(self) -> bytes:
        """Write this worker's page (atomically: readers see the old page or the new one)."""
        page = self._render_own()
        partial = self._path.with_suffix(".partial")
        partial.write_bytes(page)
        os.replace(partial, self._path)
        return page

    def render(self) -> bytes:
        own = self.publish()
        pages = [(own.decode(), True)]
        for path in sorted(self.directory.iterdir()):
            if path == self._path or path.suffix not in (LIVE, RETIRED):
                continue
            with contextlib.suppress(FileNotFoundError):  # retired (renamed) while listed
                pages.append((path.read_text(), path.suffix == LIVE))
        return merge(pages)


async def publish_every(pages: SharedPages, seconds: float = PUBLISH_EVERY_S) -> None:
    """Publish now (the supervisor reads a page as "this worker got ready"), then every
    ``seconds``. A failed write is logged and retried next time: never fatal to serving."""
    while True:
        try:
            pages.publish()
        except OSError as exc:
            log.warning("could not publish this worker's metrics", extra={"error": str(exc)})
        await asyncio.sleep(seconds)
