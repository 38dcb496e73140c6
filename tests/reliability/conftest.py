"""Fixtures for the abuse tests, and a record of the figures they measure.

Every measured figure (fuzz cases, bad requests, 503 latency, RSS, in-flight at SIGTERM...)
goes through ``figures`` and is printed at the end of the run and written to
``$TMPDIR/textserve-reliability-figures.json``, so docs/reliability.md can quote a real run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.server import ServerProcess

FIGURES: dict[str, Any] = {}
FIGURES_FILE = Path(os.environ.get("TMPDIR", "/tmp")) / "textserve-reliability-figures.json"


@pytest.fixture
def figures() -> dict[str, Any]:
    return FIGURES


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.section("reliability figures")
    for key in sorted(FIGURES):
        terminalreporter.write_line(f"{key}: {FIGURES[key]}")
    FIGURES_FILE.write_text(json.dumps(FIGURES, indent=2, sort_keys=True, default=str))


@pytest.fixture
def start_server(shipped_bundle_dir: Path) -> Iterator[Callable[..., ServerProcess]]:
    """``start_server(**settings)`` -> a started real server process, killed after the test."""
    servers: list[ServerProcess] = []

    def factory(model_path: Path | None = None, **settings: object) -> ServerProcess:
        server = ServerProcess(model_path or shipped_bundle_dir, **settings)
        servers.append(server)
        return server.start()

    yield factory
    for server in servers:
        server.stop()
