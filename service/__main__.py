"""``python -m service`` / ``textserve``: check settings and model, then serve."""

from __future__ import annotations

import sys

from pydantic import ValidationError

from service.bundle import BundleError


def _settings_problem(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(p) for p in err["loc"]) or "settings"
        parts.append(f"TEXTSERVE_{field.upper()}: {err['msg']}" if err["loc"] else err["msg"])
    return "; ".join(parts)


def main() -> int:
    from service.logs import configure_logging
    from service.main import create_app, load_runtime
    from service.server import serve
    from service.settings import Settings

    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"textserve: invalid settings: {_settings_problem(exc)}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    try:
        runtime = load_runtime(settings)
    except BundleError as exc:
        print(f"textserve: cannot serve the model: {exc}", file=sys.stderr)
        return 1
    return serve(create_app(settings, runtime=runtime), settings)


if __name__ == "__main__":
    sys.exit(main())
