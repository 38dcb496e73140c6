"""Model integrity at start, through the real ``python -m service``: each broken bundle is
refused with one clear line and exit 1, and the port never answers.

Added to what tests/e2e/test_server.py (flipped byte, missing or truncated model, empty
manifest) and tests/unit/test_bundle.py already prove. The "liars" rewrite the manifest
*and* its checksums, so only the deeper consistency checks can catch them. We run as root,
so chmod 000 would not make anything unreadable: "unreadable" here means paths that cannot
be read as what they claim to be (a file where the directory should be, a dangling
symlink, a directory where model.onnx should be, a manifest that is a directory).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from service.bundle.format import sha256_file
from tests.e2e.server import REPO, free_port

pytestmark = [pytest.mark.reliability, pytest.mark.e2e]


def rewrite_manifest(bundle: Path, **changes: object) -> None:
    """Change the manifest and re-sign every file entry, as a careful forger would."""
    path = bundle / "manifest.json"
    data = json.loads(path.read_text())
    data.update(changes)
    for rel, entry in data["files"].items():
        if (bundle / rel).is_file():
            entry["sha256"] = sha256_file(bundle / rel)
            entry["bytes"] = (bundle / rel).stat().st_size
    path.write_text(json.dumps(data))


def lie_about_output(bundle: Path) -> None:
    labels = ["negative", "neutral", "positive", "sarcastic"]
    (bundle / "labels.json").write_text(json.dumps(labels))
    data = json.loads((bundle / "manifest.json").read_text())
    rewrite_manifest(bundle, labels=labels, output={**data["output"], "shape": ["batch", 4]})


def lie_about_input_name(bundle: Path) -> None:
    data = json.loads((bundle / "manifest.json").read_text())
    rewrite_manifest(bundle, input={**data["input"], "name": "tokens"})


def lie_about_output_name(bundle: Path) -> None:
    data = json.loads((bundle / "manifest.json").read_text())
    rewrite_manifest(bundle, output={**data["output"], "name": "logits"})


def lie_about_input_rank(bundle: Path) -> None:
    data = json.loads((bundle / "manifest.json").read_text())
    rewrite_manifest(bundle, input={**data["input"], "shape": ["batch", 40, 1]})


def lie_about_max_length(bundle: Path) -> None:
    rewrite_manifest(bundle, max_length=64)


def lie_about_labels_order(bundle: Path) -> None:
    data = json.loads((bundle / "manifest.json").read_text())
    data["labels"] = list(reversed(data["labels"]))
    (bundle / "manifest.json").write_text(json.dumps(data))


def replace_with_file(bundle: Path) -> None:
    shutil.rmtree(bundle)
    bundle.write_text("not a bundle")


def dangling_symlink(bundle: Path) -> None:
    shutil.rmtree(bundle)
    bundle.symlink_to(bundle.parent / "gone")


def model_is_a_dangling_symlink(bundle: Path) -> None:
    (bundle / "model.onnx").unlink()
    (bundle / "model.onnx").symlink_to(bundle / "nowhere.onnx")


def model_is_a_directory(bundle: Path) -> None:
    (bundle / "model.onnx").unlink()
    (bundle / "model.onnx").mkdir()


def manifest_is_a_directory(bundle: Path) -> None:
    (bundle / "manifest.json").unlink()
    (bundle / "manifest.json").mkdir()


def missing_vocabulary(bundle: Path) -> None:
    (bundle / "tokenizer.json").unlink()


def vocabulary_not_json_but_signed(bundle: Path) -> None:
    (bundle / "tokenizer.json").write_text("{ this is not a vocabulary")
    rewrite_manifest(bundle)


def model_not_onnx_but_signed(bundle: Path) -> None:
    (bundle / "model.onnx").write_bytes(b"\x08\x07" + os.urandom(4096))
    rewrite_manifest(bundle)


CASES: list[tuple[str, Callable[[Path], None], str]] = [
    ("missing-vocabulary", missing_vocabulary, "tokenizer.json is missing"),
    ("vocabulary-garbage-resigned", vocabulary_not_json_but_signed, "cannot read its tokenizer or labels"),
    ("model-garbage-resigned", model_not_onnx_but_signed, "onnxruntime cannot load model.onnx"),
    ("manifest-lies-output-shape-and-labels", lie_about_output,
     "outputs 3 classes but the manifest has 4 labels"),
    ("manifest-lies-input-name", lie_about_input_name, "manifest says 'tokens'"),
    ("manifest-lies-output-name", lie_about_output_name, "has no output named 'logits'"),
    ("manifest-lies-input-rank", lie_about_input_rank, "input must be int32 [batch, sequence]"),
    ("manifest-lies-max-length", lie_about_max_length, "tokenizer max_length 40 != manifest 64"),
    ("manifest-reorders-labels", lie_about_labels_order, "labels.json"),
    ("bundle-path-is-a-file", replace_with_file, "does not exist or is not a directory"),
    ("bundle-path-dangling-symlink", dangling_symlink, "does not exist or is not a directory"),
    ("model-dangling-symlink", model_is_a_dangling_symlink, "model.onnx is missing"),
    ("model-is-a-directory", model_is_a_directory, "model.onnx is missing"),
    ("manifest-is-a-directory", manifest_is_a_directory, "manifest.json is missing"),
]


def start_and_watch(model_path: Path) -> tuple[int, str, bool]:
    """Run the service; (exit code, stderr, whether its port ever accepted a connection)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEXTSERVE_")}
    env.update({"TEXTSERVE_MODEL_PATH": str(model_path), "TEXTSERVE_PORT": str(port), "TEXTSERVE_GRPC_PORT": "0"})
    proc = subprocess.Popen([sys.executable, "-m", "service"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    served = False
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            served = served or sock.connect_ex(("127.0.0.1", port)) == 0
        time.sleep(0.02)
    if proc.poll() is None:
        proc.kill()
    out, err = proc.communicate(timeout=10)
    return proc.returncode, err + out, served


@pytest.mark.parametrize(("damage", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_broken_bundle_is_refused_at_start_and_never_served(
    bundle_copy: Path, damage: Callable[[Path], None], message: str
) -> None:
    damage(bundle_copy)
    code, output, served = start_and_watch(bundle_copy)
    lines = output.strip().splitlines()
    assert code == 1, output
    assert len(lines) == 1, output
    assert lines[0].startswith("textserve: cannot serve the model: ") and message in lines[0], lines[0]
    assert not served


def test_a_broken_newest_version_is_refused_not_skipped(bundle_copy: Path) -> None:
    """models/<name>/ serves its newest version; if that one is broken the service stops
    rather than quietly serving an older one."""
    newest = bundle_copy.parent / "2"
    shutil.copytree(bundle_copy, newest)
    rewrite_manifest(newest, version=2)
    data = bytearray((newest / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (newest / "model.onnx").write_bytes(bytes(data))
    code, output, served = start_and_watch(bundle_copy.parent)
    assert code == 1 and not served
    assert f"{newest}: model.onnx fails its sha256 check" in output
