"""Admission: where the engine is in its life (loading, ready, draining), the requests in
flight, and the refusals a caller gets as engine errors. The transports turn each error
into their own answer (HTTP 503 with Retry-After, gRPC UNAVAILABLE or RESOURCE_EXHAUSTED)."""

from __future__ import annotations

import asyncio
import enum
import time


class EngineError(Exception):
    """A request the engine will not run; the message is safe to show the client."""


class NotReady(EngineError):
    """The model is not loaded yet."""


class ShuttingDown(EngineError):
    """The engine is draining: work already accepted finishes, new work is refused."""


class Overloaded(EngineError):
    """The queue is full; retrying shortly may succeed."""


class UnknownModel(EngineError):
    """No such model, or no such version of it."""


class InvalidName(EngineError):
    """A model name or version that is not one safe path segment."""


class ControlRefused(EngineError):
    """A load or unload the model control mode does not allow."""


class LoadFailed(EngineError):
    """A model that was asked for could not be loaded; the message says why."""


class Phase(enum.Enum):
    LOADING = "loading"
    READY = "ready"
    DRAINING = "draining"


class Admission:
    def __init__(self) -> None:
        self.phase = Phase.LOADING
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def ready(self) -> bool:
        return self.phase is Phase.READY

    def mark_ready(self) -> None:
        self.phase = Phase.READY

    def begin_drain(self) -> None:
        self.phase = Phase.DRAINING

    def check(self) -> None:
        """Raise the refusal a new request gets in this phase, if any."""
        phase = self.phase
        if phase is Phase.DRAINING:
            raise ShuttingDown("server is shutting down")
        if phase is not Phase.READY:
            raise NotReady("model is not loaded yet")

    def enter(self) -> None:
        self.in_flight += 1
        self._idle.clear()

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no accepted request is in flight; False if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        try:
            await asyncio.wait_for(self._idle.wait(), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            return False
        return True
