"""``TEXTSERVE_WORKERS`` > 1: that many server processes on one port, kept running.

One process serves about one core (an event loop and an inference thread that share the
GIL), so a machine with more cores needs more processes. This supervisor forks them, and
each worker then loads its own model, binds the port with ``SO_REUSEPORT`` and serves as a
single process does. The kernel spreads connections over the workers by address hash;
uvicorn's own ``--workers`` shares one listening socket instead, and there whichever
worker wakes first accepts a burst of keep-alive connections (measured: 19/45, 62/2 and
51/13 of 64 connections between two workers, against 38/26, 29/35 and 33/31 here).

* The supervisor stays small: it never loads the model or starts a thread, so forking a
  worker is safe at any time.
* Signals: workers run in their own process group, so a terminal's Ctrl-C reaches the
  supervisor only, which passes each SIGTERM or SIGINT on to every worker once: the first
  drains them (as a single process drains), a second stops them at once. A worker whose
  supervisor dies gets SIGTERM from the kernel (``PR_SET_PDEATHSIG``).
* The first worker starts alone, and the others once it is ready: the service answers as
  soon as one worker could, the workers do not compete for the CPU while loading, and a
  model that cannot be served is said once.
* A worker that exits on its own after it was ready is replaced (after a pause of
  ``RESTART_PAUSE_S``); one that exits before it was ever ready means the service cannot
  start, so the others are stopped and the supervisor exits with its code.
* /metrics is the sum over all workers (``worker_metrics.py``); a worker's first metrics
  page is also how the supervisor knows it got ready.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from service.settings import Settings
from service.worker_metrics import page_path, retire

log = logging.getLogger("textserve")

RESTART_PAUSE_S = 1.0
READY_POLL_S = 0.02
BACKLOG = 2048  # uvicorn's default
_PR_SET_PDEATHSIG = 1
_FORWARDED = (signal.SIGTERM, signal.SIGINT)


def _address(host: str, port: int) -> tuple[socket.AddressFamily, tuple[Any, ...]]:
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    return family, address


def check_port_free(host: str, port: int) -> None:
    """OSError if something already listens on host:port. Workers bind with SO_REUSEPORT,
    which would otherwise let them share the port with another server of the same user
    (another textserve's workers, say) and split its traffic."""
    family, address = _address(host, port)
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: TIME_WAIT is no obstacle
        probe.bind(address)


def cannot_listen(settings: Settings, exc: OSError) -> int:
    """Say why the port cannot be had, as the other start-up refusals do; the exit code."""
    print(f"textserve: cannot listen on {settings.host}:{settings.port}: {exc}", file=sys.stderr)
    return 3


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A listening socket on host:port that other workers may bind too."""
    family, address = _address(host, port)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def _die_with_parent(parent: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


class Supervisor:
    """Runs ``count`` children of ``work(slot) -> exit code``; ``was_ready(pid)`` tells a
    worker that crashed from one that never started, ``exited(pid)`` is told of each exit."""

    def __init__(
        self,
        count: int,
        work: Callable[[int], int],
        was_ready: Callable[[int], bool],
        exited: Callable[[int], None] = lambda pid: None,
    ) -> None:
        self.count = count
        self._work = work
        self._was_ready = was_ready
        self._exited = exited
        self.children: dict[int, int] = {}  # pid -> slot
        self._stopping = False
        self._code = 0

    def run(self) -> int:
        """Start the first worker; once it is ready (the service answers), the others; then
        keep them running until a signal stops them or one cannot start."""
        previous = {sig: signal.signal(sig, self._forward) for sig in _FORWARDED}
        try:
            self._spawn(0)
            first = next(iter(self.children))
            waiting = self.count > 1
            while self.children:
                if waiting and (self._stopping or self._was_ready(first)):
                    waiting = False
                    if not self._stopping:
                        for slot in range(1, self.count):
                            self._spawn(slot)
                        log.info("workers started", extra={"workers": self.count, "pids": sorted(self.children)})
                # A signal runs _forward, then the wait goes on (PEP 475).
                pid, status = os.waitpid(-1, os.WNOHANG if waiting else 0)
                if pid == 0:
                    time.sleep(READY_POLL_S)
                    continue
                self._reap(pid, os.waitstatus_to_exitcode(status))
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self._code

    def _spawn(self, slot: int) -> None:
        parent = os.getpid()
        # Blocked across the fork, so that the child never runs the supervisor's handler.
        signal.pthread_sigmask(signal.SIG_BLOCK, _FORWARDED)
        try:
            pid = os.fork()
        except OSError:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORWARDED)
            raise
        if pid:
            self.children[pid] = slot
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORWARDED)
            return
        code = 1
        try:
            self.children.clear()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORWARDED)
            os.setpgid(0, 0)
            _die_with_parent(parent)
            code = self._work(slot)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            log.exception("worker failed")
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)

    def _reap(self, pid: int, code: int) -> None:
        slot = self.children.pop(pid, None)
        if slot is None:
            return
        ready = self._was_ready(pid)
        self._exited(pid)
        if self._stopping:
            if code != 0 and self._code == 0:
                self._code = code if code > 0 else 1
            return
        if not ready:
            log.error("a worker exited before it was ready; stopping", extra={"pid": pid, "exit_code": code})
            self._code = code if code > 0 else 1
            self._stop(signal.SIGTERM)
            return
        log.error("a worker exited; starting another", extra={"pid": pid, "exit_code": code})
        time.sleep(RESTART_PAUSE_S)
        if not self._stopping:
            self._spawn(slot)

    def _forward(self, signum: int, frame: FrameType | None) -> None:
        if not self._stopping:
            log.info("stopping workers", extra={"signal": signal.Signals(signum).name})
        self._stop(signum)

    def _stop(self, signum: int) -> None:
        self._stopping = True
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)


def serve_workers(settings: Settings, work: Callable[[Settings, Path], int]) -> int:
    """Run ``settings.workers`` processes of ``work(settings, metrics_dir)``; the exit code."""
    try:
        check_port_free(settings.host, settings.port)
    except OSError as exc:
        return cannot_listen(settings, exc)
    try:
        metrics_dir = Path(tempfile.mkdtemp(prefix="textserve-metrics-"))
    except OSError as exc:
        print(f"textserve: the workers need a writable temporary directory for /metrics: {exc}", file=sys.stderr)
        return 1
    try:
        supervisor = Supervisor(
            settings.workers,
            lambda slot: work(settings, metrics_dir),
            was_ready=lambda pid: page_path(metrics_dir, pid).exists(),
            exited=lambda pid: retire(metrics_dir, pid),
        )
        return supervisor.run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
