"""The gRPC server: the inference service and ``grpc.health.v1``, in the process's own event
loop (grpcio's asyncio server runs on uvloop as on asyncio's loop), on the same engine as HTTP.

``create_app`` builds a :class:`GrpcService`; the process (``service/process/server.py``)
starts it once the engine is ready and HTTP listens, and on SIGTERM calls ``begin_drain``
(health turns NOT_SERVING; new inference calls get UNAVAILABLE from the engine) and then
``stop``. Health's Check and Watch are open without the API key, as HTTP's health routes are.

Replaces: one ``grpc.aio`` server, which accepts one call per event-loop turn.
Gain: 64 calls x 1 text over 8 channels, 1,188-1,349 -> 1,987 texts/s on one core.
Off: ``ACCEPTORS = 1``.

One server keeps a single ``request_call`` outstanding, so under load calls reach the batcher
one by one and the model runs batches of ~3 texts at 64 calls x 1 text (~7.5 with four). So
the process runs ``ACCEPTORS`` gRPC servers on the one port (``SO_REUSEPORT``: the kernel
gives each new connection to one of them), all with the same servicers, health and engine.
A client with one channel is served by one of them; several channels spread over them.

``SO_REUSEPORT`` would also let another server of the same user share the port, so a process
that is alone (one worker) first checks that nothing listens there, and refuses to start
otherwise; with several worker processes every worker binds the port the same way, after the
arbiter has checked it (``service/process/workers.py``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from service.v2.grpc import SERVICE
from service.v2.grpc.generated import grpc_service_pb2_grpc as pb_grpc
from service.v2.grpc.servicer import InferenceServicer
from service.v2.grpc.threads import threads_started_under_batch

if TYPE_CHECKING:
    from service.engine.engine import Engine
    from service.observability.requests import RequestRecorder
    from service.settings import Settings

log = logging.getLogger("textserve")
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# The server as a whole (""), and the inference service by name, as Triton answers them.
HEALTH_SERVICES = ("", SERVICE)
ACCEPTORS = 4


def grpc_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class GrpcService:
    def __init__(
        self, settings: Settings, engine: Engine, recorder: RequestRecorder, tracing: Any = None
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.servicer = InferenceServicer(settings, engine, recorder, tracing)
        self.health = health_aio.HealthServicer()
        self.servers: list[grpc.aio.Server] = []
        self.port: int | None = None

    @property
    def address(self) -> str:
        return grpc_address(self.settings.host, self.settings.grpc_port)

    def options(self) -> list[tuple[str, int]]:
        return [
            ("grpc.so_reuseport", 1 if ACCEPTORS > 1 or self.settings.workers > 1 else 0),
            ("grpc.max_receive_message_length", self.settings.grpc_message_limit),
        ]

    async def start(self, port: int | None = None) -> int:
        """Listen on ``port`` (default: the settings'; 0 picks a free one) and serve; the port
        bound. RuntimeError if it is taken or cannot be bound."""
        host = self.settings.host
        wanted = self.settings.grpc_port if port is None else port
        if wanted and self.settings.workers == 1:
            refuse_if_taken(host, wanted)
        try:
            for _ in range(ACCEPTORS):
                with threads_started_under_batch(self.settings.grpc_sched_batch):  # grpcio's threads
                    server = grpc.aio.server(options=self.options())
                pb_grpc.add_GRPCInferenceServiceServicer_to_server(self.servicer, server)  # type: ignore[no-untyped-call]
                health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
                bound: int = server.add_insecure_port(grpc_address(host, self.port or wanted))  # RuntimeError
                await server.start()
                self.servers.append(server)
                self.port = bound
        except BaseException:
            await self._stop_servers(0)
            raise
        await self.refresh_health()
        log.info("grpc listening", extra={"address": grpc_address(host, bound), "acceptors": ACCEPTORS})
        return bound

    async def refresh_health(self) -> None:
        """Health as the engine is: SERVING when ready, NOT_SERVING while loading or draining."""
        status = SERVING if self.engine.ready else NOT_SERVING
        for name in HEALTH_SERVICES:
            await self.health.set(name, status)

    async def begin_drain(self) -> None:
        """Health says NOT_SERVING from now on (Watch streams are told); calls go on."""
        await self.health.enter_graceful_shutdown()

    async def stop(self, grace: float) -> None:
        """Stop listening, give calls still running ``grace`` seconds, then cancel them."""
        if not self.servers:
            return
        await self.health.enter_graceful_shutdown()
        await self._stop_servers(grace)

    async def _stop_servers(self, grace: float) -> None:
        servers, self.servers, self.port = self.servers, [], None
        await asyncio.gather(*(server.stop(grace) for server in servers))


def refuse_if_taken(host: str, port: int) -> None:
    """RuntimeError if something already listens on host:port (bound as grpcio binds, with
    ``SO_REUSEADDR``, so a port in TIME_WAIT is no obstacle)."""
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise RuntimeError(f"{grpc_address(host, port)} is taken: {exc.strerror}") from None
