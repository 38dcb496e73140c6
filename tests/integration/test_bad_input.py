"""Every client mistake is a 4xx whose JSON names the problem; nothing leaks; the model
keeps serving. Deliberate successes (odd but valid texts) are listed too."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.engine.batcher import QueueFullError

JSON = {"Content-Type": "application/json"}
LIMITS = {"max_texts_per_request": 4, "max_text_chars": 50, "max_body_bytes": 4096}

# (id, method, path, headers, body, status, code, message fragment)
BAD: list[tuple[str, str, str, dict[str, str], bytes | None, int, str, str]] = [
    ("malformed-json", "POST", "/predict", JSON, b'{"texts": ["a",', 400, "bad_request", "malformed JSON"),
    ("not-json-at-all", "POST", "/predict", JSON, b"hello", 400, "bad_request", "malformed JSON"),
    ("empty-body", "POST", "/predict", JSON, b"", 400, "bad_request", "body is empty"),
    ("form-content-type", "POST", "/predict", {"Content-Type": "application/x-www-form-urlencoded"},
     b'{"texts": ["a"]}', 415, "unsupported_media_type", "Content-Type: application/json"),
    ("no-content-type", "POST", "/predict", {}, b'{"texts": ["a"]}', 415, "unsupported_media_type", "got 'none'"),
    ("text-plain", "POST", "/predict", {"Content-Type": "text/plain"}, b'{"texts": ["a"]}', 415,
     "unsupported_media_type", "JSON"),
    ("json-array", "POST", "/predict", JSON, b'["a", "b"]', 422, "invalid_input", "JSON object"),
    ("json-string", "POST", "/predict", JSON, b'"a"', 422, "invalid_input", "JSON object"),
    ("missing-texts", "POST", "/predict", JSON, b"{}", 422, "invalid_input", "exactly one of 'texts'"),
    ("both-forms", "POST", "/predict", JSON, b'{"texts": ["a"], "text": "b"}', 422, "invalid_input",
     "exactly one of"),
    ("empty-list", "POST", "/predict", JSON, b'{"texts": []}', 422, "invalid_input", "texts: List should have at least 1 item"),
    ("null-texts", "POST", "/predict", JSON, b'{"texts": null}', 422, "invalid_input", "exactly one of"),
    ("texts-not-list", "POST", "/predict", JSON, b'{"texts": "abc"}', 422, "invalid_input", "valid array"),
    ("number-item", "POST", "/predict", JSON, b'{"texts": ["a", 5]}', 422, "invalid_input", "texts.1: Input should be a valid string"),
    ("null-item", "POST", "/predict", JSON, b'{"texts": [null]}', 422, "invalid_input", "texts.0"),
    ("object-item", "POST", "/predict", JSON, b'{"texts": [{"a": 1}]}', 422, "invalid_input", "texts.0"),
    ("nested-list", "POST", "/predict", JSON, b'{"texts": [["a"]]}', 422, "invalid_input", "texts.0"),
    ("number-text", "POST", "/predict", JSON, b'{"text": 5}', 422, "invalid_input", "text: Input should be a valid string"),
    ("too-many-texts", "POST", "/predict", JSON, b'{"texts": ["a","b","c","d","e"]}', 422, "invalid_input",
     "at most 4 items"),
    ("text-too-long", "POST", "/predict", JSON, b'{"texts": ["' + b"x" * 51 + b'"]}', 422, "invalid_input",
     "texts.0: String should have at most 50 characters"),
    ("extra-field", "POST", "/predict", JSON, b'{"texts": ["a"], "txts": 1}', 422, "invalid_input",
     "txts: Extra inputs are not permitted"),
    ("body-too-large", "POST", "/predict", JSON, b'{"texts": ["' + b"a" * 5000 + b'"]}', 413,
     "payload_too_large", "exceeds 4096 bytes"),
    ("invalid-utf8", "POST", "/predict", JSON, b'{"texts": ["caf\xe9"]}', 400, "bad_request", "malformed JSON"),
    ("wrong-method", "GET", "/predict", {}, None, 405, "method_not_allowed", "method not allowed"),
    ("put-health", "PUT", "/health", {}, None, 405, "method_not_allowed", "method not allowed"),
    ("unknown-route", "GET", "/nope", {}, None, 404, "not_found", "no such route"),
    ("unknown-v1", "POST", "/v1/predict", JSON, b'{"texts": ["a"]}', 404, "not_found", "no such route"),
]


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status", "code", "fragment"),
    [case[1:] for case in BAD],
    ids=[case[0] for case in BAD],
)
def test_bad_requests_get_a_clear_4xx(
    make_client: Callable[..., TestClient], method: str, path: str, headers: dict[str, str],
    body: bytes | None, status: int, code: str, fragment: str,
) -> None:
    client = make_client(**LIMITS)
    response = client.request(method, path, headers=headers, content=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    payload = response.json()
    assert payload["code"] == code
    assert fragment in payload["error"]
    assert len(payload["request_id"]) > 0
    for leak in ("Traceback", "File \"", "/service/", "site-packages", "pydantic"):
        assert leak not in response.text
    assert client.post("/predict", json={"texts": ["still serving"]}).status_code == 200


def test_validation_errors_do_not_echo_the_input(make_client: Callable[..., TestClient]) -> None:
    client = make_client(**LIMITS)
    secret = "<script>secret-input</script>"
    for body in ({"texts": [secret * 3]}, {"texts": [secret], "extra": secret}, {"text": [secret]}):
        response = client.post("/predict", json=body)
        assert response.status_code == 422
        assert "secret-input" not in response.text


def test_chunked_body_over_the_limit_is_413(make_client: Callable[..., TestClient]) -> None:
    client = make_client(**LIMITS)

    def chunks() -> Any:
        yield b'{"texts": ["'
        for _ in range(10):
            yield b"a" * 1000
        yield b'"]}'

    response = client.post("/predict", headers=JSON, content=chunks())
    assert response.status_code == 413


# Deliberate successes: valid JSON strings the tokenizer reduces to little or nothing.
ODD_BUT_VALID = ["", "   \t\n", "a\u0000b", "\u0000", "\U0001f600", "\u202e\u200b", "\ufffd", "caf\u00e9 ok"]


def test_odd_but_valid_texts_are_classified(make_client: Callable[..., TestClient]) -> None:
    client = make_client(**LIMITS)
    for i in range(0, len(ODD_BUT_VALID), 4):
        texts = ODD_BUT_VALID[i : i + 4]
        response = client.post("/predict", json={"texts": texts})
        assert response.status_code == 200, texts
        for prediction in response.json()["predictions"]:
            assert sum(prediction["scores"].values()) == pytest.approx(1.0, abs=1e-5)


def test_empty_and_whitespace_texts_get_the_same_no_evidence_answer(client: TestClient) -> None:
    body = client.post("/predict", json={"texts": ["", "   ", "!!!???"[:0], "$%&"]}).json()
    scores = [p["scores"] for p in body["predictions"]]
    assert scores[0] == scores[1] == scores[2] == scores[3]


def test_lone_surrogate_escape_is_malformed_json(client: TestClient) -> None:
    response = client.post("/predict", headers=JSON, content=b'{"texts": ["\\ud800 ok"]}')
    assert response.status_code == 400
    assert response.json()["error"] == "malformed JSON body: unexpected end of hex escape at line 1 column 19"


def test_overload_is_503_with_retry_after(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    svc = client.app.state.engine  # type: ignore[attr-defined]

    async def full(items: Any, hold: Any = None) -> Any:
        raise QueueFullError("full")

    monkeypatch.setattr(svc.route(None, None).predictor.batcher, "submit", full)
    response = client.post("/predict", json={"texts": ["hi"]})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["code"] == "overloaded"
    assert "textserve_rejected_requests_total{reason=\"queue_full\"} 1.0" in client.get("/metrics").text


def test_slow_inference_is_504_and_the_server_recovers(
    make_client: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client(request_timeout_s=0.05)
    svc = client.app.state.engine  # type: ignore[attr-defined]
    real = svc.route(None, None).predictor.runtime.predict
    import time

    def slow(ids: Any) -> Any:
        time.sleep(0.2)
        return real(ids)

    monkeypatch.setattr(svc.route(None, None).predictor.runtime, "predict", slow)
    response = client.post("/predict", json={"texts": ["hi"]})
    assert response.status_code == 504
    assert response.json()["code"] == "timeout"
    monkeypatch.setattr(svc.route(None, None).predictor.runtime, "predict", real)
    asyncio.run(asyncio.sleep(0.3))
    assert client.post("/predict", json={"texts": ["hi"]}).status_code == 200
    assert svc.route(None, None).predictor.batcher.queued_items == 0


def test_a_model_failure_is_a_plain_500_with_a_request_id(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    svc = client.app.state.engine  # type: ignore[attr-defined]

    def broken(ids: Any) -> Any:
        raise RuntimeError("onnxruntime exploded at /secret/path")

    monkeypatch.setattr(svc.route(None, None).predictor.runtime, "predict", broken)
    response = client.post("/predict", json={"texts": ["hi"]}, headers={"X-Request-ID": "req-42"})
    assert response.status_code == 500
    assert response.json() == {"error": "internal server error", "code": "internal_error", "request_id": "req-42"}
    assert "/secret/path" not in response.text
    monkeypatch.undo()
    assert client.post("/predict", json={"texts": ["hi"]}).status_code == 200
