"""Request clocks: deadlines and vanished clients, with one shared timer for young requests."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from service.asgi.deadlines import WATCH_AFTER_S, Deadlines
from service.asgi.errors import ClientClosedRequest, GatewayTimeout, RequestTimeout
from service.observability.metrics import Metrics


def silent_channel() -> Any:
    """An ASGI receive on which nothing more arrives (the body has been read)."""

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    return receive


def hang_up_after(seconds: float) -> Any:
    async def receive() -> dict[str, Any]:
        await asyncio.sleep(seconds)
        return {"type": "http.disconnect"}

    return receive


def timeouts_counted(metrics: Metrics) -> float:
    return metrics.rejected.labels("timeout")._value.get()


@pytest.mark.parametrize("timeout", [0.03, 0.3])  # below WATCH_AFTER_S: its own timer; above: shared
def test_a_request_past_its_deadline_gets_504(timeout: float) -> None:
    metrics = Metrics()
    deadlines = Deadlines(timeout, metrics)

    async def request() -> None:
        async with deadlines.clock(silent_channel()) as clock:
            clock.body_read()
            await asyncio.sleep(5)

    started = time.monotonic()
    with pytest.raises(GatewayTimeout):
        asyncio.run(request())
    assert time.monotonic() - started < 4  # cut short, not slept out
    assert timeouts_counted(metrics) == 1
    assert len(deadlines) == 0


def test_a_body_that_never_arrives_gets_408() -> None:
    deadlines = Deadlines(0.3, Metrics())

    async def request() -> None:
        async with deadlines.clock(silent_channel()):
            await asyncio.sleep(5)  # still "reading the body"

    with pytest.raises(RequestTimeout):
        asyncio.run(request())


def test_a_client_that_hangs_up_is_noticed() -> None:
    metrics = Metrics()
    deadlines = Deadlines(10, metrics)

    async def request() -> None:
        async with deadlines.clock(hang_up_after(WATCH_AFTER_S * 2)) as clock:
            clock.body_read()
            await asyncio.sleep(5)

    started = time.monotonic()
    with pytest.raises(ClientClosedRequest):
        asyncio.run(request())
    assert time.monotonic() - started < 4
    assert timeouts_counted(metrics) == 0  # a 499 is not a timeout


def test_quick_requests_leave_nothing_behind() -> None:
    """Answered within WATCH_AFTER_S: no watcher task, no timer of their own, and the shared
    timer stops once no request is left."""
    deadlines = Deadlines(10, Metrics())
    clocks = []

    async def request() -> None:
        async with deadlines.clock(silent_channel()) as clock:
            clock.body_read()
            clocks.append(clock)
            await asyncio.sleep(0)

    async def many() -> None:
        await asyncio.gather(*(request() for _ in range(50)))
        assert len(deadlines) == 0
        await asyncio.sleep(WATCH_AFTER_S * 2)  # the shared timer fires once and finds nothing
        assert deadlines._timer is None

    asyncio.run(many())
    assert all(clock._watcher is None and clock._timer is None for clock in clocks)


def test_a_slow_request_is_answered_when_its_answer_comes() -> None:
    """Past WATCH_AFTER_S but within the deadline: watched, then answered normally."""
    deadlines = Deadlines(10, Metrics())

    async def request() -> str:
        async with deadlines.clock(silent_channel()) as clock:
            clock.body_read()
            await asyncio.sleep(WATCH_AFTER_S * 3)
        watcher = clock._watcher
        assert watcher is not None  # it was watched
        await asyncio.sleep(0)
        assert watcher.cancelled()  # and the watcher ended with the request
        return "answer"

    assert asyncio.run(request()) == "answer"


def test_the_clocks_work_on_a_new_event_loop() -> None:
    """An app restarted on a new loop (tests do this) drops the old loop's clocks."""
    deadlines = Deadlines(0.3, Metrics())

    async def request() -> None:
        async with deadlines.clock(silent_channel()) as clock:
            clock.body_read()
            await asyncio.sleep(5)

    for _ in range(2):
        with pytest.raises(GatewayTimeout):
            asyncio.run(request())
