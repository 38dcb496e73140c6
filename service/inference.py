"""Running texts through the model on behalf of a request: admission (in-flight tracking)
and turning batcher refusals into HTTP errors. Shared by /predict (both paths) and the V2
protocol; the request's deadline and a vanished client are the caller's ``RequestClock``."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from service.batcher import BatcherClosedError, QueueFullError
from service.errors import Unavailable
from service.predictor import Prediction
from service.scope_keys import TEXTS_KEY
from service.state import Services


async def run_inference(svc: Services, scope: MutableMapping[str, Any], texts: list[str]) -> list[Prediction]:
    """Predictions for ``texts``, in order; raises the ServiceError a client should see."""
    scope[TEXTS_KEY] = len(texts)
    svc.lifecycle.enter()
    try:
        predictions = await svc.predictor.predict(texts)
    except QueueFullError:
        svc.metrics.rejected.labels("queue_full").inc()
        raise Unavailable("server is overloaded; retry shortly", code="overloaded") from None
    except BatcherClosedError:
        svc.metrics.rejected.labels("draining").inc()
        raise Unavailable("server is shutting down", code="shutting_down", close=True) from None
    finally:
        svc.lifecycle.leave()
    counters = svc.metrics.predictions_by_label
    for p in predictions:
        counters[p.label].inc()
    return predictions
