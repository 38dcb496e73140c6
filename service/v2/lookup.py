"""Which model version a V2 request names, and the model repository's index, load and unload:
the one place both V2 transports (HTTP and gRPC) ask, in the protocol's terms (versions as
strings, "" or absent for the highest ready one), answered by the engine's repository.

Refusals are the engine's: UnknownModel (404, NOT_FOUND), InvalidName (400,
INVALID_ARGUMENT), NotReady (503, UNAVAILABLE), ControlRefused (409, FAILED_PRECONDITION),
LoadFailed (400, FAILED_PRECONDITION).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from service.engine.admission import UnknownModel
from service.engine.repository import check_version

if TYPE_CHECKING:
    from service.engine.engine import Engine
    from service.engine.served import ModelState


@dataclass(frozen=True)
class ServedModel:
    """The version that answers, and its model (whose ready versions metadata lists)."""

    name: str
    version: str
    labels: list[str]
    model: ModelState

    @property
    def versions(self) -> list[int]:
        """Every ready version of the model, highest first: read only for metadata, not on
        each inference request's path."""
        return [v.version for v in self.model.ready()]


def find_model(engine: Engine, name: str, version: str | None) -> ServedModel:
    """The version that answers for ``name`` at ``version`` (None or "": the highest ready)."""
    if not name:  # gRPC's default for a field not sent
        raise UnknownModel("unknown model ''")
    served = engine.route(name, parse_version(version))
    assert served.predictor is not None
    return ServedModel(served.name, str(served.version), list(served.predictor.labels), engine.model(name))


def parse_version(version: str | None) -> int | None:
    """A version as the protocol spells it (None or "": the highest ready)."""
    return check_version(version) if version else None


def repository_index(engine: Engine, ready_only: bool = False) -> list[dict[str, Any]]:
    """Every model of the repository, each version with its state (READY, LOADING,
    UNLOADING, UNAVAILABLE) and the reason."""
    return engine.control.index(ready_only)


async def load_model(engine: Engine, name: str) -> None:
    await engine.control.load(name)


async def unload_model(engine: Engine, name: str) -> None:
    await engine.control.unload(name)
