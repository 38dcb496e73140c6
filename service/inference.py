"""Running texts through the model on behalf of a request: admission (in-flight tracking),
the request timeout, a client that hangs up, and turning batcher refusals into HTTP
errors. Shared by /predict (both paths) and the V2 protocol."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

from starlette.types import Receive

from service.batcher import BatcherClosedError, QueueFullError
from service.errors import ClientClosedRequest, GatewayTimeout, Unavailable
from service.predictor import Prediction
from service.state import Services


class _DisconnectWatch:
    """Cancels the request's task if its client hangs up while the texts wait or run, so
    the batcher withdraws them (their queue slots free at once, never run). The body has
    been read, so the next ASGI message can only be the disconnect."""

    def __init__(self, receive: Receive) -> None:
        self.fired = False
        self._task = asyncio.current_task()
        self._receive = receive
        self._watcher = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        if self._task is not None and not self._task.done():
            self.fired = True
            self._task.cancel()

    def stop(self) -> None:
        self._watcher.cancel()


async def run_inference(
    svc: Services, scope: MutableMapping[str, Any], receive: Receive, texts: list[str]
) -> list[Prediction]:
    """Predictions for ``texts``, in order; raises the ServiceError a client should see.

    ``receive`` is the request's ASGI receive, its body already read: it is watched for
    the client hanging up."""
    scope["textserve.texts"] = len(texts)  # for the access log
    svc.lifecycle.enter()
    svc.metrics.in_flight.inc()
    watch = _DisconnectWatch(receive)
    try:
        async with asyncio.timeout(svc.settings.request_timeout_s):
            predictions = await svc.predictor.predict(texts)
        # No await between here and stop(): the watch can only cancel inside predict().
    except asyncio.CancelledError:
        if not watch.fired:
            raise
        asyncio.current_task().uncancel()  # type: ignore[union-attr]
        raise ClientClosedRequest("the client closed the connection before its answer") from None
    except QueueFullError:
        svc.metrics.rejected.labels("queue_full").inc()
        raise Unavailable("server is overloaded; retry shortly", code="overloaded") from None
    except BatcherClosedError:
        svc.metrics.rejected.labels("draining").inc()
        raise Unavailable("server is shutting down", code="shutting_down", close=True) from None
    except TimeoutError:
        svc.metrics.rejected.labels("timeout").inc()
        raise GatewayTimeout(
            f"no answer within the request timeout ({svc.settings.request_timeout_s:g} s)"
        ) from None
    finally:
        watch.stop()
        svc.lifecycle.leave()
        svc.metrics.in_flight.dec()
    counter = svc.metrics.predictions
    for p in predictions:
        counter.labels(p.label).inc()
    return predictions
