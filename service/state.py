"""What the routes share: settings, metrics, lifecycle and, once loaded, the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from service.bundle import Manifest
from service.clock import Deadlines
from service.lifecycle import Lifecycle
from service.metrics import Metrics
from service.predictor import Predictor
from service.schemas import request_model
from service.settings import Settings
from service.worker_metrics import SharedPages


class Services:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.lifecycle = Lifecycle()
        self.deadlines = Deadlines(settings.request_timeout_s, self.metrics)
        self.request_model = request_model(settings.max_texts_per_request, settings.max_text_chars)
        key = settings.api_key
        self.api_key: bytes | None = key.get_secret_value().encode() if key is not None else None
        self.manifest: Manifest | None = None
        self.model_ref: dict[str, Any] = {}
        self._predictor: Predictor | None = None
        self.shared_pages: SharedPages | None = None  # set in worker processes (TEXTSERVE_WORKERS > 1)

    @property
    def predictor(self) -> Predictor:
        if self._predictor is None:
            raise RuntimeError("model not loaded")
        return self._predictor

    def share_metrics(self, directory: Path, worker: int) -> None:
        """Serve /metrics as the sum over the workers that publish to ``directory``."""
        self.shared_pages = SharedPages(directory, worker, self.metrics.render)

    def metrics_page(self) -> bytes:
        return self.shared_pages.render() if self.shared_pages is not None else self.metrics.render()

    def attach(self, predictor: Predictor) -> None:
        self._predictor = predictor
        self.manifest = predictor.runtime.bundle.manifest
        self.model_ref = {"name": self.manifest.name, "version": self.manifest.version}
