"""OpenAPI pieces both HTTP APIs document alike: the error body, the statuses they share,
and the model name and version in a path."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from service.engine.repository import NAME_PATTERN, VERSION_PATTERN


class ErrorResponse(BaseModel):
    error: str = Field(description="what was wrong, for a person")
    code: str = Field(description="stable machine-readable reason")
    details: list[dict[str, Any]] | None = Field(None, description="per-field problems, if any")
    request_id: str | None = None


# What the statuses both APIs share mean; each API adds its own 400/415 and the rest.
COMMON_ERROR_DESCRIPTIONS = {
    401: "API key required and missing or wrong",
    413: "Body larger than the limit",
    503: "Overloaded, loading or shutting down (see Retry-After)",
    504: "Not answered within the request timeout",
}


def error_responses(descriptions: dict[int, str], *statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for error ``statuses``, each an ErrorResponse body."""
    return {s: {"model": ErrorResponse, "description": descriptions[s]} for s in statuses}


def path_parameters(path: str, name: str = "name", version: str = "version") -> list[dict[str, Any]]:
    """The model name and version a path holds, for routes whose handler reads them itself
    (one handler serves the route with a version and the one without)."""
    params = []
    if "{" + name in path:
        params.append({"name": name, "in": "path", "required": True,
                       "schema": {"type": "string", "pattern": NAME_PATTERN}})
    if "{" + version in path:
        params.append({"name": version, "in": "path", "required": True,
                       "schema": {"type": "string", "pattern": VERSION_PATTERN}})
    return params
