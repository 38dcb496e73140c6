"""Running texts through the model on behalf of a request: admission (in-flight tracking),
the request timeout, and turning batcher refusals into HTTP errors. Shared by /predict and
any other protocol served beside it."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

from service.batcher import BatcherClosedError, QueueFullError
from service.errors import GatewayTimeout, Unavailable
from service.predictor import Prediction
from service.state import Services


async def run_inference(svc: Services, scope: MutableMapping[str, Any], texts: list[str]) -> list[Prediction]:
    """Predictions for ``texts``, in order; raises the ServiceError a client should see."""
    scope["textserve.texts"] = len(texts)  # for the access log
    svc.lifecycle.enter()
    svc.metrics.in_flight.inc()
    try:
        async with asyncio.timeout(svc.settings.request_timeout_s):
            predictions = await svc.predictor.predict(texts)
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
        svc.lifecycle.leave()
        svc.metrics.in_flight.dec()
    counter = svc.metrics.predictions
    for p in predictions:
        counter.labels(p.label).inc()
    return predictions
