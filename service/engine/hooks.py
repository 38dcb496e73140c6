"""What the batcher tells the rest of the service about its batches: metrics (always) and
tracing (when on). Every method is called on the event loop."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class BatchObserver(Protocol):
    """Metrics, once per batch. (The queue depth is read from the batcher's
    ``queued_items`` when wanted, not pushed per request.)"""

    def batch_started(self, size: int, queue_waits: Sequence[float]) -> None: ...

    def batch_finished(self, size: int, seconds: float, ok: bool) -> None: ...


class BatchTracer(Protocol):
    """Tracing: ``capture`` is called as a request queues its texts (in its own task, so it
    sees the request's span), ``batch`` once per model run with each request's capture, when
    it was queued (monotonic seconds) and its number of texts."""

    def capture(self) -> Any: ...

    def batch(self, jobs: Sequence[tuple[Any, float, int]], started: float, ended: float, ok: bool) -> None: ...


class NullObserver:
    def batch_started(self, size: int, queue_waits: Sequence[float]) -> None: ...

    def batch_finished(self, size: int, seconds: float, ok: bool) -> None: ...
