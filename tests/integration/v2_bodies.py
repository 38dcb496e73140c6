"""HTTP V2 (Open Inference Protocol) request bodies, for the tests that post them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def v2_json(texts: Sequence[str], **top: Any) -> dict[str, Any]:
    """An inference request for ``texts`` as the BYTES input ``text``; ``top``: other fields."""
    return {"inputs": [tensor("BYTES", [len(texts)], list(texts))], **top}


def tensor(datatype: str, shape: list[int], data: list[Any], name: str = "text") -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape, "data": data}
