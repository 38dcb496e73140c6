"""Container health probe: exit 0 if the service's readiness endpoint answers 200, else 1.

Stdlib only (the image has no curl). It reads the same host/port variables as the service,
TEXTSERVE_* first, and ignores any proxy settings in the environment.
"""

import os
import sys
import urllib.request


def main() -> int:
    port = os.environ.get("TEXTSERVE_PORT") or os.environ.get("PORT") or "8000"
    host = os.environ.get("TEXTSERVE_HOST") or os.environ.get("HOST") or "127.0.0.1"
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://{host}:{port}/health", timeout=2) as response:
            return 0 if response.status == 200 else 1
    except Exception as exc:  # refused, 503 while loading or draining, timeout
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
