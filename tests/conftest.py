"""Shared fixtures: the shipped bundle, and copies of it that tests may damage."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"
SHIPPED_MODEL = MODELS / "sentiment"


@pytest.fixture(scope="session")
def shipped_bundle_dir() -> Path:
    from service.bundle.format import resolve_bundle_dir

    return resolve_bundle_dir(SHIPPED_MODEL)


@pytest.fixture
def bundle_copy(tmp_path: Path, shipped_bundle_dir: Path) -> Path:
    """A private copy of the shipped bundle at ``tmp_path/sentiment/1``."""
    target = tmp_path / "sentiment" / "1"
    shutil.copytree(shipped_bundle_dir, target)
    return target


@pytest.fixture(autouse=True)
def _no_textserve_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from the environment: tests start from the documented defaults."""
    import os

    for name in list(os.environ):
        if name.startswith("TEXTSERVE_") or name in ("HOST", "PORT"):
            monkeypatch.delenv(name)
