"""Which model a request names, and what the model repository holds: the one place both
transports (HTTP V2 and gRPC) ask, so that a repository of several models and versions can
answer here instead of the engine's one served model.

Today the engine serves one model: its name and version are the only ones found, the index
lists it alone, and load/unload requests are refused with :class:`ModelControlRefused`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from service.engine.admission import NotReady

if TYPE_CHECKING:
    from service.engine.engine import Engine


class UnknownModel(LookupError):
    """No such model or version; the message is safe to show the client."""


class ModelControlRefused(Exception):
    """Loading or unloading models on request is not possible; the message says why."""


@dataclass(frozen=True)
class ServedModel:
    name: str
    version: str
    labels: list[str]


@dataclass(frozen=True)
class IndexEntry:
    name: str
    version: str
    state: str
    """As Triton's repository index says it: READY, UNAVAILABLE, LOADING, UNLOADING."""
    reason: str = ""


def find_model(engine: Engine, name: str, version: str | None) -> ServedModel:
    """The model ``name`` (at ``version``, when one is given: None or "" means the served
    one); NotReady while nothing is loaded, UnknownModel for any other name or version."""
    manifest = engine.manifest
    if manifest is None:
        raise NotReady("model is not loaded yet")
    served = str(manifest.version)
    if name != manifest.name:
        raise UnknownModel(f"unknown model; the served model is {manifest.name!r}")
    if version and version != served:
        raise UnknownModel(f"unknown version of model {manifest.name!r}; the served version is {served}")
    return ServedModel(manifest.name, served, list(manifest.labels))


def repository_index(engine: Engine) -> list[IndexEntry]:
    """Every model the repository holds, with its state."""
    manifest = engine.manifest
    if manifest is None:
        return []
    state = "READY" if engine.admission.ready else "UNAVAILABLE"
    return [IndexEntry(manifest.name, str(manifest.version), state)]


def load_model(engine: Engine, name: str) -> None:
    raise ModelControlRefused(_single_model(engine, "loaded"))


def unload_model(engine: Engine, name: str) -> None:
    raise ModelControlRefused(_single_model(engine, "unloaded"))


def _single_model(engine: Engine, what: str) -> str:
    manifest = engine.manifest
    served = f" ({manifest.name!r}, version {manifest.version})" if manifest is not None else ""
    return (
        f"models cannot be {what} on request: this server serves a single model{served},"
        " chosen by TEXTSERVE_MODEL_PATH at start"
    )
