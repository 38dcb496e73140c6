"""Shared fixtures: the shipped bundle, and copies of it that tests may damage."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"
SHIPPED_MODEL = MODELS / "sentiment"
# The shipped bundle's version (the highest under models/sentiment), as the V2 protocol spells it.
SHIPPED_VERSION = str(max(int(p.name) for p in SHIPPED_MODEL.iterdir() if p.name.isdigit()))


@pytest.fixture(scope="session")
def shipped_bundle_dir() -> Path:
    from service.bundle.format import resolve_bundle_dir

    return resolve_bundle_dir(SHIPPED_MODEL)


@pytest.fixture
def bundle_copy(tmp_path: Path, shipped_bundle_dir: Path) -> Path:
    """A private copy of the shipped bundle as version 1: ``tmp_path/sentiment/1``, its
    manifest saying so, whichever version is shipped."""
    target = tmp_path / "sentiment" / "1"
    shutil.copytree(shipped_bundle_dir, target)
    manifest = json.loads((target / "manifest.json").read_text())
    (target / "manifest.json").write_text(json.dumps({**manifest, "version": 1}))
    return target


@pytest.fixture(autouse=True)
def _no_textserve_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from the environment: tests start from the documented defaults."""
    import os

    for name in list(os.environ):
        if name.startswith("TEXTSERVE_") or name in ("HOST", "PORT"):
            monkeypatch.delenv(name)


def publish(bundle: Path, model_dir: Path, version: int, damage: Callable[[Path], None] | None = None) -> Path:
    """A copy of ``bundle`` as ``version`` of ``model_dir``, written aside and then renamed
    into place (the documented way to publish); ``damage`` alters it before the rename."""
    staging = model_dir / f".staging-{version}"
    model_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(bundle, staging)
    manifest = json.loads((staging / "manifest.json").read_text())
    manifest["version"] = version
    (staging / "manifest.json").write_text(json.dumps(manifest))
    if damage is not None:
        damage(staging)
    return staging.rename(model_dir / str(version))


def make_repository(root: Path, bundle: Path, models: dict[str, list[int]]) -> Path:
    for name, versions in models.items():
        for version in versions:
            publish(bundle, root / name, version)
    return root
