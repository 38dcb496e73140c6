"""Loading a repository's version reads and hashes its files once: the check that verifies
it hands its bundle to the load."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import service.bundle.format as bundle_format
from service.app import create_app
from service.settings import Settings
from tests.conftest import make_repository


def test_a_version_is_hashed_once_when_it_loads(
    shipped_bundle_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_repository(tmp_path / "repo", shipped_bundle_dir, {"sentiment": [1], "other": [3]})
    hashed: Counter[Path] = Counter()
    sha256_file = bundle_format.sha256_file

    def counting(path: Path) -> str:
        hashed[path] += 1
        return sha256_file(path)

    monkeypatch.setattr(bundle_format, "sha256_file", counting)
    settings = Settings(model_repository=root, default_model="sentiment", access_log=False)
    with TestClient(create_app(settings)) as client:
        assert client.post("/models/other/predict", json={"texts": ["fine"]}).status_code == 200
    onnx = {path: n for path, n in hashed.items() if path.name == "model.onnx"}
    assert onnx == {root / "sentiment" / "1" / "model.onnx": 1, root / "other" / "3" / "model.onnx": 1}
