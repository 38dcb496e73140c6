"""The import rules that keep the parts of the service apart and serving free of TensorFlow.

Imports point one way: ``http``, ``v2`` -> ``asgi`` -> ``engine`` -> ``bundle``;
``model_export`` -> ``bundle`` only. ``engine`` and ``bundle`` never see a web framework,
``bundle`` never reads the service's settings, and ``http`` and ``v2`` are siblings.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SERVICE = REPO / "service"
FORBIDDEN = ("tensorflow", "keras", "tf2onnx", "model_export", "tf_keras", "sklearn", "matplotlib")
WEB = ("fastapi", "starlette", "uvicorn", "gunicorn", "uvicorn_worker", "grpc")
MAX_LINES = 300


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def service_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(SERVICE.rglob("*.py"))}


def imports(path: Path, top_level_only: bool = False) -> set[str]:
    """Modules ``path`` imports: every import, or only those run when it is imported (not
    inside functions or ``if TYPE_CHECKING:``)."""
    tree = ast.parse(path.read_text(), str(path))
    nodes: list[ast.AST] = []
    if top_level_only:
        stack: list[ast.AST] = list(tree.body)
        while stack:
            node = stack.pop()
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            nodes.append(node)
            if isinstance(node, ast.If | ast.Try | ast.With | ast.ClassDef):
                stack.extend(ast.iter_child_nodes(node))
    else:
        nodes = list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def part_imports(part: str) -> dict[str, set[str]]:
    return {name: imports(path) for name, path in service_modules().items() if name.startswith(f"service.{part}")}


def offenders(part: str, banned: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{name}: {imported}"
        for name, found in part_imports(part).items()
        for imported in found
        if any(imported == b or imported.startswith(b + ".") for b in banned)
    )


def test_importing_every_service_module_loads_no_training_library() -> None:
    modules = sorted(service_modules())
    assert "service.bundle.tokenizer" in modules and "service.engine.batcher" in modules
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(','.join(sorted(n for n in sys.modules if n.split('.')[0] in {FORBIDDEN!r})))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.strip() == ""


def test_no_service_source_names_a_training_library() -> None:
    """Catches imports hidden inside functions, which the subprocess check cannot see."""
    assert offenders("", FORBIDDEN) == []


def test_engine_and_bundle_know_no_transport() -> None:
    transports = ("service.asgi", "service.http", "service.v2", "service.process", "service.app", *WEB)
    assert offenders("engine", transports) == []
    assert offenders("bundle", transports) == []


def test_bundle_reads_no_service_settings_and_needs_nothing_else_of_the_service() -> None:
    outside = [
        f"{name}: {imported}"
        for name, found in part_imports("bundle").items()
        for imported in found
        if imported.startswith("service.") and not imported.startswith("service.bundle")
    ]
    assert outside == []


def test_http_and_v2_are_siblings() -> None:
    assert offenders("http", ("service.v2",)) == []
    assert offenders("v2", ("service.http",)) == []
    assert offenders("asgi", ("service.http", "service.v2", "service.process", "service.app")) == []


def test_model_export_uses_only_the_bundle_package() -> None:
    used = {
        imported
        for path in (REPO / "model_export").rglob("*.py")
        for imported in imports(path)
        if imported == "service" or imported.startswith("service.")
    }
    assert used and all(name.startswith("service.bundle.") for name in used), sorted(used)


def test_no_import_cycles() -> None:
    modules = service_modules()
    graph = {
        name: {m for m in imports(path, top_level_only=True) if m in modules and m != name}
        for name, path in modules.items()
    }
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for nxt in sorted(graph[name]):
            assert state.get(nxt) != 1, "import cycle: " + " -> ".join([*path, name, nxt])
            if nxt not in state:
                visit(nxt, [*path, name])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def test_no_module_is_longer_than_a_reader_takes_in_at_once() -> None:
    """protoc's output (``generated/``, made by a command and checked by a test) is not read."""
    sources = [*SERVICE.rglob("*.py"), *(REPO / "model_export").rglob("*.py")]
    sources = [p for p in sources if "generated" not in p.relative_to(REPO).parts]
    long = {str(p.relative_to(REPO)): n for p in sources if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_tokenizer_uses_only_stdlib_and_numpy() -> None:
    """Every kind of tokenizer (one module each) and the loader that picks one."""
    modules = sorted((SERVICE / "bundle" / "tokenizer").glob("*.py"))
    assert {p.stem for p in modules} >= {"__init__", "textserve", "keras_tokenizer", "text_vectorization"}
    for path in modules:
        outside = {
            name for name in imports(path)
            if name.split(".")[0] not in {*sys.stdlib_module_names, "numpy"}
            and not name.startswith("service.bundle.tokenizer")
        }
        assert outside == set(), f"{path.name} imports {sorted(outside)}"


def test_the_export_cli_reads_and_checks_data_before_loading_tensorflow() -> None:
    """Bad data must be refused fast: the CLI module and what it imports first are TF-free."""
    code = (
        "import sys, model_export.__main__\n"
        "print(','.join(sorted(n for n in sys.modules if n.split('.')[0] in ('tensorflow', 'keras', 'tf2onnx'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.strip() == ""


def test_the_workers_arbiter_loads_neither_onnxruntime_nor_the_app() -> None:
    """gunicorn's arbiter forks the workers: nothing that starts a thread may be loaded there
    (grpcio's core starts threads, and does not survive a fork it has not prepared for)."""
    code = (
        "import sys, service.__main__, service.process.workers\n"
        "print(','.join(sorted(n for n in sys.modules if n.split('.')[0] in ('onnxruntime', 'numpy', 'grpc')"
        " or n in ('service.app', 'service.engine.engine'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.strip() == ""


def test_tracing_off_loads_no_opentelemetry_sdk() -> None:
    """TEXTSERVE_TRACING off (the default): the app is built and nothing of the SDK, the
    exporters or the service's tracing module is imported."""
    code = (
        "import sys\n"
        "from service.app import create_app\n"
        "create_app()\n"
        "print(','.join(sorted(n for n in sys.modules if n.startswith(('opentelemetry.sdk', 'opentelemetry.exporter'))"
        " or n == 'service.observability.tracing')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.strip() == ""
