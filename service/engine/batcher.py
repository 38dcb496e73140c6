"""The dynamic micro-batcher: texts from concurrent requests share one model run.

Standard library only. A request's items become one or more *jobs* (split at the batch
size) in a bounded queue; one worker task takes jobs off the queue into batches and runs
each batch in a worker thread, then hands every job its slice of the results.

When a batch closes:

* at once on an idle server (no request arrived while the previous batch ran, and that
  batch was not itself held): a lone request never waits for company;
* under load (requests arrived while the previous batch ran, or it was held and more than
  one request was waiting on the model when it finished), when it is full, or holds as
  many requests as were waiting on the model when it became free (those its last run
  answered, whose clients may send again, plus those queued), or its hold has passed since
  the model became free (monotonic clock): the longest of its requests' holds, each
  ``max_delay`` unless given (``submit(hold=)``: gRPC's clients take longer to come back).
  So no text waits more than its batch's hold beyond the moment the model could have taken
  it, and clients that send their next request as soon as they get an answer (a closed
  loop) share one run instead of splitting into two halves that take turns.

A full queue fails fast (:class:`QueueFullError`); a job whose waiter has gone (timeout,
cancelled, client gone) is dropped before it reaches the model; a failing batch fails
only its own jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from service.engine.hooks import BatchObserver, BatchTracer, NullObserver

Item = TypeVar("Item")

# run_batch(items) -> one result row per item, in order, sliceable (a list, a numpy array...).
BatchFn = Callable[[list[Any]], Any]


class BatcherError(Exception):
    """Base of the batcher's refusals."""


class QueueFullError(BatcherError):
    """The queue holds ``max_queue_size`` items already."""


class BatcherClosedError(BatcherError):
    """The batcher is draining or stopped and takes no new work."""


@dataclass(eq=False)
class _Job(Generic[Item]):
    items: list[Item]
    future: asyncio.Future[Sequence[Any]]
    hold: float  # under load, how long a batch holding this job waits for company (s)
    enqueued_at: float = field(default_factory=time.monotonic)
    queued: bool = True  # still counted in the queue's size
    trace: Any = None  # the caller's span, when tracing is on


class MicroBatcher:
    def __init__(
        self,
        run_batch: BatchFn,
        *,
        max_batch_size: int,
        max_delay: float,
        max_queue_size: int,
        observer: BatchObserver | None = None,
    ) -> None:
        if max_batch_size < 1 or max_queue_size < 1 or max_delay < 0:
            raise ValueError("max_batch_size and max_queue_size must be >= 1, max_delay >= 0")
        self._run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_delay = max_delay
        self.max_queue_size = max_queue_size
        self.observer: BatchObserver = observer or NullObserver()
        self.tracer: BatchTracer | None = None
        self._queue: deque[_Job[Any]] = deque()
        self._queued_items = 0
        self._wakeup: asyncio.Event | None = None
        self._arrivals = 0  # jobs enqueued since the current batch started
        self._wake_at = 1  # queued texts at which submit() wakes the worker
        self._wake_jobs = 1  # ... or queued jobs
        self._wake_hold = 0.0  # ... or a job holding longer than the batch being held
        self._busy = False
        self._held: list[_Job[Any]] = []  # the batch being collected (held for company)
        self._closed = False
        self._worker: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def queued_items(self) -> int:
        return self._queued_items

    @property
    def idle(self) -> bool:
        """Nothing queued, held or running."""
        return not self._queue and not self._held and not self._busy

    def start(self) -> None:
        if self._worker is not None:
            raise RuntimeError("batcher already started")
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self._worker = asyncio.get_running_loop().create_task(self._work(), name="micro-batcher")

    def check_room(self, n_items: int) -> None:
        """Raise what ``submit`` would for ``n_items`` right now, before any work is spent
        on them: under overload, refusing must be cheaper than serving."""
        if self._closed or self._wakeup is None:
            raise BatcherClosedError("the batcher is not accepting work")
        if self._queued_items + n_items > self.max_queue_size:
            raise QueueFullError(f"queue holds {self._queued_items} of {self.max_queue_size} items")

    async def submit(self, items: Sequence[Item], hold: float | None = None) -> Sequence[Any]:
        """Results for ``items``, in order: the model's own slice when one run answered them
        all, else a list of rows; ``hold`` (s) replaces ``max_delay`` for their batches. Raises
        QueueFullError / BatcherClosedError at once, or the batch's own exception if the model
        failed. Cancelling the caller (e.g. a timeout) withdraws its unstarted jobs."""
        if not items:
            return []
        self.check_room(len(items))
        wakeup = self._wakeup
        assert wakeup is not None  # check_room refuses a batcher that was never started
        loop = asyncio.get_running_loop()
        trace = self.tracer.capture() if self.tracer is not None else None
        hold = self.max_delay if hold is None else hold
        jobs = [
            _Job(list(items[i : i + self.max_batch_size]), loop.create_future(), hold, trace=trace)
            for i in range(0, len(items), self.max_batch_size)
        ]
        self._queue.extend(jobs)
        self._queued_items += len(items)
        self._arrivals += len(jobs)
        if self._queued_items >= self._wake_at or len(self._queue) >= self._wake_jobs or hold > self._wake_hold:
            wakeup.set()
        try:
            if len(jobs) == 1:
                return await jobs[0].future
            parts = await asyncio.gather(*(job.future for job in jobs))
        except BaseException:
            for job in jobs:
                self._withdraw(job)  # the worker skips it; its slots are free now
                if job.future.done() and not job.future.cancelled():
                    job.future.exception()  # a sibling's failure is already being raised
            raise
        return [row for part in parts for row in part]

    async def drain(self) -> None:
        """Refuse new work, then wait until everything accepted has been answered."""
        self._closed = True
        if self._wakeup is not None:
            self._wakeup.set()  # a batch held for company goes now: no one else may join
        while not self.idle:
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        """Drain, then end the worker and its thread."""
        await self.drain()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    def _withdraw(self, job: _Job[Any]) -> None:
        """Free a job's queue slots (at most once) and, if unanswered, cancel it."""
        if job.queued:
            job.queued = False
            self._queued_items -= len(job.items)
        job.future.cancel()

    def _take_ready(self, batch: list[_Job[Any]], size: int) -> int:
        """Move queued jobs into ``batch`` while they fit; drop withdrawn ones."""
        queue = self._queue
        while queue:
            job = queue[0]
            if not job.queued:  # withdrawn by its caller
                queue.popleft()
                continue
            if size + len(job.items) > self.max_batch_size:
                break
            queue.popleft()
            job.queued = False
            self._queued_items -= len(job.items)
            batch.append(job)
            size += len(job.items)
        return size

    def _gathered(self, batch: list[_Job[Any]], size: int, expected: int) -> bool:
        """Nothing more to hold a batch for: everyone expected is in, it is full (a queue
        left after ``_take_ready`` means its head does not fit), or the batcher is draining."""
        return len(batch) >= expected or size >= self.max_batch_size or bool(self._queue) or self._closed

    async def _collect(self, under_load: bool, expected: int, free_at: float) -> list[_Job[Any]]:
        """The next batch. Under load it is held until it has ``expected`` jobs, is full, or
        the longest hold of its jobs has passed since ``free_at`` (the model became free)."""
        assert self._wakeup is not None
        wakeup = self._wakeup
        batch: list[_Job[Any]] = []
        self._held = batch
        size = 0
        while not batch:
            wakeup.clear()
            size = self._take_ready(batch, 0)
            if not batch:
                await wakeup.wait()
        if not under_load or self._gathered(batch, size, expected):
            return batch
        hold = max(job.hold for job in batch)
        if (remaining := free_at + hold - time.monotonic()) <= 0:
            return batch
        # One timer, whose firing ends the hold, not a look at the clock: loops may run a timer
        # a hair early, and a hold that outlived its timer could wait for arrivals that cannot
        # come. submit() wakes the worker once enough jobs or texts, or a longer hold, arrive.
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            wakeup.set()

        loop = asyncio.get_running_loop()
        timer = loop.call_later(remaining, expire)
        try:
            while not expired:
                self._wake_at = self.max_batch_size - size
                self._wake_jobs = expected - len(batch)
                self._wake_hold = hold
                wakeup.clear()
                await wakeup.wait()
                joined = len(batch)
                size = self._take_ready(batch, size)
                if self._gathered(batch, size, expected):
                    break
                if (longest := max((j.hold for j in batch[joined:]), default=0.0)) > hold and not expired:
                    hold = longest  # a job that waits longer for company joined
                    timer.cancel()
                    timer = loop.call_later(max(0.0, free_at + hold - time.monotonic()), expire)
        finally:
            timer.cancel()
            self._wake_at, self._wake_jobs, self._wake_hold = 1, 1, 0.0
        return batch

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        under_load, expected = False, 0
        free_at = time.monotonic()
        while True:
            batch = await self._collect(under_load, expected, free_at)
            self._arrivals, self._busy, self._held = 0, True, []
            try:
                await self._run(loop, batch)
            finally:
                self._busy = False
            free_at = time.monotonic()
            # The jobs just answered (their clients may send again) and those already waiting.
            expected = len(batch) + sum(job.queued for job in self._queue)
            # Requests that arrived while the model ran mean more are coming: worth waiting
            # for. A batch that was held and gathered everyone leaves no one to arrive while
            # it runs, yet its clients are still there: keep holding while there are several.
            under_load = self._arrivals > 0 or (under_load and expected > 1)

    async def _run(self, loop: asyncio.AbstractEventLoop, batch: list[_Job[Any]]) -> None:
        live = [job for job in batch if not job.future.done()]
        if not live:
            return
        items = [item for job in live for item in job.items]
        now = time.monotonic()
        self.observer.batch_started(len(items), [now - job.enqueued_at for job in live])
        started = time.perf_counter()
        ok = False
        try:
            results = await loop.run_in_executor(self._executor, self._run_batch, items)
            if len(results) != len(items):
                raise RuntimeError(f"model returned {len(results)} results for {len(items)} items")
            ok = True
        except Exception as exc:  # every waiter must hear about it
            for job in live:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        finally:
            self.observer.batch_finished(len(items), time.perf_counter() - started, ok=ok)
            if self.tracer is not None:
                self.tracer.batch([(j.trace, j.enqueued_at, len(j.items)) for j in live], now, time.monotonic(), ok)
        offset = 0
        for job in live:
            n = len(job.items)
            if not job.future.done():
                job.future.set_result(results[offset : offset + n])
            offset += n
