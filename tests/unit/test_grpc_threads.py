"""grpcio's threads under SCHED_BATCH: a thread started inside the block inherits it, the
thread that made the servers goes back to its own policy, and anything unusual is left alone."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import pytest

from service.v2.grpc import threads
from service.v2.grpc.threads import threads_started_under_batch

pytestmark = pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="Linux scheduling policies")


def in_a_thread(work: Callable[[], Any]) -> Any:
    """``work()`` in a fresh thread, so the test process's own threads keep their policy."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(work()))
    thread.start()
    thread.join()
    return result[0]


def policy_of_a_thread_started_now() -> int:
    return int(in_a_thread(lambda: os.sched_getscheduler(0)))


def test_threads_started_inside_run_under_batch_and_the_starter_goes_back() -> None:
    def scenario() -> tuple[bool, int, int, int]:
        with threads_started_under_batch() as applied:
            inside = policy_of_a_thread_started_now()
        return applied, inside, os.sched_getscheduler(0), policy_of_a_thread_started_now()

    applied, inside, starter_after, started_after = in_a_thread(scenario)
    assert applied
    assert inside == os.SCHED_BATCH
    assert starter_after == os.SCHED_OTHER and started_after == os.SCHED_OTHER


def test_switched_off_nothing_changes() -> None:
    def scenario() -> tuple[bool, int]:
        with threads_started_under_batch(enabled=False) as applied:
            return applied, policy_of_a_thread_started_now()

    assert in_a_thread(scenario) == (False, os.SCHED_OTHER)


def test_a_process_under_another_policy_keeps_it() -> None:
    def scenario() -> tuple[bool, int, int]:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # as `chrt --idle` would
        with threads_started_under_batch() as applied:
            inside = policy_of_a_thread_started_now()
        return applied, inside, os.sched_getscheduler(0)

    assert in_a_thread(scenario) == (False, os.SCHED_IDLE, os.SCHED_IDLE)


def test_a_kernel_that_refuses_leaves_the_default_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(threads.os, "sched_setscheduler", refuse)

    def scenario() -> tuple[bool, int]:
        with threads_started_under_batch() as applied:
            return applied, policy_of_a_thread_started_now()

    assert in_a_thread(scenario) == (False, os.SCHED_OTHER)


@pytest.mark.parametrize("policy", ["SCHED_OTHER", "SCHED_IDLE"])
def test_an_error_inside_the_block_comes_out_and_the_starter_keeps_its_policy(policy: str) -> None:
    def scenario() -> tuple[str, int]:
        os.sched_setscheduler(0, getattr(os, policy), os.sched_param(0))
        try:
            with threads_started_under_batch():
                raise OSError("grpcio could not start")
        except OSError as exc:
            return str(exc), os.sched_getscheduler(0)
        raise AssertionError("the error was swallowed")

    assert in_a_thread(scenario) == ("grpcio could not start", getattr(os, policy))
