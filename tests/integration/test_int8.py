"""Serving the int8 variant: same API, answers close to the fp32 graph's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from bench.corpus import load_texts
from service.bundle.format import BundleError, load_bundle
from service.bundle.options import RuntimeOptions
from service.bundle.runtime import ModelRuntime


def test_int8_agrees_with_fp32_on_real_tweets(shipped_bundle_dir: Path) -> None:
    bundle = load_bundle(shipped_bundle_dir)
    ids = bundle.tokenizer.encode(load_texts())
    fp32 = ModelRuntime(bundle).predict(ids)
    int8 = ModelRuntime(bundle, RuntimeOptions(variant="int8")).predict(ids)
    assert (fp32.argmax(1) == int8.argmax(1)).mean() >= 0.98
    assert np.abs(fp32 - int8).max() < 0.1


def test_the_service_serves_the_int8_variant_when_asked(make_client: Callable[..., TestClient]) -> None:
    client = make_client(precision="int8")
    body = client.post("/predict", json={"texts": ["thanks, great crew!", "lost my bag again"]}).json()
    assert [p["label"] for p in body["predictions"]] == ["positive", "negative"]
    sha = load_bundle(Path("models/sentiment")).manifest.files["model.int8.onnx"].sha256
    assert f'onnx_sha256="{sha}"' in client.get("/metrics").text
    assert "int8" in client.get("/model").json()["variants"]


def test_asking_for_a_variant_the_bundle_lacks_is_refused(bundle_copy: Path) -> None:
    import json

    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    manifest["variants"] = {}
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="has no 'int8' variant"):
        ModelRuntime(load_bundle(bundle_copy), RuntimeOptions(variant="int8"))
