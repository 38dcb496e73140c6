"""``textserve`` (``python -m service``): check the settings, then serve, as one process or
as ``TEXTSERVE_WORKERS`` processes under gunicorn."""

from __future__ import annotations

import sys

from pydantic import ValidationError


def _settings_problem(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(p) for p in err["loc"]) or "settings"
        parts.append(f"TEXTSERVE_{field.upper()}: {err['msg']}" if err["loc"] else err["msg"])
    return "; ".join(parts)


def main() -> int:
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
