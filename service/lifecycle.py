"""Where the service is in its life (loading, ready, draining), and the requests in flight."""

from __future__ import annotations

import asyncio
import enum
import time


class Phase(enum.Enum):
    LOADING = "loading"
    READY = "ready"
    DRAINING = "draining"


class Lifecycle:
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
