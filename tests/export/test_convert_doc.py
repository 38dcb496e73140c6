"""docs/convert.md's end-to-end recipe runs as written: train.py on a small CSV, the convert
command, the server, the curl. Only what a test must change is changed: ``make run`` becomes the
command its target runs (``python -m service``; the virtualenv already exists), on a free port
that the curl is pointed at."""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import free_port
from tests.export.keras_cases import dataset

pytestmark = [pytest.mark.export, pytest.mark.e2e]
REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "convert.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def recipe_blocks() -> list[tuple[str, str]]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## The classic recipe, end to end", 1)[1].split("### With docker compose", 1)[0]
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(section)]


def curl(command: str) -> str:
    """Run the page's curl, or (where curl is not installed) the same request with httpx."""
    if shutil.which("curl"):
        return subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60, check=True).stdout
    words = shlex.split(command.replace("\\\n", " "))
    url = next(w for w in words if "/predict" in w)
    body = words[words.index("-d") + 1]
    return httpx.post(f"http://{url}", content=body, headers={"Content-Type": "application/json"}, timeout=60).text


def test_the_documented_recipe_trains_converts_serves_and_answers(tmp_path: Path) -> None:
    blocks = recipe_blocks()
    assert [kind for kind, _ in blocks] == ["python", "sh", "text", "sh", "sh", "json"]
    (_, train), (_, convert), _, (_, serve), (_, ask), _ = blocks
    texts, labels = dataset(2, n=120, seed=3)
    with (tmp_path / "reviews.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows([t, "positive" if y else "negative"] for t, y in zip(texts, labels, strict=True))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEXTSERVE_") and k != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}", PYTHONPATH=str(REPO))

    (tmp_path / "train.py").write_text(train, encoding="utf-8")
    subprocess.run([sys.executable, "train.py"], cwd=tmp_path, env=env, check=True, capture_output=True, timeout=600)
    assert (tmp_path / "model.h5").is_file() and (tmp_path / "tokenizer.json").is_file()

    converted = subprocess.run(["bash", "-c", convert], cwd=tmp_path, env=env, capture_output=True, text=True,
                               timeout=600)
    assert converted.returncode == 0, converted.stdout + converted.stderr
    assert "bundle written to models/reviews/1" in converted.stdout

    assert "make run" in serve
    port = free_port()
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(["bash", "-c", serve.replace("make run", f"{sys.executable} -m service")],
                              cwd=tmp_path, env={**env, "TEXTSERVE_PORT": str(port)}, stdout=log, stderr=log,
                              start_new_session=True)
    try:
        for _ in range(600):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            time.sleep(0.05)
        assert "localhost:8000" in ask
        answer = json.loads(curl(ask.replace("localhost:8000", f"127.0.0.1:{port}")))
    finally:
        os.killpg(server.pid, signal.SIGKILL)  # bash and the server it started
        server.wait(10)
        log.close()
    assert answer["model"] == {"name": "reviews", "version": 1}
    assert len(answer["predictions"]) == 2
    for prediction in answer["predictions"]:
        assert set(prediction["scores"]) == {"negative", "positive"}
        assert abs(sum(prediction["scores"].values()) - 1) < 1e-5
