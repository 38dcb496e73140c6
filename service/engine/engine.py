"""The engine: the loaded models behind admission. ``start()`` loads what the repository and
the control mode ask for; ``predict(texts, model, version)`` admits, routes, tokenizes,
queues and runs; ``stop()`` drains. Every transport calls ``predict`` and nothing below it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from service.bundle.format import Manifest
from service.bundle.runtime import ModelRuntime
from service.engine.admission import (
    Admission,
    NotReady,
    Overloaded,
    ShuttingDown,
    UnknownModel,
)
from service.engine.batcher import BatcherClosedError, QueueFullError
from service.engine.control import ModelControl
from service.engine.predictor import Prediction
from service.engine.repository import check_name
from service.engine.served import ModelState, ServedVersion, VersionState
from service.observability.metrics import Metrics
from service.settings import Settings

log = logging.getLogger("textserve")


@dataclass(slots=True)
class Answer:
    """What a model version said about some texts."""

    model: str
    version: int
    labels: list[str]
    predictions: list[Prediction]
    key: tuple[str, str]  # (model, version) as label values
    @property
    def ref(self) -> dict[str, Any]:
        return {"name": self.model, "version": self.version}


class Engine:
    """Texts in, predictions out. ``runtime`` serves a model that is already loaded (one
    model, from ``TEXTSERVE_MODEL_PATH``)."""

    def __init__(
        self, settings: Settings, metrics: Metrics, runtime: ModelRuntime | None = None, tracing: Any = None
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.admission = Admission()
        self.control = ModelControl(settings, metrics, runtime, tracing)
        self._loaded = False

    # -- life ------------------------------------------------------------------------------------

    async def load(self) -> None:
        """Load the models asked for at start (off the event loop); BundleError, with the one
        line to say, if the default model cannot be served. ``start`` does it if not done."""
        await self.control.load_initial()
        self._loaded = True

    async def start(self) -> None:
        if not self._loaded:
            await self.load()
        self.control.start()
        self.metrics.track(lambda: self.admission.in_flight, lambda: self.ready)
        self.admission.mark_ready()
        served = self.route(None, None)
        log.info("ready", extra={"model": served.name, "version": served.version, "path": str(served.path),
                                 "models": sorted(self.control.models)})

    def begin_drain(self) -> None:
        """Refuse new requests from now on; those accepted go on."""
        self.admission.begin_drain()

    async def stop(self) -> None:
        """Drain: let accepted requests finish (up to the grace period), then stop every model."""
        self.begin_drain()
        await self.admission.wait_idle(self.settings.shutdown_grace_s)
        await self.control.stop()
        self._loaded = False
        self.metrics.untrack()
        log.info("stopped")

    @property
    def ready(self) -> bool:
        """Admitting requests, and the default model has a version that serves."""
        if not self.admission.ready:
            return False
        default = self.control.models.get(self.control.default)
        return default is not None and default.latest_ready() is not None

    # -- requests --------------------------------------------------------------------------------

    def check_ready(self) -> None:
        """Raise NotReady or ShuttingDown now, before the caller reads a body."""
        try:
            self.admission.check()
        except ShuttingDown:
            self.metrics.rejected.labels("draining").inc()
            raise

    def model(self, name: str | None) -> ModelState:
        """A known model (the default one for None); UnknownModel or InvalidName otherwise,
        NotReady before the repository has been read."""
        if not self.control.models:
            raise NotReady("model is not loaded yet")
        model = self.control.models.get(check_name(name) if name is not None else self.control.default)
        if model is None:
            raise UnknownModel(f"unknown model {name!r}")
        return model

    def route(self, name: str | None, version: int | None) -> ServedVersion:
        """The version that answers for ``name`` (the default model for None) and ``version``
        (the highest ready one for None)."""
        model = self.model(name)
        if version is None:
            latest = model.latest_ready()
            if latest is None:
                raise NotReady(f"model {model.name!r} has no version ready ({model.why_not()})")
            return latest
        served = model.versions.get(version)
        if served is not None and served.state is VersionState.READY:
            return served
        if served is not None:
            raise NotReady(f"version {version} of model {model.name!r} is {served.state.value}")
        loaded = [v.version for v in model.ready()]
        raise UnknownModel(f"model {model.name!r} has no version {version} (loaded: {loaded})")

    async def predict(
        self, texts: Sequence[str], name: str | None = None, version: int | None = None, hold: float | None = None
    ) -> Answer:
        """What the model says about ``texts``, in order; raises the EngineError a client should see.
        ``hold``: how long, under load, their batch may wait for company (seconds; the
        ``max_batch_delay_ms`` setting if None)."""
        served = self.route(name, version)
        predictor = served.predictor
        assert predictor is not None
        admission = self.admission
        admission.enter()
        served.enter()
        try:
            predictions = await predictor.predict(texts, hold)
        except QueueFullError:
            self.metrics.rejected.labels("queue_full").inc()
            raise Overloaded("server is overloaded; retry shortly") from None
        except BatcherClosedError:
            self.metrics.rejected.labels("draining").inc()
            raise ShuttingDown("server is shutting down") from None
        finally:
            served.leave()
            admission.leave()
        metrics = served.metrics
        if metrics is not None:
            counters = metrics.predictions_by_label
            for p in predictions:
                counters[p.label].inc()
        return Answer(served.name, served.version, predictor.labels, predictions, served.key)

    # -- what clients may see about the models ------------------------------------------------------

    def manifest(self, name: str | None = None) -> Manifest:
        """The manifest of the version that answers for ``name`` now."""
        return self.route(name, None).manifest

    @property
    def default_ref(self) -> dict[str, Any]:
        return self.route(None, None).ref

    def models_view(self) -> list[dict[str, Any]]:
        """Every model with its versions and their state (``GET /models``)."""
        view = []
        for name in sorted(self.control.models):
            model = self.control.models[name]
            versions = [{"version": e["version"], "state": e["state"], "reason": e["reason"]}
                        for e in self.control.index() if e["name"] == name and "version" in e]
            entry: dict[str, Any] = {"name": name, "default": name == self.control.default, "versions": versions}
            if not model.ready():
                entry["reason"] = model.why_not()
            view.append(entry)
        return view
