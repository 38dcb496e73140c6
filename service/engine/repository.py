"""The model repository on disk: ``<repository>/<name>/<version>/``, each version a bundle.

Pure reading, no serving: which models and versions are there, which of them count (a
version counts only when its manifest is there and every file matches its sha256), what
each model's version policy (``<name>/config.json``) asks for. Publishing a version is
"write it to a temporary directory, then rename it into place"; a version that is still
being copied is looked at again when it changes, and is called bad only once it has stopped
changing and still does not verify.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from service.bundle.format import MANIFEST, Bundle, BundleError, load_bundle, read_manifest, resolve_bundle_dir
from service.engine.admission import InvalidName, UnknownModel
from service.settings import Settings

CONFIG = "config.json"
# A model name: one path segment of these characters, not "." or ".."; a version: a
# positive integer without leading zeros. (OpenAPI documents the same patterns.)
NAME_PATTERN = r"^(?!\.\.?$)[A-Za-z0-9_.-]+$"
VERSION_PATTERN = r"^[1-9][0-9]{0,17}$"
_NAME = re.compile(NAME_PATTERN)


def check_name(name: str) -> str:
    """``name`` if it is one path segment of ``[A-Za-z0-9_.-]`` (and not ``.`` or ``..``)."""
    if not _NAME.match(name):
        raise InvalidName(
            "a model name is one path segment of letters, digits, '_', '.' and '-' (not '.' or '..')"
        )
    return name


def check_version(version: str) -> int:
    """A version as given in a path: a positive integer, written as one (``01`` names no version)."""
    if not (version.isascii() and version.isdigit()) or len(version) > 18 or int(version) < 1:
        raise InvalidName("a model version is a positive integer")
    if version != str(int(version)):
        raise UnknownModel(f"no version {version!r}: versions are written without leading zeros")
    return int(version)


def _is_version(name: str) -> bool:
    return name.isascii() and name.isdigit() and name == str(int(name)) and int(name) >= 1


@dataclass(frozen=True)
class VersionPolicy:
    """Which versions of a model to serve, in Triton's and TF Serving's shapes:
    ``{"latest": {"num_versions": N}}``, ``{"all": {}}``, ``{"specific": {"versions": [...]}}``."""

    kind: str = "latest"
    count: int = 1
    versions: tuple[int, ...] = ()

    def choose(self, available: list[int]) -> list[int]:
        """The versions to serve among ``available`` (those that verify and load), highest first."""
        ordered = sorted(available, reverse=True)
        if self.kind == "all":
            return ordered
        if self.kind == "specific":
            return [v for v in ordered if v in self.versions]
        return ordered[: self.count]

    @classmethod
    def parse(cls, data: object) -> VersionPolicy:
        """The policy in a model's config.json (``{"version_policy": {...}}``); ValueError if bad."""
        if not isinstance(data, dict) or set(data) - {"version_policy"}:
            raise ValueError('config.json must be an object with only "version_policy"')
        policy = data.get("version_policy", {"latest": {"num_versions": 1}})
        if not isinstance(policy, dict) or len(policy) != 1:
            raise ValueError('"version_policy" must hold exactly one of "latest", "all", "specific"')
        ((kind, body),) = policy.items()
        if kind == "all" and body == {}:
            return cls("all")
        if kind == "latest" and isinstance(body, dict) and set(body) == {"num_versions"}:
            count = body["num_versions"]
            if isinstance(count, int) and not isinstance(count, bool) and count >= 1:
                return cls("latest", count)
            raise ValueError('"latest": {"num_versions": N} needs a positive integer N')
        if kind == "specific" and isinstance(body, dict) and set(body) == {"versions"}:
            versions = body["versions"]
            if isinstance(versions, list) and versions and all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in versions
            ):
                return cls("specific", versions=tuple(versions))
            raise ValueError('"specific": {"versions": [...]} needs a list of positive integers')
        raise ValueError(
            'the version policy is {"latest": {"num_versions": N}}, {"all": {}} or'
            ' {"specific": {"versions": [N, ...]}}'
        )


Fingerprint = tuple[tuple[str, int, int], ...]


def fingerprint(directory: Path) -> Fingerprint:
    """What changes when a file in ``directory`` is written, added or removed."""
    entries = []
    for root, _, files in os.walk(directory):
        for name in files:
            path = Path(root, name)
            try:
                stat = path.stat()
            except OSError:
                continue
            entries.append((str(path.relative_to(directory)), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(entries))


@dataclass
class VersionCheck:
    """The last look at one version directory."""

    fingerprint: Fingerprint
    problem: str | None  # None: it verifies
    reason: str  # the problem in a word (BundleError.reason), "" when it verifies
    settled: bool  # looked at twice with no change in between (a copy is not still running)
    # The bundle this look verified, for loading it without hashing it again; only on the
    # check that read it (the remembered check keeps none, so nothing unloaded is held).
    bundle: Bundle | None = None


@dataclass
class ModelDir:
    """One model's directory as last read: its policy (or why it has none) and versions."""

    name: str
    path: Path
    policy: VersionPolicy | None
    config_problem: str | None
    versions: dict[int, Path] = field(default_factory=dict)


def read_policy(model_dir: Path) -> tuple[VersionPolicy | None, str | None]:
    config = model_dir / CONFIG
    if not config.exists():
        return VersionPolicy(), None
    try:
        return VersionPolicy.parse(json.loads(config.read_text(encoding="utf-8"))), None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        return None, f"{CONFIG} is not a valid configuration: {exc}"


def read_model_dir(path: Path) -> ModelDir:
    policy, problem = read_policy(path)
    versions: dict[int, Path] = {}
    try:
        for child in path.iterdir():
            if child.is_dir() and _is_version(child.name):
                versions[int(child.name)] = child
    except OSError as exc:
        problem = problem or f"cannot read the model directory: {exc.strerror or exc}"
    return ModelDir(path.name, path, policy, problem, versions)


def scan(root: Path) -> dict[str, ModelDir]:
    """Every model directory under ``root`` (hidden ones and stray files are not models)."""
    models = {}
    try:
        children = sorted(root.iterdir())
    except OSError as exc:
        raise BundleError(f"cannot read the model repository {root}: {exc.strerror or exc}", "config") from exc
    for child in children:
        if child.is_dir() and not child.name.startswith(".") and _NAME.match(child.name):
            models[child.name] = read_model_dir(child)
    return models


class Verifier:
    """Checks versions against their manifests, remembering what it saw so that an unchanged
    version is not hashed again, and a changing one is not judged until it settles."""

    def __init__(self) -> None:
        self._seen: dict[Path, VersionCheck] = {}

    def check(self, directory: Path, version: int) -> VersionCheck | None:
        """None while the version is not there yet (no manifest); else the check, whose
        ``problem`` is None when every file verifies."""
        if not (directory / MANIFEST).is_file():
            self._seen.pop(directory, None)
            return None
        now = fingerprint(directory)
        last = self._seen.get(directory)
        if last is not None and last.fingerprint == now:
            last.settled = True
            return last
        problem, reason, bundle = verify(directory, version)
        check = VersionCheck(now, problem, reason, settled=False)
        self._seen[directory] = check
        return replace(check, bundle=bundle)

    def forget(self, directory: Path) -> None:
        self._seen.pop(directory, None)


def verify(directory: Path, version: int | None) -> tuple[str | None, str, Bundle | None]:
    """(problem, its reason in a word, the bundle): the bundle and no problem when every file
    verifies and its manifest is ``version`` (any, for None)."""
    try:
        bundle = load_bundle(directory)
    except BundleError as exc:
        return str(exc), exc.reason, None
    if version is not None and bundle.manifest.version != version:
        return f"bundle {directory}: its manifest says version {bundle.manifest.version}", "manifest", None
    return None, "", bundle


def single_model_dir(path: Path) -> ModelDir:
    """``TEXTSERVE_MODEL_PATH`` as a repository of one model: a bundle directory, or the
    newest version of a model directory. Its name is that version's manifest name."""
    # As it always has: the newest version serves, or nothing does (never an older one).
    newest = resolve_bundle_dir(path)  # BundleError when there is nothing to serve
    if newest == path:
        manifest = read_manifest(path)
        return ModelDir(manifest.name, path, VersionPolicy(), None, {manifest.version: path})
    model = read_model_dir(newest.parent)  # path, or the one directory inside it
    model.name = read_manifest(newest).name
    model.versions = {v: p for v, p in model.versions.items() if p == newest}
    return model


def choose_default(names: list[str], wanted: str | None) -> str:
    """The model ``/predict`` answers for: ``wanted``, or the only one; BundleError otherwise."""
    if wanted is not None:
        if wanted not in names:
            raise BundleError(f"TEXTSERVE_DEFAULT_MODEL is {wanted!r}, which is not among {names}", "config")
        return wanted
    if len(names) != 1:
        raise BundleError(
            f"the repository holds {len(names)} models ({', '.join(names) or 'none'}):"
            " set TEXTSERVE_DEFAULT_MODEL to the one /predict answers for", "config",
        )
    return names[0]


def check_repository(settings: Settings) -> None:
    """Before any worker starts: BundleError (one line) unless the default model has a
    version that verifies. onnxruntime is not loaded here (the caller forks next)."""
    if settings.model_repository is None:
        load_bundle(settings.model_path)
        return
    models = scan(settings.model_repository)
    default = models[choose_default(sorted(models), settings.default_model)]
    if default.policy is None:
        raise BundleError(f"model {default.name!r}: {default.config_problem}", "config")
    problems = []
    for version in sorted(default.versions, reverse=True):
        problem, _, _ = verify(default.versions[version], version)
        if problem is None:
            return
        problems.append(problem)
    raise BundleError(problems[0] if problems else f"model {default.name!r} has no version directory", "config")
