"""One model version in memory: its onnxruntime session, its own batcher (a batch never
mixes models or versions) and inference thread, its state, and the requests on it; and a
model's versions, as the repository index shows them.

Opening a version (verify the bundle, create the session, warm it up, measure its run
costs) is plain blocking code, run in a thread off the event loop and off every inference
thread. Closing one waits for the requests already routed to it, then stops its batcher
and lets the session go.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import enum
import gc
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.bundle.format import Bundle, Manifest, load_bundle
from service.bundle.options import RuntimeOptions
from service.bundle.runtime import ModelRuntime
from service.engine.hooks import BatchTracer
from service.engine.predictor import Predictor
from service.engine.repository import Fingerprint, ModelDir
from service.observability.metrics import VersionMetrics
from service.settings import Settings


class VersionState(enum.Enum):
    """Triton's names for a model version's states (the repository index shows them)."""

    LOADING = "LOADING"
    READY = "READY"
    UNLOADING = "UNLOADING"
    UNAVAILABLE = "UNAVAILABLE"


def runtime_options(settings: Settings) -> RuntimeOptions:
    return RuntimeOptions(
        intra_op_threads=settings.intra_op_threads,
        inter_op_threads=settings.inter_op_threads,
        optimization=settings.graph_optimization,
        variant=settings.precision,
    )


def load_runtime(settings: Settings, path: Path | None = None, verified: Bundle | None = None) -> ModelRuntime:
    """Verify the bundle (``path``, else ``settings.model_path``; ``verified`` if it already
    was), open it in onnxruntime and warm it up; BundleError if it cannot be."""
    bundle = verified if verified is not None else load_bundle(path or settings.model_path)
    runtime = ModelRuntime(bundle, runtime_options(settings))
    runtime.warm_up()
    return runtime


def open_predictor(settings: Settings, runtime: ModelRuntime) -> Predictor:
    """The predictor of a loaded runtime (its run costs measured); its batcher not started."""
    return Predictor(
        runtime,
        max_batch_size=settings.max_batch_size,
        max_delay=settings.max_batch_delay_ms / 1000,
        max_queue_size=settings.max_queue_size,
    )


def _release_freed_memory() -> None:
    """Free a closed version now and give its pages back to the system. Its predictor and
    batcher refer to each other, so only the cyclic collector frees them, and the server
    runs that rarely (``settle_heap``); glibc then keeps freed pages unless trimmed. Without
    both, RSS grew by the size of a version with every swap."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


@dataclass(eq=False)
class ServedVersion:
    name: str
    version: int
    path: Path
    state: VersionState = VersionState.LOADING
    reason: str = ""
    predictor: Predictor | None = None
    metrics: VersionMetrics | None = None
    loaded_seconds: float = 0.0
    in_flight: int = 0
    _idle: asyncio.Event | None = field(default=None, repr=False)
    key: tuple[str, str] = field(init=False)  # (name, version) as metric label values

    def __post_init__(self) -> None:
        self.key = (self.name, str(self.version))

    @property
    def manifest(self) -> Manifest:
        assert self.predictor is not None
        return self.predictor.runtime.bundle.manifest

    @property
    def onnx_sha256(self) -> str:
        assert self.predictor is not None
        runtime = self.predictor.runtime
        return runtime.bundle.manifest.files[runtime.model_file].sha256

    @property
    def ref(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version}

    def open(self, settings: Settings, runtime: ModelRuntime | None = None, verified: Bundle | None = None) -> None:
        """Load this version (blocking: call it in a thread), from ``verified`` if its bundle
        was just checked; BundleError if it cannot be."""
        started = time.perf_counter()
        runtime = runtime if runtime is not None else load_runtime(settings, self.path, verified)
        self.predictor = open_predictor(settings, runtime)
        self.loaded_seconds = time.perf_counter() - started

    def start(self, metrics: VersionMetrics, tracer: BatchTracer | None = None) -> None:
        """Start serving (on the event loop): the batcher runs, requests may come."""
        assert self.predictor is not None
        self.metrics = metrics
        self.predictor.batcher.observer = metrics
        self.predictor.batcher.tracer = tracer
        self.predictor.batcher.start()
        self.state = VersionState.READY

    def enter(self) -> None:
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0 and self._idle is not None:
            self._idle.set()

    async def close(self) -> None:
        """Stop taking requests, let those routed here finish, then free the session."""
        self.state = VersionState.UNLOADING
        if self.in_flight:
            self._idle = asyncio.Event()
            await self._idle.wait()
        if self.predictor is not None:
            await self.predictor.batcher.stop()
        self.predictor = None
        _release_freed_memory()


@dataclass(eq=False)
class ModelState:
    name: str
    source: ModelDir
    versions: dict[int, ServedVersion] = field(default_factory=dict)
    failed: dict[int, tuple[Fingerprint, str]] = field(default_factory=dict)  # not retried unchanged
    loaded: bool = False  # asked to serve (at start, by the poller, or by load())

    def latest_ready(self) -> ServedVersion | None:
        """The highest ready version (what a request without a version gets): a plain loop
        over the one or two loaded versions, on every request's path."""
        latest = None
        for served in self.versions.values():
            if served.state is VersionState.READY and (latest is None or served.version > latest.version):
                latest = served
        return latest

    def ready(self) -> list[ServedVersion]:
        return sorted(
            (v for v in self.versions.values() if v.state is VersionState.READY), key=lambda v: -v.version
        )

    def why_not(self) -> str:
        """Why nothing of this model serves, for errors and the index."""
        if self.source.config_problem:
            return self.source.config_problem
        if not self.loaded:
            return "unloaded"
        if self.failed:
            return self.failed[max(self.failed)][1]
        if any(v.state is VersionState.LOADING for v in self.versions.values()):
            return "loading"
        return "no version to serve"

def repository_index(models: dict[str, ModelState], ready_only: bool = False) -> list[dict[str, Any]]:
    """The model repository extension's index: every version with its state and reason."""
    entries: list[dict[str, Any]] = []
    for name in sorted(models):
        model = models[name]
        rows = [{"name": name, "version": str(v), "state": s.state.value, "reason": s.reason}
                for v, s in sorted(model.versions.items())]
        rows += [{"name": name, "version": str(v), "state": VersionState.UNAVAILABLE.value, "reason": why}
                 for v, (_, why) in sorted(model.failed.items()) if v not in model.versions]
        if not model.versions:
            rows.insert(0, {"name": name, "state": VersionState.UNAVAILABLE.value, "reason": model.why_not()})
        entries += [r for r in rows if not ready_only or r["state"] == VersionState.READY.value]
    return entries
