"""The README and docs/ stay true to the code where that is cheap to check: pages and links
that exist, paths that exist, settings, routes, error codes and metrics that exist, the
bespoke fast paths all listed, examples the shipped model really answers, and no per-run logs.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

README = REPO / "README.md"
DOCS = REPO / "docs"
MAX_README_LINES = 300
# Paths in these top-level folders that the docs name must exist (bench/results/ is made by
# the bench, and models/ is named with versions a user makes).
CHECKED_ROOTS = ("service", "model_export", "bench", "tests", "docker", "k8s", ".ci")
PATH = re.compile(r"(?<![\w/.-])((?:" + "|".join(re.escape(r) for r in CHECKED_ROOTS) + r")/[\w./-]*)")
LINK = re.compile(r"\]\(([^)\s]+)\)")
BESPOKE_HEADER = re.compile(r"^\s*(?:#\s*)?Replaces:", re.MULTILINE)


def pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def page_ids() -> list[str]:
    return [str(p.relative_to(REPO)) for p in pages()]


def prose(text: str) -> str:
    """The page without its fenced code blocks (examples may name made-up paths)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", prose(page.read_text()), re.MULTILINE)}


def test_the_readme_is_short() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; move depth into docs/"


def test_every_docs_page_is_linked_from_the_readme_and_every_link_exists() -> None:
    linked = {
        (README.parent / target.split("#")[0]).resolve()
        for target in LINK.findall(README.read_text())
        if target.startswith("docs/")
    }
    missing = sorted(str(p.relative_to(REPO)) for p in linked if not p.is_file())
    assert missing == [], f"the README links pages that do not exist: {missing}"
    orphans = sorted(p.name for p in DOCS.glob("*.md") if p.resolve() not in linked)
    assert orphans == [], f"docs/ pages the README does not link (add them to 'Where next'): {orphans}"


@pytest.mark.parametrize("page", pages(), ids=page_ids())
def test_relative_links_and_their_anchors_resolve(page: Path) -> None:
    broken = []
    for target in LINK.findall(prose(page.read_text())):
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        linked = (page.parent / file_part).resolve() if file_part else page
        if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in anchors(linked)):
            broken.append(target)
    assert broken == []


@pytest.mark.parametrize("page", pages(), ids=page_ids())
def test_every_path_the_page_names_exists(page: Path) -> None:
    named = {m.rstrip(".") for m in PATH.findall(page.read_text())}
    missing = sorted(p for p in named if not p.startswith("bench/results") and not (REPO / p).exists())
    assert missing == []


def repository_text_files() -> Iterator[Path]:
    """Source, manifests, scripts and docs; not hidden folders (the virtualenv, caches, git)
    except .ci, and not build output."""
    for root, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if (not d.startswith(".") or d == ".ci") and not d.endswith(".egg-info")]
        for name in files:
            path = Path(root) / name
            if path.suffix in {".py", ".yaml", ".yml", ".sh", ".toml", ".md", ".cfg"} or name in ("Makefile", "run"):
                yield path


def test_every_docs_page_the_repository_names_exists() -> None:
    """Comments in manifests, scripts and code point readers at docs/ pages too."""
    named = {
        (str(path.relative_to(REPO)), page)
        for path in repository_text_files()
        for page in re.findall(r"docs/([\w.-]+\.md)", path.read_text(errors="replace"))
    }
    missing = sorted((where, page) for where, page in named if not (DOCS / page).is_file())
    assert missing == []


@pytest.mark.parametrize("page", pages(), ids=page_ids())
def test_every_textserve_variable_named_is_a_setting(page: Path) -> None:
    from service.settings import Settings

    named = set(re.findall(r"TEXTSERVE_([A-Z][A-Z0-9_]*[A-Z0-9])", page.read_text()))
    unknown = sorted(n for n in named if n.lower() not in Settings.model_fields)
    assert unknown == []


@pytest.mark.parametrize("page", pages(), ids=page_ids())
def test_docs_describe_the_software_not_how_the_work_went(page: Path) -> None:
    text = page.read_text()
    # "session" alone is onnxruntime's word for a loaded graph; a work session is numbered or
    # "this"/"last"/"earlier" one.
    work_session = r"(?:this|that|last|previous|earlier|next|\w+th|first|second|third) sessions?"
    logs = re.findall(rf"\b(?:{work_session}|sessions? \d+|runs? \d+(?:-\d+)?)\b|\b20\d\d-\d\d-\d\d\b", text)
    assert logs == [], "per-run logs, dates or sessions belong in bench/results/, not the docs"


def bespoke_modules() -> list[str]:
    return sorted(
        str(p.relative_to(REPO)) for p in (REPO / "service").rglob("*.py") if BESPOKE_HEADER.search(p.read_text())
    )


def test_every_bespoke_fast_path_has_its_three_line_header_and_is_listed() -> None:
    modules = bespoke_modules()
    assert "service/process/protocol.py" in modules
    for module in modules:
        lines = (REPO / module).read_text().splitlines()
        at = next(i for i, line in enumerate(lines) if BESPOKE_HEADER.match(line))
        heads = [re.sub(r"^\s*(?:#\s*)?", "", line).split(":")[0] for line in lines[at : at + 3]]
        assert heads == ["Replaces", "Gain", "Off"], module
    performance = (DOCS / "performance.md").read_text()
    table = performance[performance.index("## Bespoke code paths") :]
    listed = set(re.findall(r"^\| `(service/[\w/]+\.py)`", table, re.MULTILINE))
    assert listed == set(modules), set(listed) ^ set(modules)


def test_the_metrics_table_is_the_metrics_page() -> None:
    from service.observability.metrics import Metrics

    page = Metrics().render().decode()
    served = dict(re.findall(r"^# TYPE (\S+) (\S+)$", page, re.MULTILINE))
    api = (DOCS / "api.md").read_text()
    documented = dict(re.findall(r"^\| `(textserve_\w+)` \| (\w+)", api, re.MULTILINE))
    assert documented == served


def route_forms(path: str) -> set[str]:
    """A documented route, its ``[/versions/{version}]`` part expanded both ways."""
    optional = re.search(r"\[([^\]]+)\]", path)
    if optional is None:
        return {path}
    return {path.replace(optional.group(0), ""), path.replace(optional.group(0), optional.group(1))}


def test_every_route_is_documented_and_every_documented_route_exists() -> None:
    from service.app import create_app
    from service.settings import Settings

    app = create_app(Settings())  # nothing is loaded before the lifespan runs
    served = {
        (method.upper(), path.replace("{model_name}", "{name}").replace("{model_version}", "{version}"))
        for path, operations in app.openapi()["paths"].items() for method in operations
    } | {("GET", "/docs")}
    documented = set()
    for page in ("api.md", "v2.md"):
        for method, path in re.findall(r"^\| `(GET|POST) (/[^`]*)`", (DOCS / page).read_text(), re.MULTILINE):
            documented |= {(method, form) for form in route_forms(path)}
    assert documented == served, documented ^ served


def test_every_error_code_the_service_sends_is_documented() -> None:
    from service.asgi import errors

    def subclasses(cls: type) -> Iterator[type]:
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    codes = {cls.code for cls in subclasses(errors.ServiceError)} - {"unavailable"}  # sent as one of three
    codes |= {"internal_error", "overloaded", "not_ready", "shutting_down", "not_found", "method_not_allowed"}
    api = (DOCS / "api.md").read_text()
    assert sorted(c for c in codes if f"`{c}`" not in api) == []


def curl_examples() -> list[tuple[str, str, str, Any]]:
    """(page, path, request body, shown answer) of every curl example followed by its answer."""
    found = []
    for page in pages():
        text = page.read_text()
        for m in re.finditer(r"```sh\n(curl [^`]*?)```\s*```json\n(.*?)```", text, re.DOTALL):
            words = shlex.split(m.group(1).replace("\\\n", " "))
            url = next(w for w in words if "localhost:" in w or "127.0.0.1:" in w)
            body = words[words.index("-d") + 1]
            found.append((page.name, "/" + url.split("/", 1)[1], body, json.loads(m.group(2))))
    return found


def close_enough(shown: Any, real: Any, where: str = "") -> list[str]:
    """Differences beyond the rounding the docs use for scores (2-3 decimals)."""
    if isinstance(shown, float) or isinstance(real, float):
        return [] if abs(float(shown) - float(real)) <= 0.006 else [f"{where}: {shown} vs {real}"]
    if isinstance(shown, dict) and isinstance(real, dict):
        if set(shown) != set(real):
            return [f"{where}: keys {sorted(shown)} vs {sorted(real)}"]
        return [d for k in shown for d in close_enough(shown[k], real[k], f"{where}.{k}")]
    if isinstance(shown, list) and isinstance(real, list):
        if len(shown) != len(real):
            return [f"{where}: {len(shown)} items vs {len(real)}"]
        return [d for i, (s, r) in enumerate(zip(shown, real, strict=True)) for d in close_enough(s, r, f"{where}[{i}]")]
    return [] if shown == real else [f"{where}: {shown!r} vs {real!r}"]


def test_the_curl_examples_show_what_the_shipped_model_answers(shipped_bundle_dir: Path) -> None:
    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.settings import Settings

    examples = curl_examples()
    assert {page for page, *_ in examples} >= {"README.md", "api.md", "v2.md"}
    with TestClient(create_app(Settings(model_path=shipped_bundle_dir, access_log=False))) as client:
        for page, path, body, shown in examples:
            response = client.post(path, content=body, headers={"content-type": "application/json"})
            assert response.status_code == 200, (page, path, response.text)
            assert close_enough(shown, response.json()) == [], page


def test_mermaid_diagrams_are_plain_flowcharts_with_quoted_labels() -> None:
    """What renders on any code host: a fenced mermaid block, ``flowchart LR``/``TD``, and
    node labels in quotes (an unquoted label with brackets or slashes breaks the parser)."""
    diagrams = [
        (page.name, block)
        for page in pages()
        for block in re.findall(r"^```mermaid\n(.*?)^```", page.read_text(), re.MULTILINE | re.DOTALL)
    ]
    assert any(name == "architecture.md" for name, _ in diagrams)
    for name, block in diagrams:
        lines = [line.strip() for line in block.strip().splitlines()]
        assert re.fullmatch(r"flowchart (LR|TD|TB|RL|BT)", lines[0]), (name, lines[0])
        unquoted = re.findall(r"\b\w+(?:\(\[|\[\(|\[\[|\[|\(\(|\(|\{)(?![\"(\[])", block)
        assert unquoted == [], (name, unquoted)
