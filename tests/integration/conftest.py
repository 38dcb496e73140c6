from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.main import create_app
from service.settings import Settings


@pytest.fixture(params=[True, False], ids=["fast-path", "plain-path"])
def make_client(request: pytest.FixtureRequest, shipped_bundle_dir: Path) -> Iterator[Callable[..., TestClient]]:
    """``make_client(**settings)`` -> a started TestClient on the shipped model.

    Every test using it runs twice: with /predict on the lean ASGI path and on the plain
    FastAPI route, which must behave the same."""
    clients: list[TestClient] = []

    def factory(**overrides: Any) -> TestClient:
        settings = Settings(model_path=shipped_bundle_dir, **{"fast_path": request.param, **overrides})
        client = TestClient(create_app(settings), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()
