"""The app with the real shipped bundle, through its lifespan (``with TestClient(app)``)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.bundle.format import load_bundle
from service.bundle.runtime import ModelRuntime
from service.settings import Settings
from tests.conftest import SHIPPED_VERSION

TEXTS = [
    "@united thanks for the quick rebooking, great crew!",
    "my flight got cancelled again and nobody answers the phone",
    "The car drives itself down the road",
    "",
    "\U0001f600\U0001f600 love it",
]
LABELS = ["negative", "neutral", "positive"]


def direct_probabilities(bundle_dir: Path, texts: list[str]) -> np.ndarray:
    bundle = load_bundle(bundle_dir)
    return ModelRuntime(bundle).predict(bundle.tokenizer.encode(texts))


def test_predict_answers_every_text_in_order_and_agrees_with_onnxruntime(
    client: TestClient, shipped_bundle_dir: Path
) -> None:
    response = client.post("/predict", json={"texts": TEXTS})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["model"] == {"name": "sentiment", "version": int(SHIPPED_VERSION)}
    predictions = body["predictions"]
    assert len(predictions) == len(TEXTS)
    expected = direct_probabilities(shipped_bundle_dir, TEXTS)
    for prediction, row in zip(predictions, expected, strict=True):
        assert list(prediction["scores"]) == LABELS
        scores = np.array([prediction["scores"][label] for label in LABELS])
        assert scores.sum() == pytest.approx(1.0, abs=1e-5)
        np.testing.assert_allclose(scores, row, atol=1e-5)
        assert prediction["label"] == LABELS[int(row.argmax())]
        assert prediction["truncated"] is False


def test_obvious_texts_get_the_obvious_labels(client: TestClient) -> None:
    texts = ["thank you so much, awesome service!", "worst airline ever, lost my bag, delayed 5 hours"]
    labels = [p["label"] for p in client.post("/predict", json={"texts": texts}).json()["predictions"]]
    assert labels == ["positive", "negative"]


def test_single_text_form(client: TestClient) -> None:
    many = client.post("/predict", json={"texts": [TEXTS[0]]}).json()
    one = client.post("/predict", json={"text": TEXTS[0]}).json()
    assert one == many


def test_texts_longer_than_max_length_are_truncated_and_flagged(client: TestClient) -> None:
    long_text = " ".join(["delayed"] * 100)
    body = client.post("/predict", json={"texts": [long_text, "delayed"]}).json()
    assert [p["truncated"] for p in body["predictions"]] == [True, False]


def test_a_request_larger_than_the_batch_is_split_and_reassembled(
    make_client: Callable[..., TestClient], shipped_bundle_dir: Path
) -> None:
    client = make_client(max_batch_size=3)
    texts = [f"flight {i} was {'great' if i % 2 else 'awful'}" for i in range(10)]
    predictions = client.post("/predict", json={"texts": texts}).json()["predictions"]
    expected = direct_probabilities(shipped_bundle_dir, texts)
    got = np.array([[p["scores"][label] for label in LABELS] for p in predictions])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    metrics = client.get("/metrics").text
    assert metric_value(metrics, "textserve_batch_size_count") == 4  # 3 + 3 + 3 + 1


def test_health_is_503_before_the_lifespan_and_200_after(shipped_bundle_dir: Path) -> None:
    app = create_app(Settings(model_path=shipped_bundle_dir))
    outside = TestClient(app)  # no `with`: the lifespan has not run, nothing is loaded
    response = outside.get("/health")
    assert response.status_code == 503
    assert response.json() == {"status": "loading"}
    assert outside.get("/health/live").status_code == 200
    not_ready = outside.post("/predict", json={"texts": ["hi"]})
    assert not_ready.status_code == 503
    assert not_ready.json()["code"] == "not_ready"
    with TestClient(app) as client:
        ready = client.get("/health")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "model": {"name": "sentiment", "version": int(SHIPPED_VERSION)}}


def metric_value(page: str, metric: str, **labels: str) -> float:
    """The sum of the samples of ``metric`` with these labels on the exposition page (0 if none)."""
    total = 0.0
    for line in page.splitlines():
        if line.startswith("#"):
            continue
        match = re.match(r"^([a-zA-Z_:][\w:]*)(\{.*\})? (\S+)$", line)
        if not match or match.group(1) != metric:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(3))
    return total


def test_metrics_count_traffic_batches_labels_and_name_the_model(
    client: TestClient, shipped_bundle_dir: Path
) -> None:
    for _ in range(3):
        client.post("/predict", json={"texts": TEXTS[:2]})
    client.post("/predict", json={"texts": []})
    for _ in range(5):
        client.get("/health")
        client.get("/health/live")
    page = client.get("/metrics")
    assert page.headers["content-type"].startswith("text/plain")
    text = page.text
    assert metric_value(text, "textserve_requests_total", route="/predict", status="200") == 3
    assert metric_value(text, "textserve_requests_total", route="/predict", status="200", model="sentiment",
                        version=SHIPPED_VERSION) == 3
    assert metric_value(text, "textserve_requests_total", route="/predict", status="422", model="", version="") == 1
    assert "route=\"/health\"" not in text and "route=\"/metrics\"" not in text
    assert metric_value(text, "textserve_request_duration_seconds_count", route="/predict") == 4
    assert metric_value(text, "textserve_batch_size_count", model="sentiment", version=SHIPPED_VERSION) == 3
    assert metric_value(text, "textserve_batch_size_sum") == 6
    assert metric_value(text, "textserve_queue_wait_seconds_count") == 3
    assert metric_value(text, "textserve_inference_duration_seconds_count") == 3
    assert metric_value(text, "textserve_queue_depth") == 0
    labelled = sum(metric_value(text, "textserve_predictions_total", label=label) for label in LABELS)
    assert labelled == 6
    sha = load_bundle(shipped_bundle_dir).manifest.files["model.onnx"].sha256
    assert metric_value(text, "textserve_model_info", name="sentiment", version=SHIPPED_VERSION, onnx_sha256=sha) == 1


def test_model_endpoint_shows_the_public_manifest(client: TestClient, shipped_bundle_dir: Path) -> None:
    body = client.get("/model").json()
    manifest = load_bundle(shipped_bundle_dir).manifest
    assert body["labels"] == LABELS
    assert body["version"] == int(SHIPPED_VERSION)
    assert body["max_length"] == manifest.max_length
    assert body["metrics"]["test"]["accuracy"] == manifest.metrics["test"]["accuracy"]
    assert "libraries" not in body and "path" not in json.dumps(body["dataset"])


def test_openapi_documents_the_real_limits(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_texts_per_request=7, max_text_chars=99)
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    texts = body["schema"]["properties"]["texts"]["anyOf"][0]
    assert texts["maxItems"] == 7
    assert texts["items"]["maxLength"] == 99
    assert "many" in body["examples"]
    assert set(spec["paths"]["/predict"]["post"]["responses"]) >= {"200", "400", "413", "415", "422", "503", "504"}
    assert client.get("/docs").status_code == 200


def test_api_key_guards_predict_only(make_client: Callable[..., TestClient]) -> None:
    client = make_client(api_key="s3cret-key")
    body = {"texts": ["hi"]}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-key"},
                    {"Authorization": "Basic s3cret-key"}):
        response = client.post("/predict", json=body, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"] == "missing or invalid API key"
        assert response.headers["www-authenticate"] == "Bearer"
    assert client.post("/predict", json=body, headers={"Authorization": "Bearer s3cret-key"}).status_code == 200
    assert client.get("/health").status_code == 200
    assert client.get("/metrics").status_code == 200


def test_without_api_key_predict_is_open(client: TestClient) -> None:
    response = client.post("/predict", json={"texts": ["hi"]}, headers={"Authorization": "Bearer whatever"})
    assert response.status_code == 200


def test_request_id_is_echoed_or_generated(client: TestClient) -> None:
    given = client.post("/predict", json={"texts": ["hi"]}, headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = client.post("/predict", json={"texts": ["hi"]}, headers={"X-Request-ID": "bad id\twith spaces"})
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
