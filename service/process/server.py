"""Running the app under uvicorn, with a drain on SIGTERM before the server stops.

On the first SIGTERM/SIGINT: readiness turns 503 (gRPC health: NOT_SERVING) and new
inference requests get 503 (gRPC: UNAVAILABLE), while requests already accepted finish; when
none is left (or the grace period ends) the gRPC server stops, uvicorn closes its sockets and
the lifespan stops the batcher. The process then exits 0. A second signal stops at once.

The gRPC server (``app.state.grpc``, see ``service/v2/grpc/server.py``) runs in the same
event loop, started once the engine is ready and HTTP listens. If its port cannot be bound
the process stops (``failed``), as it does for the HTTP port.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
import sys
from types import FrameType
from typing import TYPE_CHECKING, Any

import uvicorn

from service.process.protocol import CoalescingHttpToolsProtocol
from service.settings import Settings

if TYPE_CHECKING:
    from service.engine.engine import Engine
    from service.v2.grpc.server import GrpcService

log = logging.getLogger("textserve")

# Container allocations between young-generation collections (CPython's default is 700).
GC_YOUNG_THRESHOLD = 10_000


def settle_heap() -> None:
    # Replaces: CPython's default collector thresholds over a heap of long-lived objects.
    # Gain: p99 at 64 clients x 1 text on one core 61-85 ms -> 33-53 ms.
    # Off: drop the call in ``DrainingServer.startup``.
    """Once the model is loaded and the server listens: collect the start-up garbage, then
    move every object left (the app, its routes and schemas, numpy, onnxruntime's wrappers)
    out of the cyclic collector's reach with ``gc.freeze()``, and collect young objects less
    often. Without it, each full collection walks that whole heap while requests wait (the
    p99 at 64 clients, one core: 61-85 ms -> 33-53 ms), and a request's short-lived dicts and
    lists trigger a young collection every few requests. Objects are still freed by reference
    counting as usual; only cycles among new objects wait for the (rarer) collections."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, engine: Engine, grpc: GrpcService | None = None) -> None:
        super().__init__(config)
        self.engine = engine
        self.grpc = grpc
        self.failed = False
        """The server could not start in full (the gRPC port could not be bound)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._draining = False
        self._drain_task: asyncio.Task[None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)
        if self.started and self.grpc is not None:
            try:
                await self.grpc.start()
            except RuntimeError as exc:  # grpcio's word for a port it cannot bind
                log.error("cannot listen for gRPC", extra={"address": self.grpc.address, "error": str(exc)})
                self.failed = self.should_exit = True
                return
        if self.started:
            settle_heap()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.grpc is not None:
            # Calls accepted have finished by now (the drain waited for them), unless the
            # grace period ran out or this is a second signal.
            await self.grpc.stop(0 if self.force_exit else 1.0)
        await super().shutdown(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Not recorded in _captured_signals: uvicorn would re-raise it after a clean
        # shutdown and the process would die of the signal instead of exiting 0.
        if self._draining or self._loop is None:
            self.should_exit = True
            self.force_exit = self._draining
            return
        self._draining = True
        self._loop.call_soon_threadsafe(self._begin_drain, signal.Signals(sig).name)

    def _begin_drain(self, signame: str) -> None:
        self._drain_task = asyncio.ensure_future(self._drain(signame))

    async def _drain(self, signame: str) -> None:
        admission = self.engine.admission
        grace = self.engine.settings.shutdown_grace_s
        self.engine.begin_drain()
        if self.grpc is not None:
            await self.grpc.begin_drain()
        log.info("draining", extra={"signal": signame, "in_flight": admission.in_flight, "grace_s": grace})
        finished = await admission.wait_idle(grace)
        if not finished:
            log.warning("grace period over; stopping with requests in flight",
                        extra={"in_flight": admission.in_flight})
        self.should_exit = True


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's configuration, the same for one process and for each worker."""
    return {
        "log_config": None,
        "access_log": False,
        "lifespan": "on",
        "timeout_graceful_shutdown": max(1, int(settings.shutdown_grace_s)),
        "server_header": False,
        "proxy_headers": False,  # nothing here reads the client address; saves a middleware per request
        "date_header": True,
        # uvloop and httptools (uvicorn[standard]), with one write per response.
        "loop": "auto",
        "http": CoalescingHttpToolsProtocol,
    }


def cannot_serve(exc: Exception) -> int:
    """Say why the model cannot be served, in one line; the exit code."""
    print(f"textserve: cannot serve the model: {exc}", file=sys.stderr)
    return 1


def serve_one(settings: Settings) -> int:
    """Load the models, then serve them in this process until stopped; the exit code: 0 after
    a clean stop, 1 if the default model cannot be served, 3 if the server never started."""
    # Imported here: gunicorn's arbiter imports this module for the workers and must not
    # load onnxruntime (it would start a thread in the process that forks).
    from service.app import create_app

    app = create_app(settings)
    if not load_models(app):
        return 1
    config = uvicorn.Config(app, host=settings.host, port=settings.port, **uvicorn_options(settings))
    server = DrainingServer(config, app.state.engine, app.state.grpc)
    server.run()
    return 0 if server.started and not server.failed else 3


def load_models(app: Any) -> bool:
    """Load what the app's engine serves at start, before any socket is open; False (and
    the one line saying why) if the default model cannot be served."""
    from service.bundle.format import BundleError

    try:
        asyncio.run(app.state.engine.load())
    except BundleError as exc:
        cannot_serve(exc)
        return False
    return True
