"""``TEXTSERVE_WORKERS`` > 1: that many server processes on one port, under gunicorn.

One process serves about one core (an event loop and an inference thread that share the
GIL), so a machine with more cores needs more processes. gunicorn's arbiter forks them,
replaces one that dies, stops everything with exit code 3 when a worker cannot boot, and on
SIGTERM passes SIGTERM to every worker, each of which drains as a single process does
(``DrainingServer``). With ``reuse_port`` each worker binds its own socket after the fork,
and the kernel spreads connections over them by address hash; a socket shared by all, as
uvicorn's own ``--workers`` has, lets whichever worker wakes first take a burst of
keep-alive connections.

Before forking, the arbiter's process checks that the ports (HTTP's and gRPC's) are free
(``SO_REUSEPORT`` would otherwise let the workers share them with another server) and that
the bundle verifies, so a bad model is said once, in one line. It imports neither
onnxruntime, grpcio nor the app: each worker loads its own model, and starts its own gRPC
server on the shared port, after the fork. /metrics is prometheus-client's multiprocess
mode over a temporary directory: any worker's page is the sum over all of them.

When the workers are exactly as many as the CPUs the service may run on, each is pinned to
one of them (``TEXTSERVE_WORKER_AFFINITY=auto``, the default): its event loop, inference and
gRPC threads then share one core's caches instead of being spread over all of them by the
scheduler. Gain: texts/s +5% (median of 10 alternating pairs, 8 faster) with 2 workers on 2
cores at 64 clients x 1 text (docs/performance.md). Off: ``TEXTSERVE_WORKER_AFFINITY=off``.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import os
import shutil
import signal
import socket
import sys
import tempfile
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.errors import HaltServer
from gunicorn.glogging import Logger
from uvicorn import Config
from uvicorn_worker import UvicornWorker

from service.observability.logs import json_handler
from service.process.server import DrainingServer, cannot_serve, load_models, uvicorn_options
from service.settings import Settings

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's name
BACKLOG = 2048  # uvicorn's default
_PR_SET_PDEATHSIG = 1


class TextserveWorker(UvicornWorker):  # type: ignore[misc]
    """uvicorn under gunicorn, configured as a single process is: the draining server, the
    one-write protocol."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings: Settings = self.app.settings
        self.config = Config(
            app=None,  # type: ignore[arg-type]  # set in _serve, as UvicornWorker does
            timeout_notify=self.timeout,
            callback_notify=self.callback_notify,
            backlog=BACKLOG,
            **uvicorn_options(settings),
        )

    def init_process(self) -> None:
        cpu = getattr(self, "cpu", None)  # set by the arbiter's pre_fork hook, before the fork
        if cpu is not None:  # before any thread starts: they all inherit it
            with contextlib.suppress(OSError):  # the CPU was taken away meanwhile: serve unpinned
                os.sched_setaffinity(0, {cpu})
        # gunicorn's arbiter normally outlives its workers; if it is killed outright, the
        # kernel sends each worker SIGTERM instead of leaving it holding the shared port.
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != self.ppid:  # it died before prctl took effect
            sys.exit(0)
        super().init_process()

    async def _serve(self) -> None:
        self.config.app = self.wsgi
        server = DrainingServer(config=self.config, engine=self.wsgi.state.engine, grpc=self.wsgi.state.grpc)
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started or server.failed:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)


class JsonLogger(Logger):  # type: ignore[misc]
    """gunicorn's own log lines as JSON, like every other line."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        self.error_log.handlers = [json_handler()]
        self.error_log.propagate = False
        self.access_log.disabled = True


def pinned_cpus(settings: Settings) -> list[int] | None:
    """The CPUs to pin the workers to, one each, or None to leave them to the kernel."""
    allowed = sorted(os.sched_getaffinity(0))
    if settings.worker_affinity == "auto" and settings.workers > 1 and len(allowed) == settings.workers:
        return allowed
    return None


def next_cpu(cpus: list[int], taken: list[int]) -> int:
    """The CPU the fewest live workers are pinned to (the first on a tie): a worker that
    replaces a dead one takes the CPU it left."""
    return min(cpus, key=taken.count)


def _pre_fork(server: Arbiter, worker: Any) -> None:
    """In the arbiter, before it forks ``worker``: the CPU the worker pins itself to."""
    cpus = server.app.cpus
    if cpus:
        worker.cpu = next_cpu(cpus, [w.cpu for w in server.WORKERS.values() if getattr(w, "cpu", None) is not None])


def _child_exit(server: Arbiter, worker: Any) -> None:
    """A worker has exited: its gauges leave the sum, its counts stay."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


class Workers(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cpus = pinned_cpus(settings)
        super().__init__()

    def load_config(self) -> None:
        s = self.settings
        host = f"[{s.host}]" if ":" in s.host else s.host
        options = {
            "bind": [f"{host}:{s.port}"],
            "workers": s.workers,
            "worker_class": f"{__name__}.TextserveWorker",
            "reuse_port": True,
            "backlog": BACKLOG,
            "graceful_timeout": math.ceil(s.shutdown_grace_s) + 5,  # the workers' own drain ends first
            "timeout": 60,
            "keepalive": 5,  # uvicorn's default, as for a single process
            "logger_class": f"{__name__}.JsonLogger",
            "loglevel": s.log_level,
            "child_exit": _child_exit,
            "pre_fork": _pre_fork,
            "proc_name": "textserve",
            "control_socket_disable": True,  # gunicorn's runtime control interface: not used
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        """In each worker, after the fork: build the app and load its models."""
        import prometheus_client.values

        from service.app import create_app

        # The metrics directory was set after prometheus-client was first imported, if it was.
        prometheus_client.values.ValueClass = prometheus_client.values.get_value_class()  # type: ignore[no-untyped-call]
        app = create_app(self.settings)
        if not load_models(app):
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
        return app


def check_port_free(host: str, port: int) -> None:
    """OSError if something already listens on host:port. Workers bind with SO_REUSEPORT,
    which would otherwise let them share the port with another server of the same user
    (another textserve's workers, say) and split its traffic."""
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: TIME_WAIT is no obstacle
        probe.bind(address)


def serve_workers(settings: Settings) -> int:
    """Run ``settings.workers`` worker processes until stopped; the exit code: 0 after a
    clean stop, 1 if the model cannot be served, 3 if a port is taken or a worker could
    not boot."""
    for port in (settings.port, settings.grpc_port):
        if not port:
            continue
        try:
            check_port_free(settings.host, port)
        except OSError as exc:
            print(f"textserve: cannot listen on {settings.host}:{port}: {exc}", file=sys.stderr)
            return 3
    # numpy, loaded to verify the bundle, would start a BLAS thread pool in the process that
    # forks; the service runs no BLAS routine.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from service.bundle.format import BundleError
    from service.engine.repository import check_repository

    try:
        check_repository(settings)
    except BundleError as exc:
        return cannot_serve(exc)
    directory = tempfile.mkdtemp(prefix="textserve-metrics-")
    os.environ[MULTIPROC_DIR_ENV] = directory
    arbiter = os.getpid()
    workers = Workers(settings)
    if workers.cpus:
        logging.getLogger("textserve").info("workers pinned, one per CPU", extra={"cpus": workers.cpus})
    try:
        workers.run()
    except SystemExit as exc:  # the arbiter's exit, or a worker's: gunicorn forks inside run()
        code = exc.code if isinstance(exc.code, int) else 1
    except HaltServer as exc:  # a worker failed to boot while the arbiter was still starting
        logging.getLogger("gunicorn.error").error("Shutting down: %s", exc.reason)
        code = exc.exit_status
    else:
        code = 0
    if os.getpid() == arbiter:
        shutil.rmtree(directory, ignore_errors=True)
        logging.getLogger("textserve").info("workers stopped", extra={"exit_code": code})
    return code
