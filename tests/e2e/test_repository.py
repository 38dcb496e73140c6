"""A model repository served by real server processes: several models side by side, new
versions published by rename under load without a failed request, bad versions refused
while the good one serves, removed models unloaded, and several workers that agree."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import make_repository, publish
from tests.e2e.server import ServerProcess, eventually
from tests.e2e.test_server import flip_model_byte, run_service
from tests.reliability.helpers import metric, rss_mib

pytestmark = pytest.mark.e2e
BODY = {"texts": ["the crew was lovely", "two hours late again"]}


def repository_server(root: Path, **settings: Any) -> ServerProcess:
    return ServerProcess(Path("unused"), model_repository=root, **settings)


def index(server: ServerProcess) -> list[dict[str, str]]:
    listed: list[dict[str, str]] = httpx.post(server.url + "/v2/repository/index", timeout=10).json()
    return listed


def states(server: ServerProcess, name: str) -> dict[str, str]:
    return {e.get("version", ""): e["state"] for e in index(server) if e["name"] == name}


def answering_version(url: str, path: str = "/predict") -> int:
    response = httpx.post(url + path, json=BODY, headers={"connection": "close"}, timeout=10)
    assert response.status_code == 200, response.text
    version: int = response.json()["model"]["version"]
    return version


class Load:
    """Clients sending /predict in a closed loop until stopped; every status is kept."""

    def __init__(self, url: str, clients: int = 6) -> None:
        self.url = url
        self.clients = clients
        self.statuses: list[tuple[int, int | None]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client) for _ in range(clients)]

    def _client(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self._stop.is_set():
                try:
                    r = client.post("/predict", json=BODY)
                    version = r.json()["model"]["version"] if r.status_code == 200 else None
                    self.statuses.append((r.status_code, version))
                except httpx.TransportError:
                    self.statuses.append((0, None))

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(20)


def test_two_models_side_by_side_and_the_default(shipped_bundle_dir: Path, tmp_path: Path) -> None:
    root = make_repository(tmp_path / "repo", shipped_bundle_dir, {"sentiment": [1], "reviews": [1, 2]})
    with repository_server(root, default_model="sentiment") as server:
        url = server.url
        assert httpx.post(url + "/predict", json=BODY).json()["model"] == {"name": "sentiment", "version": 1}
        assert httpx.post(url + "/models/reviews/predict", json=BODY).json()["model"] == {"name": "reviews", "version": 2}
        assert httpx.post(url + "/models/reviews/versions/2/predict", json=BODY).status_code == 200
        for path in ("/models/nope/predict", "/models/reviews/versions/1/predict", "/models/reviews/versions/9/predict"):
            response = httpx.post(url + path, json=BODY)
            assert response.status_code == 404 and response.json()["code"] == "not_found", path
        listed = httpx.get(url + "/models").json()["models"]
        assert [(m["name"], m["default"], [v["version"] for v in m["versions"]]) for m in listed] == [
            ("reviews", False, ["2"]), ("sentiment", True, ["1"])]
        assert httpx.get(url + "/v2/models/reviews").json()["versions"] == ["2"]
        v2 = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["fine"]}]}
        answer = httpx.post(url + "/v2/models/reviews/versions/2/infer", json=v2).json()
        assert (answer["model_name"], answer["model_version"]) == ("reviews", "2")
        assert httpx.get(url + "/health").json()["model"] == {"name": "sentiment", "version": 1}
        page = httpx.get(url + "/metrics").text
        assert metric(page, "textserve_model_info", 'name="reviews",version="2"') == 1
        assert metric(page, "textserve_requests_total", 'route="/models/{name:path}/predict",model="reviews"') >= 1


def test_several_models_need_a_default(shipped_bundle_dir: Path, tmp_path: Path) -> None:
    root = make_repository(tmp_path / "repo", shipped_bundle_dir, {"a": [1], "b": [1]})
    result = run_service(shipped_bundle_dir, TEXTSERVE_MODEL_REPOSITORY=str(root))
    assert result.returncode == 1
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("textserve:")]
    assert "TEXTSERVE_DEFAULT_MODEL" in line and "a, b" in line


def test_a_version_published_by_rename_under_load_fails_no_request(shipped_bundle_dir: Path, tmp_path: Path) -> None:
    root = make_repository(tmp_path / "repo", shipped_bundle_dir, {"sentiment": [1]})
    with repository_server(root, model_control_mode="poll", repository_poll_s=0.2) as server:
        with Load(server.url) as load:
            eventually(lambda: len(load.statuses) > 50)
            publish(shipped_bundle_dir, root / "sentiment", 2)
            eventually(lambda: states(server, "sentiment") == {"2": "READY"})
            seen = len(load.statuses)
            eventually(lambda: len(load.statuses) > seen + 50)
        assert {status for status, _ in load.statuses} == {200}
        versions = [v for _, v in load.statuses]
        assert versions[0] == 1 and versions[-1] == 2
        # Once the new version answers, the old one answers only what it already had: at most
        # one request per client (answers are listed as they arrive, not as they were routed).
        assert versions[versions.index(2):].count(1) <= load.clients
        page = httpx.get(server.url + "/metrics").text
        assert metric(page, "textserve_model_load_duration_seconds_count", 'model="sentiment"') == 2
        assert metric(page, "textserve_model_info", 'version="1"') == 0  # unloaded: no series left
        assert '"msg":"model unloaded","model":"sentiment","version":1' in server.logs()


def test_a_bad_version_is_refused_while_the_good_one_serves(shipped_bundle_dir: Path, tmp_path: Path) -> None:
    root = make_repository(tmp_path / "repo", shipped_bundle_dir, {"sentiment": [1]})
    with repository_server(root, model_control_mode="poll", repository_poll_s=0.5) as server:
        publish(shipped_bundle_dir, root / "sentiment", 2, damage=flip_model_byte)
        entry = eventually(lambda: next((e for e in index(server) if e.get("version") == "2"), None))
        assert entry["state"] == "UNAVAILABLE" and "model.onnx fails its sha256 check" in entry["reason"]
        assert answering_version(server.url) == 1
        assert httpx.get(server.url + "/health").status_code == 200
        page = httpx.get(server.url + "/metrics").text
        assert metric(page, "textserve_model_load_failures_total", 'model="sentiment",reason="checksum"') == 1
        assert server.logs().count('"msg":"model version refused"') == 1

        # A version copied file by file (one every 0.05 s, the poller looks every 0.5 s) is not
        # judged while it changes; complete, it serves.
        partial = root / "sentiment" / "3"
        partial.mkdir()
        staged = publish(shipped_bundle_dir, tmp_path / "elsewhere", 3)
        for path in sorted(staged.iterdir(), key=lambda p: p.name != "manifest.json"):
            assert "3" not in states(server, "sentiment")  # incomplete: neither refused nor loading
            (shutil.copytree if path.is_dir() else shutil.copy)(path, partial / path.name)
            time.sleep(0.05)
        eventually(lambda: states(server, "sentiment") == {"2": "UNAVAILABLE", "3": "READY"})
        assert answering_version(server.url) == 3
        page = httpx.get(server.url + "/metrics").text
        assert metric(page, "textserve_model_load_failures_total", 'model="sentiment"') == 1


def test_a_removed_model_is_unloaded(shipped_bundle_dir: Path, tmp_path: Path) -> None:
    root = make_repository(tmp_path / "repo", shipped_bundle_dir, {"main": [1], "extra": [1]})
    with repository_server(root, model_control_mode="poll", repository_poll_s=0.2, default_model="main") as server:
        assert answering_version(server.url, "/models/extra/predict") == 1
        shutil.rmtree(root / "extra")
        eventually(lambda: httpx.post(server.url + "/models/extra/predict", json=BODY).status_code == 404)
        assert [e["name"] for e in index(server)] == ["main"]
        assert answering_version(server.url) == 1


def test_a_bad_config_json_makes_only_that_model_unavailable(shipped_bundle_dir: Path, tmp_path: Path) -> None:
    root = make_repository(tmp_path / "repo", shipped_bundle_dir, {"main": [1], "odd": [1]})
    (root / "odd" / "config.json").write_text('{"version_policy": {"latest": {"num_versions": -1}}}')
    with repository_server(root, default_model="main") as server:
        (odd,) = [e for e in index(server) if e["name"] == "odd"]
        assert odd["state"] == "UNAVAILABLE" and "num_versions" in odd["reason"]
        response = httpx.post(server.url + "/models/odd/predict", json=BODY)
        assert response.status_code == 503 and "num_versions" in response.json()["error"]
        assert answering_version(server.url) == 1


def test_several_workers_agree_on_a_new_version(shipped_bundle_dir: Path, tmp_path: Path) -> None:
    root = make_repository(tmp_path / "repo", shipped_bundle_dir, {"sentiment": [1]})
    server = repository_server(root, workers=2, model_control_mode="poll", repository_poll_s=0.2)
    server.env["TMPDIR"] = str(tmp_path)
    with server:
        eventually(lambda: server.logs().count('"msg":"ready"') == 2)
        publish(shipped_bundle_dir, root / "sentiment", 2)
        eventually(lambda: server.logs().count('"msg":"model unloaded"') == 2)
        assert {answering_version(server.url) for _ in range(20)} == {2}  # new connections: either worker


def test_memory_stays_flat_over_twenty_swaps(shipped_bundle_dir: Path, tmp_path: Path) -> None:
    root = make_repository(tmp_path / "repo", shipped_bundle_dir, {"sentiment": [1]})
    with repository_server(root, model_control_mode="explicit") as server:
        assert server.proc is not None
        rss: list[float] = []
        for version in range(2, 22):
            publish(shipped_bundle_dir, root / "sentiment", version)
            response = httpx.post(server.url + "/v2/repository/models/sentiment/load", timeout=30)
            assert response.status_code == 200, response.text
            assert states(server, "sentiment") == {str(version): "READY"}
            assert answering_version(server.url) == version
            shutil.rmtree(root / "sentiment" / str(version - 1))
            rss.append(rss_mib(server.proc.pid))
        assert rss[-1] <= rss[0] + 50, rss


def test_a_model_directory_given_as_model_path_polls_too(shipped_bundle_dir: Path, tmp_path: Path) -> None:
    """KServe's /mnt/models holding one model's versions, with TEXTSERVE_MODEL_PATH."""
    model_dir = tmp_path / "mnt" / "models"
    publish(shipped_bundle_dir, model_dir, 1)
    with ServerProcess(model_dir, model_control_mode="poll", repository_poll_s=0.2) as server:
        publish(shipped_bundle_dir, model_dir, 2)
        eventually(lambda: answering_version(server.url) == 2)
        assert os.path.exists(model_dir / "1")
