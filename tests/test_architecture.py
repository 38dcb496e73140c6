"""The import rules that keep serving free of TensorFlow."""

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN = ("tensorflow", "keras", "tf2onnx", "model_export", "tf_keras", "sklearn", "matplotlib")


def service_modules() -> list[str]:
    return sorted(
        "service." + p.stem if p.stem != "__init__" else "service"
        for p in (REPO / "service").glob("*.py")
    )


def test_importing_every_service_module_loads_no_training_library() -> None:
    modules = service_modules()
    assert "service.tokenizer" in modules and "service.bundle" in modules
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(','.join(sorted(n for n in sys.modules if n.split('.')[0] in {FORBIDDEN!r})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert result.stdout.strip() == ""


def test_no_service_source_names_a_training_library() -> None:
    """Catches imports hidden inside functions, which the subprocess check cannot see."""
    offenders = []
    for path in (REPO / "service").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []


def test_tokenizer_uses_only_stdlib_and_numpy() -> None:
    tree = ast.parse((REPO / "service" / "tokenizer.py").read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots.add(node.module.split(".")[0])
    assert roots - {"numpy"} <= set(sys.stdlib_module_names)


def test_the_export_cli_reads_and_checks_data_before_loading_tensorflow() -> None:
    """Bad data must be refused fast: the CLI module and what it imports first are TF-free."""
    code = (
        "import sys, model_export.__main__\n"
        "print(','.join(sorted(n for n in sys.modules if n.split('.')[0] in ('tensorflow', 'keras', 'tf2onnx'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.strip() == ""
