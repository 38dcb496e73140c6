"""A request's bookkeeping once it is answered, whatever carried it (HTTP or gRPC): the
request series, with a ``protocol`` label, and the access-log line.

Probes (health checks, /metrics) are not traffic: they are left out of the series, and
logged only when they fail.
"""

from __future__ import annotations

import itertools
import os
import re
from typing import Any

from service.observability.access_log import AccessLog
from service.observability.metrics import Metrics

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Request ids: a random per-process prefix and a counter, 32 hex digits like a UUID's, at a
# fraction of uuid4's cost (no urandom call per request). A forked worker draws its own.
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count()


def _new_id_prefix() -> None:
    global _ID_PREFIX
    _ID_PREFIX = os.urandom(8).hex()


os.register_at_fork(after_in_child=_new_id_prefix)


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


def valid_request_id(candidate: bytes | str) -> str | None:
    """A client's ``X-Request-ID`` (gRPC: ``x-request-id`` metadata), if it is one we may
    echo and log."""
    text = candidate.decode("latin-1") if isinstance(candidate, bytes) else candidate
    return text if _REQUEST_ID.match(text) else None


NO_MODEL = ("", "")  # a request that reached no model version


class RequestRecorder:
    def __init__(self, metrics: Metrics, access_log: AccessLog | None, probes: frozenset[str]) -> None:
        self.metrics = metrics
        self.access_log = access_log
        self.probes = probes

    def record(
        self, protocol: str, route: str, method: str, status: int | str, seconds: float, request_id: str,
        texts: int | None = None, model: tuple[str, str] = NO_MODEL, *, failed: bool = False,
    ) -> None:
        """``route`` is a bounded label value (a route template, or a gRPC method's full
        name); ``status`` an HTTP status or a gRPC code's name; ``model`` the (name, version)
        that answered; ``failed`` says the server failed (a probe's failure is logged)."""
        probe = route in self.probes
        if not probe:
            counter, latency = self.metrics.request_series(protocol, route, method, str(status), *model)
            counter.inc()
            latency.observe(seconds)
        if self.access_log is not None and (not probe or failed):
            entry: dict[str, Any] = {
                "request_id": request_id,
                "method": method,
                "route": route,
                "status": status,
                "latency_ms": round(seconds * 1000, 3),
            }
            if texts is not None:
                entry["texts"] = texts
            if model is not NO_MODEL:
                entry["model"], entry["version"] = model
            entry["protocol"] = protocol
            self.access_log.write(entry)
