"""Small JSON answers for the routes of both HTTP APIs."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

JSON = "application/json"
# What both APIs' documentation shows as example texts.
EXAMPLE_TEXTS = ["@united thanks for the quick rebooking, great crew!", "my flight got cancelled again"]


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type=JSON)


def empty(status: int) -> Response:
    return Response(status_code=status)
