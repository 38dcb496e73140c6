"""The gRPC server: the inference service and ``grpc.health.v1``, in the process's own event
loop (grpcio's asyncio server runs on uvloop as on asyncio's loop), on the same engine as HTTP.

``create_app`` builds a :class:`GrpcService`; the process (``service/process/server.py``)
starts it once the engine is ready and HTTP listens, and on SIGTERM calls ``begin_drain``
(health turns NOT_SERVING; new inference calls get UNAVAILABLE from the engine) and then
``stop``. Health's Check and Watch are open without the API key, as HTTP's health routes are.

With several worker processes each binds the port with ``SO_REUSEPORT``; alone, a process
binds it exclusively, so a second server on the same port is refused, not given half the
calls.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from service.v2.grpc import SERVICE
from service.v2.grpc.generated import grpc_service_pb2_grpc as pb_grpc
from service.v2.grpc.servicer import InferenceServicer

if TYPE_CHECKING:
    from service.engine.engine import Engine
    from service.observability.requests import RequestRecorder
    from service.settings import Settings

log = logging.getLogger("textserve")
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# The server as a whole (""), and the inference service by name, as Triton answers them.
HEALTH_SERVICES = ("", SERVICE)


def grpc_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class GrpcService:
    def __init__(self, settings: Settings, engine: Engine, recorder: RequestRecorder) -> None:
        self.settings = settings
        self.engine = engine
        self.servicer = InferenceServicer(settings, engine, recorder)
        self.health = health_aio.HealthServicer()
        self.server: grpc.aio.Server | None = None
        self.port: int | None = None

    @property
    def address(self) -> str:
        return grpc_address(self.settings.host, self.settings.grpc_port)

    def options(self) -> list[tuple[str, int]]:
        return [
            ("grpc.so_reuseport", 1 if self.settings.workers > 1 else 0),
            ("grpc.max_receive_message_length", self.settings.grpc_message_limit),
        ]

    async def start(self, port: int | None = None) -> int:
        """Listen on ``port`` (default: the settings'; 0 picks a free one) and serve; the port
        bound. RuntimeError if it cannot be bound."""
        server = grpc.aio.server(options=self.options())
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(self.servicer, server)  # type: ignore[no-untyped-call]
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        address = grpc_address(self.settings.host, self.settings.grpc_port if port is None else port)
        bound: int = server.add_insecure_port(address)  # RuntimeError when taken
        await server.start()
        self.server, self.port = server, bound
        await self.refresh_health()
        log.info("grpc listening", extra={"address": grpc_address(self.settings.host, bound)})
        return bound

    async def refresh_health(self) -> None:
        """Health as the engine is: SERVING when ready, NOT_SERVING while loading or draining."""
        status = SERVING if self.engine.admission.ready else NOT_SERVING
        for name in HEALTH_SERVICES:
            await self.health.set(name, status)

    async def begin_drain(self) -> None:
        """Health says NOT_SERVING from now on (Watch streams are told); calls go on."""
        await self.health.enter_graceful_shutdown()

    async def stop(self, grace: float) -> None:
        """Stop listening, give calls still running ``grace`` seconds, then cancel them."""
        if self.server is None:
            return
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        self.server = None
