"""The bare server: the least a dynamic-batching server of textserve's design can do.

Same parts as the service where it counts for speed: uvicorn with uvloop, httptools and the
service's one-write protocol; orjson; the service's tokenizer, micro-batcher, length
grouping and onnxruntime thread. Nothing else: no content-type, size or schema checks, no
error handling, no request ids, deadlines, metrics per request or access log, no FastAPI.
It is not a server anyone should run: it is the measuring stick for what textserve's own
request handling costs, and for whether a throughput target is reachable at all in this
design on this machine (``python -m bench.run --bare``).

    TEXTSERVE_PORT=8766 python -m bench.bare_server      # POST /predict, GET /health, GET /metrics

It reads the same ``TEXTSERVE_*`` settings as the service (model path, precision, batch
size and delay, threads). ``/metrics`` is the service's page, where only
``textserve_batch_size`` moves (one observation per batch), so the bench reads its batch
sizes the same way.
"""

from __future__ import annotations

from typing import Any

import orjson
import uvicorn

from service.bundle.runtime import ModelRuntime
from service.engine.predictor import Predictor
from service.engine.served import load_runtime
from service.observability.metrics import Metrics
from service.process.protocol import CoalescingHttpToolsProtocol
from service.settings import Settings

_JSON = [(b"content-type", b"application/json")]


class _BatchSizes:
    """The service's batch-size histogram, and nothing per request (no queue waits)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def batch_started(self, size: int, queue_waits: Any) -> None:
        self.metrics.batch_size.labels("bare", "1").observe(size)

    def batch_finished(self, size: int, seconds: float, ok: bool) -> None:
        pass


def build_app(settings: Settings, runtime: ModelRuntime | None = None) -> Any:
    runtime = runtime if runtime is not None else load_runtime(settings)
    metrics = Metrics()
    observer = _BatchSizes(metrics)
    predictor: Predictor | None = None

    async def reply(send: Any, status: int, body: bytes) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [*_JSON, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal predictor
        if scope["type"] == "lifespan":
            while (await receive())["type"] == "lifespan.startup":
                predictor = Predictor(runtime, max_batch_size=settings.max_batch_size,
                                      max_delay=settings.max_batch_delay_ms / 1000,
                                      max_queue_size=settings.max_queue_size, observer=observer)
                predictor.batcher.start()
                await send({"type": "lifespan.startup.complete"})
            if predictor is not None:
                await predictor.batcher.stop()
            await send({"type": "lifespan.shutdown.complete"})
            return
        assert predictor is not None
        if scope["path"] != "/predict":
            body = metrics.render() if scope["path"] == "/metrics" else b'{"status":"ok"}'
            await reply(send, 200, body)
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        texts = orjson.loads(b"".join(chunks))["texts"]
        ids = [predictor.tokenizer.ids_and_truncated(text)[0] for text in texts]
        answers = await predictor.batcher.submit(ids)
        await reply(send, 200, orjson.dumps(
            {"predictions": [{"label": label, "scores": scores} for label, scores in answers]}))

    return app


def main() -> None:
    settings = Settings()
    uvicorn.run(build_app(settings), host=settings.host, port=settings.port, log_level="warning",
                access_log=False, lifespan="on", server_header=False, proxy_headers=False, loop="auto",
                http=CoalescingHttpToolsProtocol)


if __name__ == "__main__":
    main()
