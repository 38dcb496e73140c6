"""A real `python -m service` process on 127.0.0.1 and a free port, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import httpx

REPO = Path(__file__).resolve().parents[2]


T = TypeVar("T")


def eventually(probe: Callable[[], T | None], timeout: float = 20.0) -> T:
    """What ``probe`` finds once it finds something; AssertionError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("not within the time allowed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServerProcess:
    def __init__(self, model_path: Path, cpus: str | None = None, **settings: object) -> None:
        self.cpus = cpus  # a taskset list the server may run on (default: the test's own)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # Never the default 8001: tests (and other checkouts' tests) run side by side.
        self.grpc_port = int(str(settings.pop("grpc_port", free_port())))
        self.grpc_target = f"127.0.0.1:{self.grpc_port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TEXTSERVE_")}
        env.update({
            "TEXTSERVE_HOST": "127.0.0.1",
            "TEXTSERVE_PORT": str(self.port),
            "TEXTSERVE_GRPC_PORT": str(self.grpc_port),
            "TEXTSERVE_MODEL_PATH": str(model_path),
            "PYTHONUNBUFFERED": "1",
        })
        env.update({f"TEXTSERVE_{k.upper()}": str(v) for k, v in settings.items()})
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"textserve-e2e-{self.port}.log"

    def start(self, timeout: float = 30.0) -> ServerProcess:
        self._stderr = self.stderr_path.open("wb")
        command = [sys.executable, "-m", "service"]
        if self.cpus is not None:
            command = ["taskset", "-c", self.cpus, *command]  # taskset execs: proc.pid is the server's
        self.proc = subprocess.Popen(
            command, cwd=REPO, env=self.env,
            stdout=subprocess.DEVNULL, stderr=self._stderr,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._stderr.close()
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.logs()[-2000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server not ready within {timeout} s: {self.logs()[-2000:]}")

    def logs(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def signal(self, sig: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if hasattr(self, "_stderr"):
            self._stderr.close()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.stop()
