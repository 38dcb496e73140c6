"""Writing a bundle so that it appears whole or not at all.

Everything is written into a hidden staging directory beside the final one (same
filesystem) and renamed into place at the end; a failed run removes its staging
directory, and the service ignores non-numeric directories anyway.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from service.bundle.format import MANIFEST, file_entries


class BundleExistsError(Exception):
    """The bundle cannot be published: the version exists (versions are immutable) or the
    directory is not writable."""


def check_writable(model_root: Path) -> None:
    """Fail now, not after minutes of training, if the bundle could not be written."""
    try:
        model_root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=model_root):
            pass
    except OSError as exc:
        raise BundleExistsError(f"cannot write bundles under {model_root}: {exc.strerror or exc}") from exc


def next_version(model_root: Path) -> int:
    """One more than the highest numeric version under ``model_root`` (1 if none)."""
    if not model_root.is_dir():
        return 1
    versions = [int(p.name) for p in model_root.iterdir() if p.is_dir() and p.name.isdigit()]
    return max(versions, default=0) + 1


@contextmanager
def staging_directory(model_root: Path) -> Iterator[Path]:
    model_root.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".staging-", dir=model_root))
    # mkdtemp makes the directory private (0700); a published bundle must be readable by the
    # service's own user (e.g. uid 10001 in the container), as any directory made here would be.
    umask = os.umask(0)
    os.umask(umask)
    stage.chmod(0o777 & ~umask)
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def library_versions(opset: int, *extra: str) -> dict[str, Any]:
    """The manifest's ``libraries``: the installed versions of what made the graph (``extra``:
    more distributions to record), TensorFlow's as it reports itself, Python's and the opset."""
    versions: dict[str, Any] = {}
    for name in ("tensorflow-cpu", "keras", "tf2onnx", "onnx", "onnxruntime", "numpy", *extra):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    import tensorflow as tf  # here, not at the top: writing a bundle needs no TensorFlow

    versions["tensorflow"] = tf.__version__
    versions["python"] = platform.python_version()
    versions["opset"] = opset
    return versions


def write_manifest(stage: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Hash every file now in ``stage`` into ``manifest['files']`` and write it."""
    manifest = dict(manifest)
    manifest["files"] = {k: v.model_dump() for k, v in file_entries(stage).items()}
    (stage / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def publish(stage: Path, final: Path) -> None:
    if final.exists():
        raise BundleExistsError(f"{final} already exists; choose another --version")
    stage.rename(final)
