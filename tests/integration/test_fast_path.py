"""The lean ASGI /predict and the plain FastAPI route answer every request the same way."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from service.main import create_app
from service.settings import Settings

JSON = {"Content-Type": "application/json"}
REQUESTS: list[tuple[dict[str, str], bytes]] = [
    (JSON, b'{"texts": ["great flight!", "lost my bag", "", "\\u00e9t\\u00e9 \\ud83d\\ude00"]}'),
    (JSON, b'{"text": "delayed again"}'),
    ({"Content-Type": "application/json; charset=utf-8"}, b'{"texts": ["fine"]}'),
    ({"Content-Type": "application/vnd.api+json"}, b'{"texts": ["fine"]}'),
    (JSON, b'{"texts": ["' + b"word " * 60 + b'"]}'),
    (JSON, b'{"texts": ['),
    (JSON, b""),
    (JSON, b"[1]"),
    (JSON, b'{"texts": [1, null, {}]}'),
    (JSON, b'{"texts": [], "x": 1}'),
    (JSON, b'{"texts": ["' + b"x" * 300 + b'"]}'),
    (JSON, b'{"texts": ["a", "b", "c", "d", "e", "f"]}'),
    (JSON, b'{"texts": ["' + b"y" * 3000 + b'"]}'),
    ({"Content-Type": "text/plain"}, b'{"texts": ["a"]}'),
    ({}, b'{"texts": ["a"]}'),
    ({**JSON, "Authorization": "Bearer k"}, b'{"texts": ["a"]}'),
]
LIMITS = {"max_texts_per_request": 5, "max_text_chars": 200, "max_body_bytes": 2048}


Answer = tuple[int, dict[str, str], object]


def answers_from(client: httpx.Client, authorization: str | None = None) -> list[Answer]:
    """Status, the headers that matter and the body of each of REQUESTS (with
    ``authorization`` on all of them if given); an error's request id must be the header's."""
    out = []
    for headers, body in REQUESTS:
        sent = {**headers, "Authorization": authorization} if authorization else headers
        r = client.post("/predict", headers=sent, content=body)
        payload = r.json()
        if isinstance(payload, dict):
            assert payload.pop("request_id", r.headers["x-request-id"]) == r.headers["x-request-id"]
        kept = {k: v for k, v in r.headers.items() if k in ("content-type", "retry-after", "www-authenticate")}
        out.append((r.status_code, kept, payload))
    return out


def answers(app_settings: Settings) -> list[Answer]:
    with TestClient(create_app(app_settings)) as client:
        return answers_from(client)


@pytest.mark.parametrize("api_key", [None, "k"])
def test_fast_and_plain_paths_give_identical_answers(shipped_bundle_dir: Path, api_key: str | None) -> None:
    base = {"model_path": shipped_bundle_dir, "api_key": api_key, **LIMITS}
    fast = answers(Settings(fast_path=True, **base))  # type: ignore[arg-type]
    plain = answers(Settings(fast_path=False, **base))  # type: ignore[arg-type]
    assert [a[0] for a in fast] == [a[0] for a in plain]
    for got, want in zip(fast, plain, strict=True):
        assert got == want
    statuses = {a[0] for a in fast}
    assert statuses >= ({200, 400, 413, 415, 422} if api_key is None else {200, 401})
