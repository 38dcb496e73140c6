"""settle_heap: start-up garbage is collected, the rest frozen, and new cycles still freed."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from service.process.server import GC_YOUNG_THRESHOLD, settle_heap


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> weakref.ref[Node]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


@pytest.fixture
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_settle_heap_collects_then_freezes_and_raises_the_young_threshold(restore_gc: None) -> None:
    kept = Node()
    startup_garbage = cycle()
    settle_heap()
    assert startup_garbage() is None  # collected before the freeze, not frozen forever
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD
    assert kept.other is None  # live objects are untouched

    later_garbage = cycle()  # made while serving: the collector still frees it
    gc.collect()
    assert later_garbage() is None
