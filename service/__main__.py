"""``python -m service`` / ``textserve``: check settings and model, then serve (as one
process, or as ``TEXTSERVE_WORKERS`` processes under a supervisor)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

if TYPE_CHECKING:
    from service.bundle import BundleError
    from service.settings import Settings


def _settings_problem(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(p) for p in err["loc"]) or "settings"
        parts.append(f"TEXTSERVE_{field.upper()}: {err['msg']}" if err["loc"] else err["msg"])
    return "; ".join(parts)


def _cannot_serve(exc: BundleError) -> int:
    print(f"textserve: cannot serve the model: {exc}", file=sys.stderr)
    return 1


def main() -> int:
    from service.logs import configure_logging
    from service.settings import Settings

    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"textserve: invalid settings: {_settings_problem(exc)}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    if settings.workers == 1:
        return serve_process(settings)
    # Each worker loads (and checks) the model itself; the supervisor imports neither numpy
    # nor onnxruntime, so it has no thread running when it forks.
    from service.supervisor import serve_workers

    return serve_workers(settings, serve_process)


def serve_process(settings: Settings, metrics_dir: Path | None = None) -> int:
    """Load the model and serve: alone, or as one of the workers (``metrics_dir`` given),
    on a port the workers share."""
    from service.bundle import BundleError
    from service.main import create_app, load_runtime
    from service.server import serve

    try:
        runtime = load_runtime(settings)
    except BundleError as exc:
        return _cannot_serve(exc)
    app = create_app(settings, runtime=runtime)
    if metrics_dir is None:
        return serve(app, settings)
    from service.supervisor import cannot_listen, reuse_port_socket

    try:
        sock = reuse_port_socket(settings.host, settings.port)
    except OSError as exc:
        return cannot_listen(settings, exc)
    app.state.textserve.share_metrics(metrics_dir, os.getpid())
    return serve(app, settings, sockets=[sock])


if __name__ == "__main__":
    sys.exit(main())
