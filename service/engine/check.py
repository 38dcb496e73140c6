"""``textserve check DIR``: verify a bundle, a model directory or a whole repository offline,
as the server would before serving it (checksums, manifest, tokenizer, the ONNX graph's
input and output in onnxruntime, a warm-up run), for pipelines that publish models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from service.bundle.format import MANIFEST, BundleError
from service.bundle.runtime import ModelRuntime
from service.engine.repository import CONFIG, ModelDir, read_model_dir, scan, verify


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    models: int = 0
    versions: int = 0

    def summary(self) -> str:
        return f"{self.models} model(s), {self.versions} version(s), {len(self.problems)} problem(s)"


def check_bundle(directory: Path, version: int | None = None) -> str | None:
    """The first problem of one bundle directory, or None if the server would serve it."""
    problem, _, bundle = verify(directory, version)
    if bundle is None:
        return problem
    try:
        ModelRuntime(bundle).warm_up()
    except BundleError as exc:
        return str(exc)
    return None


def _check_model(model: ModelDir, report: Report) -> None:
    report.models += 1
    if model.config_problem:
        report.problems.append(f"{model.path / CONFIG}: {model.config_problem}")
    if not model.versions:
        report.problems.append(f"{model.path}: no version directory (1, 2, ...) holds a bundle")
    for version in sorted(model.versions):
        report.versions += 1
        problem = check_bundle(model.versions[version], version)
        if problem:
            report.problems.append(problem)


def check_path(path: Path) -> Report:
    """Every problem under ``path``: a bundle, a model directory or a repository of models."""
    report = Report()
    if not path.is_dir():
        report.problems.append(f"{path}: not a directory")
    elif (path / MANIFEST).is_file():
        report.models, report.versions = 1, 1
        if problem := check_bundle(path):
            report.problems.append(problem)
    elif (model := read_model_dir(path)).versions:
        _check_model(model, report)
    else:
        try:
            models = scan(path)
        except BundleError as exc:
            report.problems.append(str(exc))
            return report
        if not models:
            report.problems.append(f"{path}: holds no bundle, no version directories and no model directories")
        for model_dir in models.values():
            _check_model(model_dir, report)
    return report
