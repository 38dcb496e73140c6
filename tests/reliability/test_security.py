"""Security basics: the API key (constant-time compare, never logged, one 401 for missing and
wrong), error bodies that echo nothing and leak nothing, and documented request limits."""

from __future__ import annotations

import hmac
import importlib.metadata
import platform
import re
import secrets
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from tests.conftest import REPO, SHIPPED_MODEL
from tests.e2e.server import ServerProcess
from tests.reliability.helpers import LEAKS

pytestmark = pytest.mark.reliability
JSON = {"Content-Type": "application/json"}
BODY = {"texts": ["hello"]}


@pytest.fixture
def keyed_client() -> Any:
    with TestClient(create_app(Settings(model_path=SHIPPED_MODEL, api_key="k3y-" + "x" * 28))) as client:
        yield client


def test_the_api_key_is_compared_with_compare_digest(
    keyed_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("service.asgi.checks.hmac.compare_digest", spy)
    key = "k3y-" + "x" * 28
    for supplied, status in ((key, 200), (key[:-1] + "y", 401), ("short", 401)):
        response = keyed_client.post("/predict", json=BODY, headers={"Authorization": f"Bearer {supplied}"})
        assert response.status_code == status
    assert [a for a, _ in calls] == [key.encode(), (key[:-1] + "y").encode(), b"short"]
    # And nothing else in the service compares a secret with == (a reviewer's check, automated).
    for path in (REPO / "service").glob("*.py"):
        assert not re.search(r"api_key\w*\s*[!=]=", path.read_text()), path.name


def test_missing_and_wrong_keys_get_the_same_401(keyed_client: TestClient) -> None:
    key = "k3y-" + "x" * 28
    variants: list[dict[str, str]] = [
        {}, {"Authorization": ""}, {"Authorization": "Bearer"}, {"Authorization": "Bearer "},
        {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {key[:-1]}"},
        {"Authorization": f"Bearer {key}x"}, {"Authorization": f"Bearer {key.upper()}"},
        {"Authorization": f"Basic {key}"}, {"Authorization": key}, {"X-API-Key": key},
    ]
    seen = set()
    for headers in variants:
        response = keyed_client.post("/predict", json=BODY, headers=headers)
        assert response.status_code == 401
        body = response.json()
        body.pop("request_id")
        kept = {k: v for k, v in response.headers.items() if k not in ("x-request-id", "date")}
        seen.add((repr(sorted(body.items())), repr(sorted(kept.items()))))
    assert len(seen) == 1, seen
    good = keyed_client.post("/predict", json=BODY, headers={"Authorization": f"Bearer {key}"})
    assert good.status_code == 200


def test_the_api_key_never_reaches_logs_pages_or_errors(start_server: Callable[..., ServerProcess]) -> None:
    key = "sk-" + secrets.token_hex(16)
    server = start_server(api_key=key, log_level="debug", access_log="true")
    near_misses = [key, key[:-1], key + "0", key.upper(), key[3:]]
    pages = []
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for supplied in near_misses:
            for body in (BODY, {"txts": [key]}):
                auth = {"Authorization": f"Bearer {supplied}"}
                pages.append(client.post("/predict", json=body, headers=auth))
        auth = {**JSON, "Authorization": f"Bearer {key}"}
        pages.append(client.post("/predict", content=b"{", headers=auth))
        for path in ("/metrics", "/openapi.json", "/model", "/health", "/docs"):
            pages.append(client.get(path))
    assert [p.status_code for p in pages[:2]] == [200, 422]
    server.signal(signal.SIGTERM)
    assert server.wait(30) == 0
    logs = server.logs()
    assert '"status":401' in logs and '"status":200' in logs  # the access log did record them
    for text in [logs, *(p.text for p in pages), *(str(p.headers) for p in pages)]:
        assert key not in text and key[3:] not in text


def test_a_bad_setting_next_to_a_key_does_not_print_the_key() -> None:
    import os
    import subprocess
    import sys

    key = "sk-" + secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEXTSERVE_")}
    env.update({"TEXTSERVE_API_KEY": key, "TEXTSERVE_MAX_BATCH_SIZE": "lots",
                "TEXTSERVE_MODEL_PATH": str(SHIPPED_MODEL)})
    result = subprocess.run([sys.executable, "-m", "service"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert "TEXTSERVE_MAX_BATCH_SIZE" in result.stderr and key not in result.stderr + result.stdout


MARK = "<script>alert('x')</script>"


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status"),
    [
        ("POST", "/predict", JSON, b'{"texts": ["a"], "' + MARK.encode() + b'": 1}', 422),
        ("POST", "/predict", JSON, b'{"texts": ["a"], "x": {"' + MARK.encode() + b'": 1}}', 422),
        ("POST", "/predict", JSON, b'{"' + MARK.encode() * 50 + b'": 1}', 422),
        ("POST", "/predict", JSON, b'{"texts": ["' + MARK.encode() * 20 + b'"]}', 422),
        ("POST", "/predict", JSON, b'{"texts": [' + MARK.encode() + b"]}", 400),
        ("POST", "/predict", JSON, b'{"texts": ["a"]} ' + MARK.encode(), 400),
        ("POST", "/predict", JSON, b'{"text": {"' + MARK.encode() + b'": "' + MARK.encode() + b'"}}', 422),
        ("POST", "/predict", {"Content-Type": "text/" + MARK}, b'{"texts": ["a"]}', 415),
        ("POST", "/predict", {"Content-Type": MARK}, b'{"texts": ["a"]}', 415),
        ("POST", "/predict?q=" + MARK, JSON, b'{"texts": []}', 422),
        ("GET", "/" + MARK, {}, None, 404),
        ("DELETE", "/predict", {"X-Request-ID": MARK}, None, 405),
    ],
)
def test_error_bodies_never_echo_request_content(
    method: str, path: str, headers: dict[str, str], body: bytes | None, status: int,
) -> None:
    settings = Settings(model_path=SHIPPED_MODEL, max_text_chars=50)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        response = client.request(method, path, headers=headers, content=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    for fragment in ("<script", "alert(", "script>"):
        assert fragment not in response.text
        assert fragment not in str(response.headers)


def versions() -> list[str]:
    found = [platform.python_version()]
    for dist in ("fastapi", "starlette", "uvicorn", "onnxruntime", "pydantic", "pydantic-core", "numpy"):
        found.append(importlib.metadata.version(dist))
    return found


def test_error_bodies_carry_no_traceback_path_or_version(
    start_server: Callable[..., ServerProcess], shipped_bundle_dir: Path,
) -> None:
    server = start_server()
    raw = [
        ("POST", "/predict", JSON, b"{"), ("POST", "/predict", {}, b"{}"), ("POST", "/predict", JSON, b"[]"),
        ("POST", "/predict", JSON, b'{"texts": ["' + b"x" * 6000 + b'"]}'), ("GET", "/predict", {}, None),
        ("GET", "/nowhere", {}, None), ("POST", "/predict", JSON, b"\xff"),
        ("POST", "/predict", JSON, b'{"texts": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
    ]
    with httpx.Client(base_url=server.url, timeout=10) as client:
        responses = [client.request(m, p, headers=h, content=b) for m, p, h, b in raw]
    for response in responses:
        assert 400 <= response.status_code < 500
        assert "server" not in response.headers
        text = response.text + str(response.headers)
        for leak in [*LEAKS, str(shipped_bundle_dir), *versions()]:
            assert leak not in text, (leak, text)


def test_an_internal_error_says_nothing_internal(monkeypatch: pytest.MonkeyPatch) -> None:
    with TestClient(create_app(Settings(model_path=SHIPPED_MODEL)), raise_server_exceptions=False) as client:
        svc = client.app.state.engine  # type: ignore[attr-defined]

        def broken(ids: Any) -> Any:
            raise RuntimeError(f"onnxruntime {versions()[4]} failed in {REPO}/service/runtime.py")

        monkeypatch.setattr(svc.route(None, None).predictor.runtime, "predict", broken)
        response = client.post("/predict", json=BODY)
    assert response.status_code == 500
    body = response.json()
    assert set(body) == {"error", "code", "request_id"} and body["code"] == "internal_error"
    for leak in [*LEAKS, str(REPO), *versions()]:
        assert leak not in response.text


def readme_settings() -> dict[str, str]:
    table = {}
    for line in (REPO / "README.md").read_text().splitlines():
        found = re.match(r"^\| `TEXTSERVE_([A-Z_]+)`[^|]*\| `?([^|`]*)`? \|", line)
        if found:
            table[found.group(1).lower()] = found.group(2).strip()
    return table


def test_request_limits_are_bounded_settings_documented_in_the_readme() -> None:
    documented = readme_settings()
    defaults = Settings()
    assert set(documented) == set(Settings.model_fields), set(documented) ^ set(Settings.model_fields)
    limits = {
        "max_body_bytes": (1024, 16 * 1024 * 1024), "max_texts_per_request": (1, 4096),
        "max_text_chars": (1, 100_000), "max_queue_size": (1, 100_000), "request_timeout_s": (0.001, 120),
    }
    for name, (low, high) in limits.items():
        value = getattr(defaults, name)
        assert low <= value <= high, (name, value)
        assert float(documented[name]) == value, (name, documented[name], value)
    # The worst accepted request is bounded too: texts x chars fits the body limit's order.
    assert defaults.max_texts_per_request * defaults.max_text_chars <= 4 * defaults.max_body_bytes
