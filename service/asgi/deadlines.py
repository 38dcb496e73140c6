"""A request's deadline, and noticing a client that hung up, for almost no CPU per request.

Replaces: ``asyncio.timeout`` for the body and for the answer, and a disconnect-watcher task.
Gain: the watcher alone cost ~33 us per request, a timer made and cancelled ~4 us on uvloop.
Off: ``WATCH_AFTER_S = 0`` (every request gets its own timer and watcher at once).

An ``asyncio.timeout`` for the body, another for the answer and a disconnect watcher cost
three timers (and a task) per request, more CPU than parsing its JSON; even one timer per
request (made and cancelled) costs ~4 us on uvloop. So a request's clock starts with no
timer at all: it joins its app's ``Deadlines``, whose one shared timer looks at the oldest
requests only. A request answered within ``WATCH_AFTER_S`` (the usual case) costs a dict
insert and a delete. A request still running then leaves the shared timer and gets its own:
a watcher starts reading the ASGI channel for ``http.disconnect`` (once the body has been
read, nothing else can arrive), and its timer is set for the deadline. When the client hangs
up or the deadline passes, the request's task is cancelled, and on the way out of the
``async with`` block that cancellation becomes the error the client should see (or would
have seen):

* the deadline passed before the whole body arrived: 408 (and the connection is closed);
* the deadline passed while the texts waited or ran: 504;
* the client hung up: 499, for the logs and metrics only.

The batcher withdraws the texts of a cancelled request at once; cancellations that are
not the clock's (server shutdown) pass through untouched.
"""

from __future__ import annotations

import asyncio
import time
from types import TracebackType

from starlette.types import Receive

from service.asgi.errors import ClientClosedRequest, GatewayTimeout, RequestTimeout, ServiceError
from service.observability.metrics import Metrics

WATCH_AFTER_S = 0.05
# The shared timer fires no more often than this, however the requests' start times fall.
SWEEP_GRANULARITY_S = 0.005
_TIMEOUT = "timeout"
_CLIENT_GONE = "client gone"


class Deadlines:
    """One app's request clocks, and the one timer that looks after the young ones."""

    def __init__(self, timeout: float, metrics: Metrics) -> None:
        self.timeout = timeout
        self.metrics = metrics
        self._young: dict[RequestClock, None] = {}  # in start order: the oldest first
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None

    def clock(self, receive: Receive) -> RequestClock:
        return RequestClock(receive, self)

    def __len__(self) -> int:
        """Requests looked after by the shared timer (not yet ``WATCH_AFTER_S`` old)."""
        return len(self._young)

    def _add(self, clock: RequestClock, loop: asyncio.AbstractEventLoop) -> None:
        if loop is not self._loop:  # a new event loop (the app restarted): start afresh
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._young.clear()
            self._loop = loop
        self._young[clock] = None
        if self._timer is None:
            self._timer = loop.call_later(WATCH_AFTER_S, self._sweep)

    def _discard(self, clock: RequestClock) -> None:
        self._young.pop(clock, None)

    def _sweep(self) -> None:
        self._timer = None
        young = self._young
        now = time.monotonic()
        while young:
            clock = next(iter(young))
            wait = clock.started + WATCH_AFTER_S - now
            if wait > 0:
                assert self._loop is not None
                self._timer = self._loop.call_later(max(wait, SWEEP_GRANULARITY_S), self._sweep)
                return
            del young[clock]
            clock.tick()


class RequestClock:
    __slots__ = ("_body_read", "_deadlines", "_reason", "_receive", "_task", "_timer", "_watcher", "started")

    def __init__(self, receive: Receive, deadlines: Deadlines) -> None:
        self._receive = receive
        self._deadlines = deadlines
        self._reason: str | None = None
        self._body_read = False
        self._watcher: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    async def __aenter__(self) -> RequestClock:
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self.started = time.monotonic()
        if self._deadlines.timeout <= WATCH_AFTER_S:  # too short for the shared timer
            self._timer = task.get_loop().call_later(self._deadlines.timeout, self.tick)
        else:
            self._deadlines._add(self, task.get_loop())
        return self

    def body_read(self) -> None:
        """The body is in: from now on only a disconnect can arrive on the channel."""
        self._body_read = True

    def tick(self) -> None:
        """The request has run ``WATCH_AFTER_S`` (or its deadline has come): watch it."""
        deadline = self.started + self._deadlines.timeout
        remaining = deadline - time.monotonic()
        if remaining <= 0.001:  # loops may run a timer a hair early
            self._stop(_TIMEOUT)
            return
        loop = self._task.get_loop()
        if self._body_read and self._watcher is None:
            self._watcher = loop.create_task(self._watch())
        self._timer = loop.call_later(remaining, self.tick)

    async def _watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        self._stop(_CLIENT_GONE)

    def _stop(self, reason: str) -> None:
        if self._reason is None and not self._task.done():
            self._reason = reason
            self._task.cancel()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._timer is None:
            self._deadlines._discard(self)
        else:
            self._timer.cancel()
        if self._watcher is not None:
            self._watcher.cancel()
        if exc_type is asyncio.CancelledError and self._reason is not None:
            self._task.uncancel()
            raise self._error() from None

    def _error(self) -> ServiceError:
        if self._reason == _CLIENT_GONE:
            return ClientClosedRequest("the client closed the connection before its answer")
        timeout = self._deadlines.timeout
        if not self._body_read:
            return RequestTimeout(f"the request body did not arrive within {timeout:g} s")
        self._deadlines.metrics.rejected.labels("timeout").inc()
        return GatewayTimeout(f"no answer within the request timeout ({timeout:g} s)")
