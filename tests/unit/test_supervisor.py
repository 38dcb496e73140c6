"""The worker supervisor's rules, on real forked processes (the work is a stand-in)."""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from service import supervisor
from service.middleware import new_request_id
from service.settings import Settings
from service.supervisor import Supervisor, check_port_free, reuse_port_socket, serve_workers


def test_a_worker_that_never_gets_ready_stops_the_service_with_its_code(tmp_path: Path) -> None:
    def work(slot: int) -> int:
        (tmp_path / str(os.getpid())).touch()
        return 7

    assert Supervisor(3, work, was_ready=lambda pid: False).run() == 7
    assert len(list(tmp_path.iterdir())) == 1  # the others were never started


def test_a_ready_worker_that_dies_is_replaced_and_a_signal_stops_them_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(supervisor, "RESTART_PAUSE_S", 0.01)
    exited: list[int] = []

    def work(slot: int) -> int:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        (tmp_path / str(os.getpid())).touch()  # "ready"
        if slot == 1 and len(list(tmp_path.iterdir())) == 2:
            return 9  # slot 1's first worker crashes once it is ready
        while True:
            time.sleep(0.01)

    def stop_once_replaced() -> None:
        deadline = time.monotonic() + 20
        while len(list(tmp_path.iterdir())) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)

    boss = Supervisor(2, work, was_ready=lambda pid: (tmp_path / str(pid)).exists(), exited=exited.append)
    threading.Thread(target=stop_once_replaced, daemon=True).start()
    assert boss.run() == 0  # every worker drained and exited 0 on the forwarded SIGTERM
    assert len(list(tmp_path.iterdir())) == 3  # two workers, then one replacement
    assert sorted(exited) == sorted(int(p.name) for p in tmp_path.iterdir())
    assert not boss.children


def test_workers_share_the_port_but_nothing_else_may(tmp_path: Path) -> None:
    first = reuse_port_socket("127.0.0.1", 0)
    port = first.getsockname()[1]
    second = reuse_port_socket("127.0.0.1", port)  # another worker
    with pytest.raises(OSError):
        check_port_free("127.0.0.1", port)  # so a second service refuses to start
    first.close()
    second.close()
    check_port_free("127.0.0.1", port)
    with socket.socket() as plain:
        plain.bind(("127.0.0.1", port))
        plain.listen()
        with pytest.raises(OSError):
            reuse_port_socket("127.0.0.1", port)


def test_a_forked_worker_draws_its_own_request_id_prefix() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    assert len(child) == 32
    assert child[:16] != new_request_id()[:16]


def test_workers_without_a_writable_temporary_directory_are_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def unwritable(prefix: str) -> str:
        raise PermissionError(13, "Permission denied", "/tmp")

    monkeypatch.setattr(supervisor.tempfile, "mkdtemp", unwritable)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = Settings(host="127.0.0.1", port=port, workers=2)
    assert serve_workers(settings, lambda *_: pytest.fail("no worker may start")) == 1
    assert capsys.readouterr().err.startswith("textserve: the workers need a writable temporary directory")
