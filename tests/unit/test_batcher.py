"""MicroBatcher with a fake model: no HTTP, no onnxruntime."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from types import SimpleNamespace

import pytest

import service.engine.batcher as batcher_module
from service.engine.batcher import BatcherClosedError, MicroBatcher, QueueFullError


class FakeModel:
    """Doubles each item; records batch sizes; can be slowed, gated or made to fail."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.batches: list[list[int]] = []
        self.gate: threading.Event | None = None
        self.fail_when: int | None = None  # raise if this item is in the batch

    def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        if self.gate is not None:
            self.gate.wait(5)
        if self.delay:
            time.sleep(self.delay)
        if self.fail_when is not None and self.fail_when in items:
            raise ValueError("model exploded")
        return [2 * x for x in items]


class Recorder:
    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.waits: list[float] = []
        self.failures = 0

    def batch_started(self, size: int, queue_waits: Sequence[float]) -> None:
        self.sizes.append(size)
        self.waits.extend(queue_waits)

    def batch_finished(self, size: int, seconds: float, ok: bool) -> None:
        self.failures += not ok


def make(model: FakeModel, **kw: object) -> MicroBatcher:
    opts: dict[str, object] = {"max_batch_size": 8, "max_delay": 0.01, "max_queue_size": 100}
    opts.update(kw)
    return MicroBatcher(model, **opts)  # type: ignore[arg-type]


async def run_with(batcher: MicroBatcher, coro):  # type: ignore[no-untyped-def]
    batcher.start()
    try:
        return await coro
    finally:
        await batcher.stop()


async def hold_model(model: FakeModel, batcher: MicroBatcher) -> asyncio.Task[list[int]]:
    """Occupy the model with one request that blocks until model.gate is set."""
    model.gate = threading.Event()
    first = asyncio.create_task(batcher.submit([100]))
    for _ in range(200):
        if model.batches:
            break
        await asyncio.sleep(0.001)
    assert model.batches == [[100]]
    return first


async def _held_under_load(model: FakeModel, batcher: MicroBatcher, items: list[int]) -> list[asyncio.Task[list[int]]]:
    """Hold the model with [100] while ``items`` arrive one per request (so the server is
    under load), then let it go: the batcher now expects len(items) + 1 requests."""
    first = await hold_model(model, batcher)
    tasks = [asyncio.create_task(batcher.submit([i])) for i in items]
    await asyncio.sleep(0.005)
    assert model.gate is not None
    model.gate.set()
    assert await first == [200]
    return tasks


async def test_results_come_back_in_order() -> None:
    model = FakeModel()
    batcher = make(model)
    assert await run_with(batcher, batcher.submit([1, 2, 3])) == [2, 4, 6]


async def test_concurrent_requests_share_one_batch() -> None:
    model = FakeModel()
    batcher = make(model)
    batcher.start()
    rest = await _held_under_load(model, batcher, list(range(5)))
    assert [await t for t in rest] == [[0], [2], [4], [6], [8]]
    await batcher.stop()
    assert model.batches == [[100], [0, 1, 2, 3, 4]]


async def test_batches_never_exceed_the_max_size() -> None:
    model = FakeModel()
    batcher = make(model, max_batch_size=4)
    batcher.start()
    first = await hold_model(model, batcher)
    rest = [asyncio.create_task(batcher.submit([i, i])) for i in range(5)]
    await asyncio.sleep(0.01)
    assert model.gate is not None
    model.gate.set()
    await first
    assert [await t for t in rest] == [[2 * i, 2 * i] for i in range(5)]
    await batcher.stop()
    assert max(len(b) for b in model.batches) <= 4
    assert sum(len(b) for b in model.batches[1:]) == 10


async def test_a_large_request_is_split_and_reassembled_in_order() -> None:
    model = FakeModel()
    batcher = make(model, max_batch_size=4)
    items = list(range(11))
    assert await run_with(batcher, batcher.submit(items)) == [2 * x for x in items]
    assert [len(b) for b in model.batches] == [4, 4, 3]


async def test_a_request_at_an_idle_server_runs_without_waiting() -> None:
    model = FakeModel()
    batcher = make(model, max_delay=0.5)  # a long delay that must not be spent
    batcher.start()
    started = time.monotonic()
    for i in range(5):
        assert await batcher.submit([i]) == [2 * i]
    elapsed = time.monotonic() - started
    await batcher.stop()
    assert elapsed < 0.5  # five sequential requests, none waited for company
    assert model.batches == [[0], [1], [2], [3], [4]]


async def test_under_load_a_batch_waits_for_company_up_to_max_delay() -> None:
    """Requests that arrive while the model runs mark the server busy: the next batch
    then waits (up to max_delay) for latecomers instead of running half-empty."""
    model = FakeModel()
    recorder = Recorder()
    batcher = make(model, max_delay=0.2, observer=recorder)
    batcher.start()
    (early,) = await _held_under_load(model, batcher, [1])  # [1] arrives while the model is busy
    await asyncio.sleep(0.02)  # the worker is now holding [1], waiting for company
    late = asyncio.create_task(batcher.submit([2]))
    assert await early == [2] and await late == [4]
    await batcher.stop()
    assert model.batches == [[100], [1, 2]]
    assert max(recorder.waits) < 0.2 + 0.1


async def test_a_held_batch_waits_no_more_than_max_delay_once_the_model_is_free() -> None:
    model = FakeModel()
    batcher = make(model, max_delay=0.05)
    batcher.start()
    first = await hold_model(model, batcher)
    queued_at = time.monotonic()
    waiting = asyncio.create_task(batcher.submit([1]))
    await asyncio.sleep(0.001)
    assert model.gate is not None
    model.gate.set()
    await first
    assert await waiting == [2]
    waited = time.monotonic() - queued_at
    await batcher.stop()
    assert 0.04 <= waited < 0.5


async def test_clients_that_come_back_share_one_run_as_soon_as_all_are_back() -> None:
    """A closed loop: each client sends its next request soon after its answer, one after
    another (as an event loop answers them). The clients end up sharing every run, and
    each run starts the moment the last of them is back, not when max_delay runs out."""
    model = FakeModel(delay=0.005)
    recorder = Recorder()
    batcher = make(model, max_batch_size=64, max_delay=0.5, observer=recorder)
    batcher.start()
    clients = 6
    running = True

    async def client(c: int) -> None:
        while running:
            assert await batcher.submit([c]) == [2 * c]
            await asyncio.sleep(0.001 * c)  # answered in turn: the clients come back spread out

    tasks = [asyncio.create_task(client(c)) for c in range(clients)]
    await asyncio.sleep(0.3)
    sizes = list(recorder.sizes)
    running = False
    await asyncio.gather(*tasks)  # the last run is held (for max_delay) for clients that left
    await batcher.stop()
    # Each cycle is a 5 ms run and ~5 ms for the last client to return: ~30 in 0.3 s. Were
    # the held runs waiting out max_delay (0.5 s), there would be at most two.
    assert len(sizes) >= 10
    assert sizes[3:] == [clients] * len(sizes[3:])  # after the first few, everyone in every run


async def test_a_held_batch_goes_max_delay_after_the_model_is_free_when_clients_do_not_return() -> None:
    model = FakeModel()
    recorder = Recorder()
    batcher = make(model, max_delay=0.05, observer=recorder)
    batcher.start()
    a, b = await _held_under_load(model, batcher, [1, 2])
    free_at = time.monotonic()
    assert await a == [2] and await b == [4]  # held for the third (the [100] client's) ...
    assert 0.04 <= time.monotonic() - free_at < 0.5  # ... until max_delay, then run
    # [1, 2] ran together: the next request is held for its companion up to max_delay too.
    started = time.monotonic()
    assert await batcher.submit([3]) == [6]
    assert 0.04 <= time.monotonic() - started < 0.5
    await batcher.stop()
    assert recorder.sizes == [1, 2, 1]


@pytest.mark.parametrize(("hold", "batches"), [(None, [[100], [1], [2]]), (0.3, [[100], [1, 2]])])
async def test_a_request_may_bring_its_own_hold(hold: float | None, batches: list[list[int]]) -> None:
    """With max_delay 0 a batch never waits for company; a request that brings a hold of its
    own (as gRPC calls do) keeps its batch open for the latecomer."""
    model = FakeModel()
    batcher = make(model, max_delay=0.0)
    batcher.start()
    first = await hold_model(model, batcher)
    early = asyncio.create_task(batcher.submit([1], hold=hold))  # arrives while the model is busy
    await asyncio.sleep(0.005)
    assert model.gate is not None
    model.gate.set()
    assert await first == [200]
    await asyncio.sleep(0.02)
    late = asyncio.create_task(batcher.submit([2]))
    assert await early == [2] and await late == [4]
    await batcher.stop()
    assert model.batches == batches


async def test_a_held_batch_waits_as_long_as_the_longest_hold_among_its_requests() -> None:
    """A batch held for max_delay (0.05 s) is joined by a request holding 0.5 s: it keeps
    waiting past 0.05 s for the rest of the clients the last run answered."""
    model = FakeModel()
    batcher = make(model, max_delay=0.05)
    batcher.start()
    model.gate = threading.Event()
    clients = [asyncio.create_task(batcher.submit([c])) for c in (100, 101, 102)]  # one run of three
    for _ in range(200):
        if model.batches:
            break
        await asyncio.sleep(0.001)
    first = asyncio.create_task(batcher.submit([1]))  # arrives while the model is busy
    await asyncio.sleep(0.005)
    model.gate.set()
    await asyncio.gather(*clients)  # the batcher now expects four requests
    await asyncio.sleep(0.01)
    longer = asyncio.create_task(batcher.submit([2], hold=0.5))
    await asyncio.sleep(0.1)  # past max_delay
    assert model.batches == [[100, 101, 102]]
    rest = [asyncio.create_task(batcher.submit([c])) for c in (3, 4)]
    assert await asyncio.gather(first, longer, *rest) == [[2], [4], [6], [8]]
    await batcher.stop()
    assert model.batches == [[100, 101, 102], [1, 2, 3, 4]]


async def test_a_hold_ends_when_its_timer_fires_whatever_the_clock_says(monkeypatch: pytest.MonkeyPatch) -> None:
    """An event loop may run a timer a hair before the clock reaches it. Here the batcher's
    clock runs at half speed, so when the hold's timer fires, the clock says it is early:
    the hold must end anyway, or it would wait for clients whose requests are all in it."""
    real = time.monotonic
    origin = real()
    half_speed = SimpleNamespace(monotonic=lambda: origin + (real() - origin) / 2, perf_counter=time.perf_counter)
    monkeypatch.setattr(batcher_module, "time", half_speed)
    model = FakeModel()
    batcher = make(model, max_delay=0.05)
    batcher.start()
    a, b = await _held_under_load(model, batcher, [1, 2])
    async with asyncio.timeout(2):
        assert await a == [2] and await b == [4]
    await batcher.stop()


async def test_stop_runs_a_held_batch_at_once_and_answers_it() -> None:
    model = FakeModel()
    batcher = make(model, max_delay=5.0)  # the batch would be held this long for its third
    batcher.start()
    a, b = await _held_under_load(model, batcher, [1, 2])
    await asyncio.sleep(0.01)
    assert not batcher.idle  # held, neither queued nor running, yet not idle
    started = time.monotonic()
    await batcher.stop()
    assert time.monotonic() - started < 1.0
    assert a.result() == [2] and b.result() == [4]


async def test_a_full_queue_refuses_at_once() -> None:
    model = FakeModel()
    batcher = make(model, max_queue_size=3)
    batcher.start()
    first = await hold_model(model, batcher)
    queued = asyncio.create_task(batcher.submit([1, 2, 3]))
    await asyncio.sleep(0)
    assert batcher.queued_items == 3
    started = time.monotonic()
    with pytest.raises(QueueFullError):
        await batcher.submit([4])
    assert time.monotonic() - started < 0.05
    assert model.gate is not None
    model.gate.set()
    await first
    assert await queued == [2, 4, 6]
    assert batcher.queued_items == 0
    await batcher.stop()


async def test_a_timed_out_request_frees_its_slots_and_is_never_run() -> None:
    model = FakeModel()
    batcher = make(model, max_queue_size=2)
    batcher.start()
    first = await hold_model(model, batcher)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.02):
            await batcher.submit([7, 8])
    assert batcher.queued_items == 0  # freed at once, not when the model gets to it
    ok = asyncio.create_task(batcher.submit([1, 2]))  # fits again
    assert model.gate is not None
    model.gate.set()
    await first
    assert await ok == [2, 4]
    await batcher.stop()
    assert [7, 8] not in model.batches and not any(7 in b for b in model.batches)


async def test_a_cancelled_waiter_does_not_break_its_batch() -> None:
    model = FakeModel()
    batcher = make(model)
    batcher.start()
    first = await hold_model(model, batcher)
    keep = asyncio.create_task(batcher.submit([1]))
    gone = asyncio.create_task(batcher.submit([2]))
    also = asyncio.create_task(batcher.submit([3]))
    await asyncio.sleep(0.005)
    gone.cancel()
    assert model.gate is not None
    model.gate.set()
    await first
    assert await keep == [2] and await also == [6]
    with pytest.raises(asyncio.CancelledError):
        await gone
    await batcher.stop()
    assert model.batches[1] == [1, 3]


async def test_a_waiter_cancelled_while_its_batch_runs_leaves_the_others_intact() -> None:
    model = FakeModel()
    batcher = make(model)
    batcher.start()
    model.gate = threading.Event()
    a = asyncio.create_task(batcher.submit([1]))
    await asyncio.sleep(0.005)
    b = asyncio.create_task(batcher.submit([2]))
    c = asyncio.create_task(batcher.submit([3]))
    model.gate.set()
    await a
    await asyncio.sleep(0)
    b.cancel()
    assert await c == [6]
    await batcher.stop()


async def test_a_failing_batch_fails_its_requests_and_the_batcher_keeps_serving() -> None:
    model = FakeModel()
    recorder = Recorder()
    batcher = make(model, observer=recorder)
    batcher.start()
    first = await hold_model(model, batcher)
    model.fail_when = 13
    doomed = [asyncio.create_task(batcher.submit([x])) for x in (12, 13)]
    await asyncio.sleep(0.005)
    assert model.gate is not None
    model.gate.set()
    await first
    for task in doomed:
        with pytest.raises(ValueError, match="model exploded"):
            await task
    model.fail_when = None
    assert await batcher.submit([5]) == [10]
    await batcher.stop()
    assert recorder.failures == 1


async def test_a_model_returning_the_wrong_count_is_an_error() -> None:
    batcher = MicroBatcher(lambda items: items[:-1], max_batch_size=4, max_delay=0, max_queue_size=10)
    with pytest.raises(RuntimeError, match="returned 1 results for 2 items"):
        await run_with(batcher, batcher.submit([1, 2]))


async def test_stop_drains_accepted_work_then_refuses_new_work() -> None:
    model = FakeModel(delay=0.01)
    batcher = make(model, max_batch_size=2)
    batcher.start()
    tasks = [asyncio.create_task(batcher.submit([i])) for i in range(6)]
    await asyncio.sleep(0)
    await batcher.stop()
    assert [t.result() for t in tasks] == [[2 * i] for i in range(6)]
    with pytest.raises(BatcherClosedError):
        await batcher.submit([1])


async def test_observer_sees_sizes_and_waits() -> None:
    model = FakeModel()
    recorder = Recorder()
    batcher = make(model, observer=recorder)
    await run_with(batcher, batcher.submit([1, 2, 3]))
    assert recorder.sizes == [3]
    assert len(recorder.waits) == 1 and recorder.waits[0] >= 0


@pytest.mark.parametrize("kwargs", [{"max_batch_size": 0}, {"max_queue_size": 0}, {"max_delay": -1}])
def test_nonsense_limits_are_refused(kwargs: dict[str, float]) -> None:
    opts = {"max_batch_size": 4, "max_delay": 0.0, "max_queue_size": 4} | kwargs
    with pytest.raises(ValueError):
        MicroBatcher(lambda x: x, **opts)  # type: ignore[arg-type]


async def test_check_room_refuses_before_any_work_is_spent() -> None:
    model = FakeModel()
    batcher = make(model, max_queue_size=3)
    with pytest.raises(BatcherClosedError):
        batcher.check_room(1)  # not started
    batcher.start()
    first = await hold_model(model, batcher)
    queued = asyncio.create_task(batcher.submit([1, 2]))
    await asyncio.sleep(0)
    batcher.check_room(1)  # fits
    with pytest.raises(QueueFullError):
        batcher.check_room(2)
    assert model.gate is not None
    model.gate.set()
    await first
    await queued
    await batcher.stop()
    with pytest.raises(BatcherClosedError):
        batcher.check_room(1)
