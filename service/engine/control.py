"""Which model versions are loaded, kept in line with the repository and the control mode
(Triton's names and meanings): ``none`` loads at start and never changes; ``poll`` rescans
every ``TEXTSERVE_REPOSITORY_POLL_S``, loading new versions and unloading removed ones;
``explicit`` loads at start, then changes only through ``load`` and ``unload``.

A model serves its policy's choice among the versions that verify and load. A new version
loads (in a thread) while the old one serves; once it is warm, requests go to it, and only
then is the old one closed, so at most one extra version is in memory during a swap. A
version that fails (checksums, manifest, tokenizer, onnxruntime, signature) is refused with
one log line and ``textserve_model_load_failures_total``, shows as UNAVAILABLE with the
reason, and is not tried again until its files change; the serving version keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from service.bundle.format import MANIFEST, Bundle, BundleError
from service.bundle.runtime import ModelRuntime
from service.engine import repository
from service.engine.admission import ControlRefused, LoadFailed, UnknownModel
from service.engine.repository import (
    Fingerprint,
    ModelDir,
    Verifier,
    check_name,
    choose_default,
    read_model_dir,
    scan,
    single_model_dir,
)
from service.engine.served import ModelState, ServedVersion, VersionState, repository_index
from service.observability.metrics import Metrics
from service.settings import Settings

log = logging.getLogger("textserve")


class ModelControl:
    def __init__(
        self, settings: Settings, metrics: Metrics, runtime: ModelRuntime | None = None, tracing: Any = None
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.tracing = tracing  # service.observability.tracing.Tracing, when tracing is on
        self.mode = settings.model_control_mode
        self.models: dict[str, ModelState] = {}
        self.default = ""
        self._verifier = Verifier()
        self._preloaded = runtime
        self._serving = False  # on the serving event loop: loaded versions start at once
        self._lock: asyncio.Lock | None = None
        self._poller: asyncio.Task[None] | None = None

    # -- what is on disk ----------------------------------------------------------------------

    def sources(self) -> dict[str, ModelDir]:
        """The models on disk now. ``TEXTSERVE_MODEL_PATH`` (no repository) is one model: at
        start its newest version or nothing (as it always was); later looks (poll mode) see
        every version, so that a bad new one leaves the serving one alone."""
        root = self.settings.model_repository
        if root is not None:
            return scan(root)
        if not self.models:
            model = single_model_dir(self.settings.model_path)
        else:
            known = self.models[self.default].source
            model = read_model_dir(known.path)
            model.name = self.default
            if (known.path / MANIFEST).is_file():  # one bundle: it stays what it is
                model.versions = dict(known.versions)
        return {model.name: model}

    # -- start and stop -----------------------------------------------------------------------

    async def load_initial(self) -> None:
        """Load every model the mode asks for at start; BundleError (one line) if the default
        model then has nothing to serve. May run on a loop of its own before serving."""
        sources = await asyncio.to_thread(self.sources)
        self.default = choose_default(sorted(sources), self.settings.default_model)
        wanted = set(sources)
        if self.mode == "explicit" and self.settings.load_models:
            unknown = sorted(set(self.settings.load_models) - wanted)
            if unknown:
                raise BundleError(f"TEXTSERVE_LOAD_MODELS names {unknown}, not in the repository", "config")
            wanted = set(self.settings.load_models) | {self.default}
        self.models = {name: ModelState(name, source) for name, source in sources.items()}
        default = self.models[self.default]
        # The default model first: if it cannot serve, its reason is the one line said.
        await self._sync(default, sources[self.default], patient=False, quiet=True)
        if not default.versions:  # its last refusal says why, else what is missing
            why = default.why_not()
            raise BundleError(why if default.failed else f"model {self.default!r} has nothing to serve: {why}",
                              "config")
        for version, (_, problem) in default.failed.items():
            log.warning("model version refused", extra={"model": default.name, "version": version, "error": problem})
        for name in sorted(wanted - {self.default}):
            await self._sync(self.models[name], sources[name], patient=False)

    def start(self) -> None:
        """On the serving loop: start the loaded versions, and the poller in poll mode."""
        self._lock = asyncio.Lock()
        self._serving = True
        for model in self.models.values():
            for served in model.versions.values():
                if served.state is VersionState.LOADING and served.predictor is not None:
                    self._start(served)
        if self.mode == "poll":
            self._poller = asyncio.get_running_loop().create_task(self._poll_forever(), name="repository-poller")

    async def stop(self) -> None:
        """Stop polling and close every version (a later start reads the repository again)."""
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None
        for model in self.models.values():
            for version in sorted(model.versions):
                await self._unload(model, version)
        self.models.clear()
        self._serving = False

    # -- the API (explicit mode) ---------------------------------------------------------------

    def _check_control(self) -> None:
        if self.mode != "explicit":
            raise ControlRefused(
                f"the model control mode is {self.mode!r}: models are loaded "
                + ("by the repository poller" if self.mode == "poll" else "once, at start")
                + "; set TEXTSERVE_MODEL_CONTROL_MODE=explicit to load and unload through the API"
            )
        if self.settings.workers > 1:
            raise ControlRefused(
                f"with TEXTSERVE_WORKERS={self.settings.workers} each worker process holds its own models and a"
                " load or unload would reach only the worker that answered: run one worker per process"
                " (scale with replicas) to use the API, or use poll mode"
            )

    async def load(self, name: str) -> None:
        """Load (or reload) a model of the repository; LoadFailed if nothing of it can serve."""
        check_name(name)
        self._check_control()
        sources = await asyncio.to_thread(self.sources)
        if name not in sources:
            raise UnknownModel(f"no model named {name!r} in the repository")
        assert self._lock is not None
        async with self._lock:
            model = self.models.setdefault(name, ModelState(name, sources[name]))
            await self._sync(model, sources[name], patient=False)
            if not model.ready():
                raise LoadFailed(f"model {name!r} could not be loaded: {model.why_not()}")

    async def unload(self, name: str) -> None:
        check_name(name)
        self._check_control()
        model = self.models.get(name)
        if model is None:
            raise UnknownModel(f"no model named {name!r} in the repository")
        assert self._lock is not None
        async with self._lock:
            model.loaded = False
            for version in sorted(model.versions):
                await self._unload(model, version)

    # -- keeping versions in line ---------------------------------------------------------------

    async def _poll_forever(self) -> None:
        assert self._lock is not None
        while True:
            await asyncio.sleep(self.settings.repository_poll_s)
            try:
                sources = await asyncio.to_thread(self.sources)
                async with self._lock:
                    await self._rescan(sources)
            except Exception:  # the poller must outlive any one bad look at the disk
                log.exception("repository poll failed")

    async def _rescan(self, sources: dict[str, ModelDir]) -> None:
        for name in [n for n in self.models if n not in sources]:
            model = self.models.pop(name)
            for version in sorted(model.versions):
                await self._unload(model, version)
            log.info("model removed", extra={"model": name})
        for name, source in sources.items():
            model = self.models.setdefault(name, ModelState(name, source))
            await self._sync(model, source, patient=True)

    async def _candidates(
        self, model: ModelState, source: ModelDir, patient: bool, quiet: bool
    ) -> dict[int, Bundle | None]:
        """The versions that may serve: loaded ones still on disk, and those that verify
        (with the bundle this look verified, if it read one). A version still changing (a
        copy in progress) is left for the next look when patient."""
        found: dict[int, Bundle | None] = {}
        for version, path in source.versions.items():
            served = model.versions.get(version)
            if served is not None and served.state is VersionState.READY:
                found[version] = None
                continue
            check = await asyncio.to_thread(self._verifier.check, path, version)
            if check is None:
                continue
            failed = model.failed.get(version)
            if failed is not None and failed[0] == check.fingerprint:
                continue
            if check.problem is None:
                found[version] = check.bundle
            elif check.settled or not patient:
                self._refuse(model, version, check.fingerprint, check.problem, check.reason, quiet)
        return found

    async def _sync(self, model: ModelState, source: ModelDir, patient: bool, quiet: bool = False) -> None:
        model.source = source
        model.loaded = True
        policy = source.policy
        if policy is None:  # a bad config.json: the model is unavailable, with the reason
            for version in sorted(model.versions):
                await self._unload(model, version)
            return
        candidates = await self._candidates(model, source, patient, quiet)
        targets = policy.choose(list(candidates))
        while missing := [v for v in targets if v not in model.versions]:
            version = max(missing)
            if not await self._load(model, version, source.versions[version], candidates[version], quiet):
                del candidates[version]
                targets = policy.choose(list(candidates))
                continue
            surplus = [v for v in model.versions if v not in targets]
            if surplus:  # at most one version more than the policy's in memory
                await self._unload(model, min(surplus))
        for version in sorted(v for v in model.versions if v not in targets):
            await self._unload(model, version)

    async def _load(
        self, model: ModelState, version: int, path: Path, verified: Bundle | None, quiet: bool = False
    ) -> bool:
        """Open ``version`` (``verified``: its bundle, already checked) and, when serving, start it."""
        served = ServedVersion(model.name, version, path)
        model.versions[version] = served
        preloaded = self._preloaded if self._preloaded and self._preloaded.bundle.path == path else None
        try:
            await asyncio.to_thread(served.open, self.settings, preloaded, verified)
        except BundleError as exc:
            del model.versions[version]
            fingerprint = await asyncio.to_thread(repository.fingerprint, path)
            self._refuse(model, version, fingerprint, str(exc), exc.reason, quiet)
            return False
        model.failed.pop(version, None)
        self.metrics.model_load_seconds.labels(model.name).observe(served.loaded_seconds)
        if self._serving:
            self._start(served)
        log.info("model loaded", extra={"model": model.name, "version": version,
                                        "seconds": round(served.loaded_seconds, 3)})
        return True

    def _start(self, served: ServedVersion) -> None:
        assert served.predictor is not None
        batcher = served.predictor.batcher
        tracer = self.tracing.for_version(served.name, served.version) if self.tracing is not None else None
        served.start(self.metrics.add_version(
            served.name, served.version, served.onnx_sha256, served.predictor.labels, lambda: batcher.queued_items,
            batcher.max_queue_size,
        ), tracer)

    async def _unload(self, model: ModelState, version: int) -> None:
        served = model.versions[version]
        sha = served.onnx_sha256 if served.predictor is not None else ""
        await served.close()
        del model.versions[version]
        if served.metrics is not None:
            self.metrics.remove_version(served.metrics, sha)
        log.info("model unloaded", extra={"model": model.name, "version": version})

    def _refuse(
        self, model: ModelState, version: int, fingerprint: Fingerprint, problem: str, reason: str, quiet: bool
    ) -> None:
        """A version that will not serve; ``quiet`` leaves the log line to the caller."""
        model.failed[version] = (fingerprint, problem)
        self.metrics.load_failed(model.name, reason)
        if not quiet:
            log.warning("model version refused", extra={"model": model.name, "version": version,
                                                        "reason": reason, "error": problem})

    def index(self, ready_only: bool = False) -> list[dict[str, Any]]:
        return repository_index(self.models, ready_only)
