"""What was tried on the default corpus (seed 42, whole corpus), with validation figures only.

Each entry was trained with ``python -m model_export.search`` (the export's own code, the
same split); the test split played no part in any choice. The export copies this list into
the manifest (``training.tried``) and the report when it trains on that same corpus.
"""

from __future__ import annotations

from typing import Any

TRIED: tuple[dict[str, Any], ...] = ()
