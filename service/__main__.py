"""``textserve`` (``python -m service``): check the settings, then serve, as one process or
as ``TEXTSERVE_WORKERS`` processes under gunicorn. ``textserve check DIR`` verifies a bundle,
a model directory or a repository offline and exits 1 with one line per problem."""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import ValidationError

USAGE = "usage: textserve            serve (settings from TEXTSERVE_* variables)\n" \
        "       textserve check DIR  verify a bundle, model directory or repository"


def _settings_problem(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(p) for p in err["loc"]) or "settings"
        parts.append(f"TEXTSERVE_{field.upper()}: {err['msg']}" if err["loc"] else err["msg"])
    return "; ".join(parts)


def check(directory: Path) -> int:
    from service.engine.check import check_path

    report = check_path(directory)
    for problem in report.problems:
        print(problem)
    print(f"textserve check {directory}: {report.summary()}", file=sys.stderr)
    return 1 if report.problems else 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["check"] and len(args) == 2:
        return check(Path(args[1]))
    if args:
        print(USAGE, file=sys.stderr)
        return 2
    from service.observability.logs import configure_logging
    from service.settings import Settings

    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"textserve: invalid settings: {_settings_problem(exc)}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    if settings.workers > 1:
        from service.process.workers import serve_workers

        return serve_workers(settings)
    from service.process.server import serve_one

    return serve_one(settings)


if __name__ == "__main__":
    sys.exit(main())
