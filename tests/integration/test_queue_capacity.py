"""``textserve_queue_capacity``: what the queue-near-full alert divides the queue depth by
(docker/prometheus/alerts.yml, TextserveQueueNearFull)."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi.testclient import TestClient

from tests.conftest import SHIPPED_VERSION


def gauge(page: str, name: str) -> float:
    """The model version's series (the shipped model's only one)."""
    match = re.search(rf'^{name}{{model="sentiment",version="{SHIPPED_VERSION}"}} (\S+)$', page, re.M)
    assert match, f"{name} is not on the page"
    return float(match.group(1))


def test_the_queue_capacity_is_the_setting_and_the_depth_is_measured_against_it(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(max_queue_size=512, max_texts_per_request=64)
    page = client.get("/metrics").text
    assert "# TYPE textserve_queue_capacity gauge" in page
    assert gauge(page, "textserve_queue_capacity") == 512
    assert client.post("/predict", json={"texts": ["fine"] * 64}).status_code == 200
    page = client.get("/metrics").text
    assert gauge(page, "textserve_queue_capacity") == 512  # set once, not consumed by traffic
    assert gauge(page, "textserve_queue_depth") == 0
