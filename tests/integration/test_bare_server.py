"""The bench's bare server is a measuring stick: it must answer what the service answers."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bench.bare_server import build_app
from bench.corpus import load_texts
from bench.run import _sum_count
from service.app import create_app
from service.settings import Settings


def test_bare_server_gives_the_services_answers_and_counts_its_batches(shipped_bundle_dir: Path) -> None:
    settings = Settings(model_path=shipped_bundle_dir)
    texts = load_texts()[:24]
    with TestClient(build_app(settings)) as bare, TestClient(create_app(settings)) as service:
        got = bare.post("/predict", json={"texts": texts})
        want = service.post("/predict", json={"texts": texts})
        assert got.status_code == 200 and want.status_code == 200
        ours, theirs = got.json()["predictions"], want.json()["predictions"]
        assert [p["label"] for p in ours] == [p["label"] for p in theirs]
        for a, b in zip(ours, theirs, strict=True):
            assert a["scores"] == pytest.approx(b["scores"], abs=1e-6)
        metrics = bare.get("/metrics").text
        assert _sum_count(metrics, "textserve_batch_size") == (24.0, 1.0)
