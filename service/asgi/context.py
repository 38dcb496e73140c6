"""What the routes of both HTTP APIs share: the engine, the settings' limits, the API key,
the request clocks and the metrics. Built once by ``create_app``, found on ``app.state``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from service.asgi.deadlines import Deadlines

if TYPE_CHECKING:
    from service.engine.engine import Engine
    from service.observability.metrics import Metrics
    from service.settings import Settings


@dataclass
class HttpContext:
    settings: Settings
    engine: Engine
    metrics: Metrics
    tracing: Any = None  # service.observability.tracing.Tracing, when tracing is on
    deadlines: Deadlines = field(init=False)
    api_key: bytes | None = field(init=False)

    def __post_init__(self) -> None:
        self.deadlines = Deadlines(self.settings.request_timeout_s, self.metrics)
        key = self.settings.api_key
        self.api_key = key.get_secret_value().encode() if key is not None else None


def context_of(request: Request) -> HttpContext:
    ctx: HttpContext = request.app.state.textserve
    return ctx
