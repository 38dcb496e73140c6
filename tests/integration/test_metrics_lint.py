"""The /metrics page passes Prometheus's own linter."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from fastapi.testclient import TestClient

PROMTOOL = shutil.which("promtool")


@pytest.mark.skipif(PROMTOOL is None and not os.environ.get("CI"), reason="promtool not installed (apt-get install prometheus)")
def test_metrics_page_passes_promtool_check_metrics(client: TestClient) -> None:
    assert PROMTOOL is not None, ".ci/run installs promtool (Debian package prometheus)"
    client.post("/predict", json={"texts": ["great flight", "lost bag"]})
    client.post("/predict", json={"texts": []})
    client.get("/nope")
    page = client.get("/metrics").text
    result = subprocess.run([PROMTOOL, "check", "metrics"], input=page, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == ""  # no lint warnings either
