"""The model bundle: the one artefact the export step and the service share.

A bundle is a directory ``models/<name>/<version>/`` holding ``model.onnx``,
``tokenizer.json``, ``labels.json``, an optional ``report/`` and ``manifest.json``. The
manifest lists every other file with its sha256; :func:`load_bundle` refuses a bundle whose
schema version it does not know, whose files are missing or altered, or whose parts
disagree with each other, and says which.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from service.bundle.tokenizer import TextTokenizer, load_tokenizer

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
LABELS_FILE = "labels.json"
REQUIRED_FILES = (MODEL_FILE, TOKENIZER_FILE, LABELS_FILE)
DEFAULT_VARIANT = "fp32"  # model.onnx itself, the graph checked against Keras
_CHUNK = 1 << 20


class BundleError(Exception):
    """A bundle that must not be served; the message names the bundle and the problem, and
    ``reason`` says what kind of problem it is, in a word fit for a metric label: manifest,
    checksum, tokenizer, onnx, signature or invalid."""

    def __init__(self, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason


class TensorSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    dtype: str
    # Symbolic dimensions are strings ("batch", "sequence"); fixed ones are ints.
    shape: list[int | str]


class FileEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)


class Variant(BaseModel):
    """Another graph of the same model (e.g. int8), served only when asked for."""

    model_config = ConfigDict(extra="forbid")

    file: str
    description: str
    metrics: dict[str, Any] = Field(default_factory=dict)
    agreement: dict[str, Any] = Field(default_factory=dict)


class Manifest(BaseModel):
    """``manifest.json``. Fields beyond these (metrics, dataset, ...) are informative."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    version: int = Field(ge=1)
    created_at: str
    labels: list[str] = Field(min_length=2)
    input: TensorSpec
    output: TensorSpec
    max_length: int = Field(ge=1)
    files: dict[str, FileEntry]
    metrics: dict[str, Any] = Field(default_factory=dict)
    dataset: dict[str, Any] = Field(default_factory=dict)
    libraries: dict[str, Any] = Field(default_factory=dict)
    parity: dict[str, Any] | None = None
    training: dict[str, Any] = Field(default_factory=dict)
    # A converted model (textserve-export convert): the user's files (sha256), the Keras and
    # TensorFlow that read them, and the pipeline the tokenizer reproduces.
    source: dict[str, Any] | None = None
    variants: dict[str, Variant] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        if len(set(self.labels)) != len(self.labels):
            raise ValueError("labels are not unique")
        missing = [f for f in REQUIRED_FILES if f not in self.files]
        if missing:
            raise ValueError(f"files does not list {missing}")
        if len(self.input.shape) != 2 or self.input.dtype != "int32":
            raise ValueError("input must be int32 [batch, sequence]")
        if len(self.output.shape) != 2 or self.output.shape[1] != len(self.labels):
            raise ValueError(
                f"output shape {self.output.shape} does not match {len(self.labels)} labels"
            )
        unlisted = [v.file for v in self.variants.values() if v.file not in self.files]
        if unlisted or DEFAULT_VARIANT in self.variants:
            raise ValueError(f"variants name files the manifest does not list ({unlisted}) or '{DEFAULT_VARIANT}'")
        return self

    def public(self) -> dict[str, Any]:
        """What clients may see: no file paths, no library versions."""
        return {
            "name": self.name,
            "version": self.version,
            "created_at": self.created_at,
            "labels": self.labels,
            "max_length": self.max_length,
            "input": self.input.model_dump(),
            "output": self.output.model_dump(),
            "metrics": self.metrics,
            "dataset": {
                k: self.dataset[k] for k in ("name", "license", "rows_after_dedup", "splits")
                if k in self.dataset
            },
            "onnx_sha256": self.files[MODEL_FILE].sha256,
            "variants": {
                name: {"description": v.description, "metrics": v.metrics} for name, v in self.variants.items()
            },
        }


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: Manifest
    tokenizer: TextTokenizer

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE

    def variant_file(self, variant: str) -> str:
        """The graph file of ``variant`` ("fp32" is model.onnx); BundleError if absent."""
        if variant == DEFAULT_VARIANT:
            return MODEL_FILE
        if variant not in self.manifest.variants:
            offered = [DEFAULT_VARIANT, *self.manifest.variants]
            raise BundleError(f"bundle {self.path} has no '{variant}' variant (it has {offered})")
        return self.manifest.variants[variant].file

    @property
    def labels(self) -> list[str]:
        return self.manifest.labels


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_entries(directory: Path) -> dict[str, FileEntry]:
    """sha256 and size of every file under ``directory`` except the manifest."""
    entries = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        rel = path.relative_to(directory).as_posix()
        if rel != MANIFEST:
            entries[rel] = FileEntry(sha256=sha256_file(path), bytes=path.stat().st_size)
    return entries


def resolve_bundle_dir(path: Path) -> Path:
    """``path`` itself if it holds a manifest, else its newest numeric version subdirectory.

    So ``models/sentiment`` serves the highest ``models/sentiment/<N>`` and
    ``models/sentiment/1`` serves exactly that version. A directory whose only visible entry
    is another directory is looked into once: that is how an archive made with its top folder
    (``sentiment/1/...``) unpacks, e.g. into KServe's ``/mnt/models`` (docs/kserve.md).
    """
    return _resolve(path, unwrap=True)


def _resolve(path: Path, unwrap: bool) -> Path:
    if (path / MANIFEST).is_file():
        return path
    if not path.is_dir():
        raise BundleError(f"model path {path} does not exist or is not a directory")
    if any((path / name).exists() for name in REQUIRED_FILES):
        raise BundleError(f"bundle {path}: {MANIFEST} is missing")
    try:
        entries = [p for p in path.iterdir() if not p.name.startswith(".")]
    except OSError as exc:
        raise BundleError(f"cannot read model path {path}: {exc.strerror or exc}") from exc
    versions = [p for p in entries if p.name.isdigit() and p.is_dir()]
    if versions:
        return max(versions, key=lambda p: int(p.name))
    if unwrap and len(entries) == 1 and entries[0].is_dir():
        try:
            return _resolve(entries[0], unwrap=False)
        except BundleError as exc:
            raise BundleError(f"{path} holds only {entries[0].name}/, which is not a model: {exc}") from exc
    raise BundleError(f"{path} has no {MANIFEST} and no numeric version directories")


def read_manifest(directory: Path) -> Manifest:
    try:
        data = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BundleError(f"bundle {directory}: {MANIFEST} is missing", "manifest") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"bundle {directory}: {MANIFEST} is unreadable: {exc}", "manifest") from exc
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        found = data.get("schema_version") if isinstance(data, dict) else None
        raise BundleError(
            f"bundle {directory}: manifest schema_version {found!r} is not {SCHEMA_VERSION}", "manifest"
        )
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "manifest"
        raise BundleError(f"bundle {directory}: invalid manifest ({where}: {first['msg']})", "manifest") from exc


def verify_files(directory: Path, manifest: Manifest) -> None:
    for rel, entry in manifest.files.items():
        path = directory / rel
        if not path.is_file():
            raise BundleError(f"bundle {directory}: {rel} is missing", "checksum")
        try:
            size = path.stat().st_size
            if size != entry.bytes:
                raise BundleError(
                    f"bundle {directory}: {rel} is {size} bytes, manifest says {entry.bytes}"
                    " (truncated or replaced)", "checksum",
                )
            actual = sha256_file(path)
        except OSError as exc:
            raise BundleError(f"bundle {directory}: cannot read {rel}: {exc.strerror}", "checksum") from exc
        if actual != entry.sha256:
            raise BundleError(f"bundle {directory}: {rel} fails its sha256 check (altered)", "checksum")


def _read_parts(directory: Path, manifest: Manifest) -> TextTokenizer:
    try:
        labels = json.loads((directory / LABELS_FILE).read_text(encoding="utf-8"))
        tokenizer = load_tokenizer(directory / TOKENIZER_FILE)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"bundle {directory}: cannot read its tokenizer or labels: {exc}", "tokenizer") from exc
    if labels != manifest.labels:
        raise BundleError(f"bundle {directory}: {LABELS_FILE} {labels} != manifest {manifest.labels}", "manifest")
    if tokenizer.max_length != manifest.max_length:
        raise BundleError(
            f"bundle {directory}: tokenizer max_length {tokenizer.max_length}"
            f" != manifest {manifest.max_length}", "tokenizer",
        )
    width = manifest.input.shape[1]
    if isinstance(width, int) and (width != tokenizer.max_length or tokenizer.padding_invariant):
        raise BundleError(
            f"bundle {directory}: the graph takes exactly {width} ids per text, so its tokenizer"
            f" must pad every text to it (max_length {tokenizer.max_length}, padding_invariant false)"
        )
    return tokenizer


def load_bundle(path: Path) -> Bundle:
    """Resolve, verify and load a bundle, or raise :class:`BundleError` saying what is wrong."""
    directory = resolve_bundle_dir(Path(path))
    manifest = read_manifest(directory)
    verify_files(directory, manifest)
    tokenizer = _read_parts(directory, manifest)
    return Bundle(directory, manifest, tokenizer)
