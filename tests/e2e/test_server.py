"""The real server process: concurrency, batching, metrics, SIGTERM, and refusals at start."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from service.bundle.format import load_bundle
from service.bundle.runtime import ModelRuntime
from tests.e2e.server import REPO, ServerProcess
from tests.reliability.helpers import metric

pytestmark = pytest.mark.e2e
LABELS = ["negative", "neutral", "positive"]
TEXTS = [
    "thanks for the great flight!", "lost my bag again, worst airline", "the car drove itself",
    "@united delayed 3 hours", "love the new seats \U0001f600", "", "is the game on tonight?",
]


def expected(bundle_dir: Path, texts: list[str]) -> np.ndarray:
    bundle = load_bundle(bundle_dir)
    return ModelRuntime(bundle).predict(bundle.tokenizer.encode(texts))


def batch_counts(metrics: str) -> tuple[float, float]:
    """(number of batches, number of batches of exactly one text) from /metrics."""
    return metric(metrics, "textserve_batch_size_count"), metric(metrics, "textserve_batch_size_bucket", 'le="1.0"')


async def fire(url: str, bodies: list[dict[str, object]], concurrency: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        sem = asyncio.Semaphore(concurrency)

        async def one(body: dict[str, object]) -> httpx.Response:
            async with sem:
                return await client.post("/predict", json=body)

        return await asyncio.gather(*(one(b) for b in bodies))


def test_concurrent_requests_are_answered_correctly_and_batched(shipped_bundle_dir: Path) -> None:
    reference = expected(shipped_bundle_dir, TEXTS)
    bodies = [{"texts": [TEXTS[i % len(TEXTS)]]} for i in range(400)]
    with ServerProcess(shipped_bundle_dir, max_batch_delay_ms=5) as server:
        responses = asyncio.run(fire(server.url, bodies, concurrency=32))
        metrics = httpx.get(server.url + "/metrics").text
    for i, response in enumerate(responses):
        assert response.status_code == 200, response.text
        (prediction,) = response.json()["predictions"]
        got = np.array([prediction["scores"][label] for label in LABELS])
        np.testing.assert_allclose(got, reference[i % len(TEXTS)], atol=1e-5)
        assert prediction["label"] == LABELS[int(reference[i % len(TEXTS)].argmax())]
    batches, singles = batch_counts(metrics)
    assert batches < len(bodies)  # some texts shared a run...
    assert singles < batches  # ...so at least one batch held more than one text
    assert metric(metrics, "textserve_requests_total", 'protocol="http",route="/predict",status="200",model="sentiment"') == 400


def test_sigterm_drains_in_flight_requests_then_exits_zero(shipped_bundle_dir: Path) -> None:
    texts = [f"{TEXTS[i % len(TEXTS)]} number {i}" for i in range(256)]
    server = ServerProcess(
        shipped_bundle_dir, max_texts_per_request=256, max_queue_size=8192, shutdown_grace_s=20
    ).start()
    try:
        async def scenario() -> tuple[list[httpx.Response], list[int], list[int]]:
            in_flight = asyncio.create_task(fire(server.url, [{"texts": texts}] * 24, concurrency=24))
            async with httpx.AsyncClient(base_url=server.url, timeout=5) as probe:
                # Wait until the server has accepted all 24, then ask it to stop.
                for _ in range(500):
                    page = (await probe.get("/metrics")).text
                    if metric(page, "textserve_requests_in_flight") == 24:
                        break
                    await asyncio.sleep(0.005)
                else:
                    raise AssertionError("the 24 requests were never all in flight at once")
                server.signal()
                await asyncio.sleep(0.05)
                health = [(await probe.get("/health")).status_code for _ in range(3)]
                late = [(await probe.post("/predict", json={"texts": ["too late"]})).status_code]
            return await in_flight, health, late

        responses, health, late = asyncio.run(scenario())
        code = server.wait(timeout=30)
    finally:
        server.stop()
    assert [r.status_code for r in responses] == [200] * 24
    assert all(len(r.json()["predictions"]) == 256 for r in responses)
    assert health == [503, 503, 503]
    assert late == [503]
    assert code == 0
    assert '"msg":"draining"' in server.logs()


def run_service(model_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    environment = {k: v for k, v in os.environ.items() if not k.startswith("TEXTSERVE_")}
    environment.update({"TEXTSERVE_MODEL_PATH": str(model_path), "TEXTSERVE_PORT": "1", "TEXTSERVE_GRPC_PORT": "0",
                        **env})
    return subprocess.run(
        [sys.executable, "-m", "service"], cwd=REPO, env=environment,
        capture_output=True, text=True, timeout=60,
    )


def flip_model_byte(bundle: Path) -> None:
    data = bytearray((bundle / "model.onnx").read_bytes())
    data[len(data) // 3] ^= 0x01
    (bundle / "model.onnx").write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (flip_model_byte, "model.onnx fails its sha256 check"),
        (lambda b: (b / "model.onnx").unlink(), "model.onnx is missing"),
        (lambda b: (b / "model.onnx").write_bytes(b"onnx?"), "truncated or replaced"),
        (lambda b: (b / "manifest.json").write_text("{}"), "schema_version None is not 1"),
    ],
    ids=["flipped-byte", "missing-model", "truncated-model", "empty-manifest"],
)
def test_a_damaged_bundle_is_refused_at_start_with_one_clear_line(
    bundle_copy: Path, damage, message: str  # type: ignore[no-untyped-def]
) -> None:
    damage(bundle_copy)
    started = time.monotonic()
    result = run_service(bundle_copy)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("textserve: cannot serve the model: bundle ")
    assert message in lines[0]
    assert time.monotonic() - started < 30


def test_bad_settings_are_refused_at_start(shipped_bundle_dir: Path) -> None:
    result = run_service(shipped_bundle_dir, TEXTSERVE_MAX_BATCH_SIZE="0", TEXTSERVE_LOG_LEVEL="loud")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "TEXTSERVE_MAX_BATCH_SIZE" in lines[0] and "TEXTSERVE_LOG_LEVEL" in lines[0]
