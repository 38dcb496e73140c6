"""What ``TEXTSERVE_MODEL_PATH=/mnt/models`` finds under KServe (docs/kserve.md).

KServe's storage initializer copies what ``storageUri`` names into ``/mnt/models`` before the
server starts: the files of one prefix (s3, gs, azure), links to the entries of a local or PVC
directory, or the unpacked contents of one ``.tar.gz``/``.zip``. Each layout it can produce
from a bundle or a model directory is built here under a ``mnt/models`` of its own.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest

from service.bundle.format import BundleError, load_bundle, resolve_bundle_dir


@pytest.fixture
def mnt(tmp_path: Path) -> Path:
    """An empty ``/mnt/models``, as the storage initializer's emptyDir starts."""
    path = tmp_path / "mnt" / "models"
    path.mkdir(parents=True)
    return path


@pytest.fixture
def model_dir(bundle_copy: Path) -> Path:
    """``.../sentiment`` holding versions 1 and 2 (2 is a copy of 1 with its own version)."""
    root = bundle_copy.parent
    shutil.copytree(bundle_copy, root / "2")
    manifest = json.loads((root / "2" / "manifest.json").read_text())
    manifest["version"] = 2
    (root / "2" / "manifest.json").write_text(json.dumps(manifest))
    return root


def copy_into(source: Path, target: Path) -> None:
    """What an object-store download does: the prefix's files, their subpaths kept."""
    shutil.copytree(source, target, dirs_exist_ok=True)


def link_into(source: Path, target: Path) -> None:
    """What the initializer does for a local path: a symlink per top-level entry."""
    for entry in source.iterdir():
        (target / entry.name).symlink_to(entry)


def unpack_into(source: Path, target: Path, arcname: str, tmp: Path) -> None:
    """An archive of ``source`` stored under ``arcname`` ("." for its contents), unpacked.
    (Uncompressed, for speed: a .tar.gz of it unpacks to the same tree.)"""
    archive = tmp / "model.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(source, arcname=arcname)
    # As the initializer does (tarfile.extractall); the data filter where this Python has it.
    safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    with tarfile.open(archive) as tar:
        tar.extractall(target, **safe)  # type: ignore[arg-type]


def test_storage_uri_of_one_bundle_puts_its_files_directly_in_mnt_models(bundle_copy: Path, mnt: Path) -> None:
    copy_into(bundle_copy, mnt)
    assert (mnt / "manifest.json").is_file() and (mnt / "report" / "report.md").is_file()
    bundle = load_bundle(mnt)
    assert bundle.path == mnt and bundle.manifest.version == 1


def test_storage_uri_of_a_model_directory_serves_its_highest_version(model_dir: Path, mnt: Path) -> None:
    copy_into(model_dir, mnt)
    (mnt / "lost+found").mkdir()  # a PVC's root; not a version
    assert resolve_bundle_dir(mnt) == mnt / "2"
    assert load_bundle(mnt).manifest.version == 2


def test_linked_entries_of_a_local_bundle_are_followed(bundle_copy: Path, mnt: Path) -> None:
    link_into(bundle_copy, mnt)
    assert (mnt / "model.onnx").is_symlink()
    assert load_bundle(mnt).manifest.version == 1


def test_linked_version_directories_of_a_local_model_directory_are_followed(model_dir: Path, mnt: Path) -> None:
    link_into(model_dir, mnt)
    assert (mnt / "2").is_symlink()
    assert load_bundle(mnt).manifest.version == 2


def test_mnt_models_itself_a_link_as_an_oci_model_car_makes_it(model_dir: Path, tmp_path: Path) -> None:
    mnt = tmp_path / "models-link"
    mnt.symlink_to(model_dir, target_is_directory=True)
    assert load_bundle(mnt).manifest.version == 2


@pytest.mark.parametrize(
    ("what", "arcname", "served"),
    [
        ("bundle contents", ".", "."),
        ("bundle in its folder", "sentiment-1", "sentiment-1"),
        ("model directory contents", ".", "2"),
        ("model directory in its folder", "sentiment", "sentiment/2"),
    ],
)
def test_unpacked_archives_are_served(
    what: str, arcname: str, served: str, bundle_copy: Path, model_dir: Path, mnt: Path, tmp_path: Path
) -> None:
    source = bundle_copy if what.startswith("bundle") else model_dir
    unpack_into(source, mnt, arcname, tmp_path)
    assert resolve_bundle_dir(mnt) == (mnt / served if served != "." else mnt)
    assert load_bundle(mnt).manifest.name == "sentiment"


def test_a_folder_is_looked_into_once_only(bundle_copy: Path, mnt: Path) -> None:
    copy_into(bundle_copy, mnt / "a" / "b")
    with pytest.raises(BundleError, match=r"holds only a/, which is not a model: .*a has no manifest\.json"):
        load_bundle(mnt)


def test_hidden_entries_do_not_count_as_the_only_folder(bundle_copy: Path, mnt: Path) -> None:
    copy_into(bundle_copy, mnt / "sentiment-1")
    (mnt / ".cache").mkdir()
    assert resolve_bundle_dir(mnt) == mnt / "sentiment-1"


def test_two_folders_are_not_guessed_between(bundle_copy: Path, mnt: Path) -> None:
    copy_into(bundle_copy, mnt / "sentiment-1")
    copy_into(bundle_copy, mnt / "sentiment-copy")
    with pytest.raises(BundleError, match=r"no manifest\.json and no numeric version directories"):
        load_bundle(mnt)


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("empty", r"no manifest\.json and no numeric version directories"),
        ("only model.onnx", r"manifest\.json is missing"),
        ("only an unrelated folder", r"holds only lost\+found/, which is not a model"),
    ],
)
def test_what_cannot_be_served_is_refused_with_its_reason(
    layout: str, message: str, bundle_copy: Path, mnt: Path
) -> None:
    if layout == "only model.onnx":  # storageUri named one file of the bundle
        shutil.copy(bundle_copy / "model.onnx", mnt / "model.onnx")
    elif layout == "only an unrelated folder":
        (mnt / "lost+found").mkdir()
    with pytest.raises(BundleError, match=message):
        load_bundle(mnt)
