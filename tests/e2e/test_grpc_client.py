"""The unmodified ``tritonclient.grpc`` against a real server: live, ready, metadata, the
repository index, and inference on batches of several sizes and unicode texts, whose
probabilities must equal /predict's.

tritonclient[grpc] pins grpcio and protobuf below what TensorFlow needs, so it runs in its
own virtualenv, ``.venv-triton`` (``make test`` makes it from ``tests/e2e/triton-client.txt``),
through ``tests/e2e/triton_grpc_client.py``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import numpy as np
import pytest

from bench.corpus import load_texts
from tests.conftest import SHIPPED_VERSION
from tests.e2e.server import REPO, ServerProcess

pytestmark = pytest.mark.e2e
TRITON_VENV = REPO / ".venv-triton"
TRITON_PYTHON = TRITON_VENV / "bin" / "python"
CLIENT = Path(__file__).with_name("triton_grpc_client.py")
LABELS = ["negative", "neutral", "positive"]
KEY = "grpc-e2e-key"
UNICODE = ["caf\u00e9 \U0001f600\U0001f600 love it", "\u202e\u0645\u0631\u062d\u0628\u0627 \u4f60\u597d", "\x00nul and\ttabs", ""]


def batches() -> list[list[str]]:
    texts = load_texts()
    return [texts[:1], UNICODE, texts[1:8], texts[8:72], texts[72:328]]


def test_tritonclient_grpc_gets_predict_s_answers(shipped_bundle_dir: Path) -> None:
    if not (TRITON_VENV / ".ok").exists():
        pytest.skip(f"no tritonclient[grpc] virtualenv at {TRITON_VENV}: `make test` makes it from"
                    " tests/e2e/triton-client.txt (it could not be made, or make was not used)")
    sent = batches()
    with ServerProcess(shipped_bundle_dir, api_key=KEY) as server:
        job = json.dumps({"target": server.grpc_target, "batches": sent, "key": KEY, "version": SHIPPED_VERSION})
        run = subprocess.run([str(TRITON_PYTHON), str(CLIENT)], input=job, capture_output=True, text=True,
                             timeout=120, cwd=REPO)
        assert run.returncode == 0, run.stderr[-3000:]
        seen = json.loads(run.stdout)
        expected = []
        for texts in sent:
            answer = httpx.post(server.url + "/predict", json={"texts": texts},
                                headers={"authorization": f"Bearer {KEY}"}, timeout=30)
            expected.append(answer.json()["predictions"])
    assert seen["live"] and seen["ready"] and seen["model_ready"] and seen["model_ready_version"]
    assert seen["server"]["name"] == "textserve"
    assert seen["metadata"]["name"] == "sentiment" and seen["metadata"]["versions"] == [SHIPPED_VERSION]
    assert [i["name"] for i in seen["metadata"]["inputs"]] == ["text"]
    assert seen["index"]["models"] == [{"name": "sentiment", "version": SHIPPED_VERSION, "state": "READY"}]
    assert [len(r["labels"]) for r in seen["results"]] == [len(t) for t in sent] == [1, 4, 7, 64, 256]
    for result, predictions in zip(seen["results"], expected, strict=True):
        want = np.array([[p["scores"][label] for label in LABELS] for p in predictions], dtype=np.float32)
        np.testing.assert_allclose(np.array(result["probabilities"], dtype=np.float32), want, atol=1e-6, rtol=0)
        assert result["labels"] == [p["label"] for p in predictions]
        assert [t.split(":")[2] for t in result["top"]] == result["labels"]
        assert result["id"] == "r1"
    assert seen["errors"] == {
        "no_key": "StatusCode.UNAUTHENTICATED", "unknown_model": "StatusCode.NOT_FOUND",
        "load": "StatusCode.FAILED_PRECONDITION", "config": "StatusCode.UNIMPLEMENTED",
    }
