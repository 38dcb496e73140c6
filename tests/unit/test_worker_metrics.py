"""/metrics over several workers: every worker's page summed by the rules of
``service/worker_metrics.py``, through prometheus-client's parser and exposition."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from service.metrics import Metrics
from service.worker_metrics import SharedPages, merge, publish_every, retire

LABELS = ["negative", "neutral", "positive"]


def worker_metrics(requests: int, latency: float, queued: int, ready: bool) -> Metrics:
    m = Metrics()
    m.set_model("sentiment", 1, "abc", LABELS)
    m.track(lambda: queued, lambda: 0, lambda: ready)
    m.requests.labels("/predict", "POST", "200").inc(requests)
    m.request_seconds.labels("/predict").observe(latency)
    m.predictions_by_label["positive"].inc(requests)
    m.batch_size.observe(requests)
    return m


def samples(page: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(page.decode())
        for s in family.samples
    }


def value(page: bytes, sample: str, **labels: str) -> float:
    return samples(page)[(sample, frozenset(labels.items()))]


def test_one_page_comes_back_unchanged() -> None:
    page = worker_metrics(3, 0.01, 2, True).render()
    assert merge([(page.decode(), True)]) == page


def test_counters_and_histograms_add_up_gauges_follow_their_rules() -> None:
    a = worker_metrics(3, 0.002, 2, True).render().decode()
    b = worker_metrics(5, 0.3, 7, False).render().decode()
    page = merge([(a, True), (b, True)])
    assert value(page, "textserve_requests_total", route="/predict", method="POST", status="200") == 8
    assert value(page, "textserve_predictions_total", label="positive") == 8
    assert value(page, "textserve_request_duration_seconds_count", route="/predict") == 2
    assert value(page, "textserve_request_duration_seconds_bucket", route="/predict", le="0.0025") == 1
    assert value(page, "textserve_request_duration_seconds_bucket", route="/predict", le="+Inf") == 2
    assert value(page, "textserve_batch_size_sum") == 8
    assert value(page, "textserve_queue_depth") == 9  # texts queued: the sum
    assert value(page, "textserve_ready") == 0  # ready only when every worker is
    assert value(page, "textserve_model_info", name="sentiment", version="1", onnx_sha256="abc") == 1


def test_a_retired_workers_counts_stay_and_its_gauges_go() -> None:
    a = worker_metrics(3, 0.01, 2, True).render().decode()
    gone = worker_metrics(5, 0.01, 7, False).render().decode()
    page = merge([(a, True), (gone, False)])
    assert value(page, "textserve_requests_total", route="/predict", method="POST", status="200") == 8
    assert value(page, "textserve_queue_depth") == 2
    assert value(page, "textserve_ready") == 1


def test_workers_publish_to_a_shared_directory_and_any_of_them_renders_the_sum(tmp_path: Path) -> None:
    one = worker_metrics(3, 0.01, 1, True)
    two = worker_metrics(5, 0.01, 1, True)
    first = SharedPages(tmp_path, 101, one.render)
    second = SharedPages(tmp_path, 102, two.render)
    second.publish()
    one.requests.labels("/predict", "POST", "200").inc()  # the rendering worker's own count is live
    page = first.render()
    assert value(page, "textserve_requests_total", route="/predict", method="POST", status="200") == 9
    retire(tmp_path, 102)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["101.prom", "102.retired"]
    page = first.render()
    assert value(page, "textserve_requests_total", route="/predict", method="POST", status="200") == 9
    assert value(page, "textserve_queue_depth") == 1


async def test_a_worker_publishes_at_once_and_then_periodically(tmp_path: Path) -> None:
    metrics = worker_metrics(1, 0.01, 0, True)
    pages = SharedPages(tmp_path, 7, metrics.render)
    task = asyncio.create_task(publish_every(pages, seconds=0.02))
    await asyncio.sleep(0.005)
    assert (tmp_path / "7.prom").read_bytes() == metrics.render()
    metrics.requests.labels("/predict", "POST", "200").inc()
    await asyncio.sleep(0.06)
    task.cancel()
    assert (tmp_path / "7.prom").read_bytes() == metrics.render()
