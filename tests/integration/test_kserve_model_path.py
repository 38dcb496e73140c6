"""The service as KServe's ServingRuntime starts it (k8s/kserve/servingruntime.yaml): the
model path comes from ``TEXTSERVE_MODEL_PATH=/mnt/models``, where the storage initializer
put a model directory (docs/kserve.md)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings


def test_the_runtime_serves_the_highest_version_found_under_mnt_models(
    bundle_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mnt = tmp_path / "mnt" / "models"
    shutil.copytree(bundle_copy.parent, mnt)  # storageUri: s3://bucket/models/sentiment/
    shutil.copytree(mnt / "1", mnt / "3")
    manifest = json.loads((mnt / "3" / "manifest.json").read_text())
    (mnt / "3" / "manifest.json").write_text(json.dumps({**manifest, "version": 3}))
    monkeypatch.setenv("TEXTSERVE_MODEL_PATH", str(mnt))  # tests/test_k8s_manifests.py: the runtime's value

    with TestClient(create_app(Settings())) as client:
        assert client.get("/v2/models/sentiment/versions/3/ready").status_code == 200
        assert client.get("/model").json()["version"] == 3
        reply = client.post("/predict", json={"texts": ["great crew, thank you"]})
        assert reply.status_code == 200
        assert reply.json()["model"] == {"name": "sentiment", "version": 3}
