"""Loading and unloading through the model repository extension (explicit mode), with the
official client; the API key on the management routes; names that could reach outside
the repository; ``textserve check``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.conftest import make_repository, publish
from tests.e2e.server import REPO, ServerProcess
from tests.e2e.test_server import flip_model_byte
from tests.reliability.helpers import raw_request

pytestmark = pytest.mark.e2e
BODY = {"texts": ["on time and friendly"]}


def repository_server(root: Path, **settings: object) -> ServerProcess:
    return ServerProcess(Path("unused"), model_repository=root, **settings)


@pytest.fixture
def repository(shipped_bundle_dir: Path, tmp_path: Path) -> Path:
    return make_repository(tmp_path / "repo", shipped_bundle_dir, {"main": [1], "extra": [1]})


def test_explicit_mode_through_tritonclient(repository: Path, shipped_bundle_dir: Path) -> None:
    with repository_server(repository, model_control_mode="explicit", load_models="main",
                           default_model="main") as server:
        client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
        assert {(m["name"], m.get("version"), m["state"]) for m in client.get_model_repository_index()} == {
            ("main", "1", "READY"), ("extra", None, "UNAVAILABLE")}
        assert not client.is_model_ready("extra")
        client.load_model("extra")
        assert client.is_model_ready("extra") and client.is_model_ready("extra", "1")
        assert httpx.post(server.url + "/models/extra/predict", json=BODY).status_code == 200

        publish(shipped_bundle_dir, repository / "extra", 2)  # load again: the new version replaces the old
        client.load_model("extra")
        assert client.is_model_ready("extra", "2") and not client.is_model_ready("extra", "1")

        client.unload_model("extra")
        assert not client.is_model_ready("extra")
        assert httpx.post(server.url + "/models/extra/predict", json=BODY).status_code == 503
        assert [m["state"] for m in client.get_model_repository_index() if m["name"] == "extra"] == ["UNAVAILABLE"]

        with pytest.raises(InferenceServerException, match="no model named 'ghost'"):
            client.load_model("ghost")
        publish(shipped_bundle_dir, repository / "broken", 1, damage=flip_model_byte)
        with pytest.raises(InferenceServerException, match="sha256"):
            client.load_model("broken")
        assert client.is_model_ready("main")


def test_load_and_unload_are_refused_outside_explicit_mode(repository: Path) -> None:
    with repository_server(repository, model_control_mode="poll", default_model="main") as server:
        response = httpx.post(server.url + "/v2/repository/models/extra/unload")
        assert response.status_code == 409 and "TEXTSERVE_MODEL_CONTROL_MODE=explicit" in response.json()["error"]
        assert httpx.post(server.url + "/models/extra/predict", json=BODY).status_code == 200


def test_explicit_loads_with_several_workers_are_refused_not_half_done(repository: Path, tmp_path: Path) -> None:
    server = repository_server(repository, model_control_mode="explicit", default_model="main", workers=2)
    server.env["TMPDIR"] = str(tmp_path)
    with server:
        response = httpx.post(server.url + "/v2/repository/models/extra/load")
        assert response.status_code == 409 and "TEXTSERVE_WORKERS=2" in response.json()["error"]


def test_the_management_routes_need_the_api_key(repository: Path) -> None:
    with repository_server(repository, model_control_mode="explicit", default_model="main", api_key="k") as server:
        key = {"Authorization": "Bearer k"}
        for path in ("/v2/repository/index", "/v2/repository/models/extra/load", "/v2/repository/models/extra/unload"):
            assert httpx.post(server.url + path).status_code == 401, path
            assert httpx.post(server.url + path, headers=key).status_code == 200, path
        for path in ("/health", "/metrics", "/v2/health/ready"):
            assert httpx.get(server.url + path).status_code == 200, path


@pytest.mark.parametrize(
    "target",
    [
        "POST /models/../predict", "POST /models/..%2F..%2Fetc/predict", "POST /models/%2Fetc/predict",
        "POST /models//predict", "POST /models/a%2Fb/versions/1/predict",
        "POST /v2/repository/models/../load", "POST /v2/repository/models/..%2Foutside/load",
        "POST /v2/repository/models/%2Ftmp/unload", "POST /v2/repository/models/./load",
        "POST /models/main/versions/..%2F1/predict",
    ],
)
def test_names_that_could_reach_outside_the_repository_are_400(
    repository: Path, shipped_bundle_dir: Path, target: str
) -> None:
    publish(shipped_bundle_dir, repository.parent / "outside", 1)  # a real model, next to the repository
    with repository_server(repository, model_control_mode="explicit", default_model="main") as server:
        method, path = target.split(" ")
        request = (f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   f"Content-Length: 2\r\nConnection: close\r\n\r\n{{}}").encode()
        response = raw_request(server.port, request)
        assert response.status == 400, (target, response.body)
        names = {e["name"] for e in httpx.post(server.url + "/v2/repository/index").json()}
        assert names == {"main", "extra"}


def run_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "service", "check", str(path)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_textserve_check_verifies_a_repository_offline(repository: Path, shipped_bundle_dir: Path) -> None:
    good = run_check(repository)
    assert good.returncode == 0 and good.stdout == ""
    assert "2 model(s), 2 version(s), 0 problem(s)" in good.stderr
    assert run_check(shipped_bundle_dir).returncode == 0  # one bundle
    assert run_check(repository / "main").returncode == 0  # one model's versions

    publish(shipped_bundle_dir, repository / "main", 2, damage=flip_model_byte)
    (repository / "extra" / "config.json").write_text('{"version_policy": {"all": []}}')
    (repository / "empty").mkdir()
    bad = run_check(repository)
    assert bad.returncode == 1
    lines = bad.stdout.splitlines()
    assert len(lines) == 3, lines
    assert any("main/2: model.onnx fails its sha256 check" in line for line in lines)
    assert any("extra/config.json" in line for line in lines)
    assert any("empty: no version directory" in line for line in lines)
    assert run_check(repository / "nowhere").returncode == 1
