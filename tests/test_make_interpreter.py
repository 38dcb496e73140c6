"""Which Python `make` builds the virtualenv from: Debian's PGO + LTO python3.11 when it has
venv, since the service's request path runs ~19% fewer instructions on it than on a default
pyenv build (docs/performance.md). `make -n` prints the commands without running them."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

DEBIAN_PYTHON = "/usr/bin/python3.11"


def venv_command(tmp_path: Path, *overrides: str) -> str:
    # Under `make test` this runs inside make: drop what a parent make passes down (its
    # flags, and the "Entering directory" lines a sub-make prints).
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    result = subprocess.run(
        ["make", "-n", "--no-print-directory", f"VENV={tmp_path / 'venv'}", *overrides, "run"],
        capture_output=True, text=True, cwd=REPO, env=env, check=True,
    )  # fmt: skip
    return next(line for line in result.stdout.splitlines() if " -m venv " in line)


def debian_python_has_venv() -> bool:
    probe = subprocess.run([DEBIAN_PYTHON, "-c", "import ensurepip, venv"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_builds_the_virtualenv_from_debians_python_when_it_can(tmp_path: Path) -> None:
    if not Path(DEBIAN_PYTHON).exists() or not debian_python_has_venv():
        assert venv_command(tmp_path).startswith("python3 -m venv ")
        return
    assert venv_command(tmp_path) == f"{DEBIAN_PYTHON} -m venv {tmp_path / 'venv'}"


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_python_on_the_command_line_overrides_the_choice(tmp_path: Path) -> None:
    assert venv_command(tmp_path, "PYTHON=python3.11").startswith("python3.11 -m venv ")
