"""What every kind of tokenizer shares: cutting id sequences to ``max_length`` and padding
them into an int32 matrix, on the side the bundle's graph expects.

A converted model was trained with ``pad_sequences`` (``pre`` padding and truncation by
default) or a ``TextVectorization`` layer (``post``); its graph may or may not give the same
answer for a text whatever the number of padding ids beside it. :class:`Layout` records all of
this, and ``padding_invariant`` is written only after the converter's parity check has run
the graph both ways (see ``model_export/convert/parity.py``): when it is false, every row is
padded to ``max_length``.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from service.bundle.tokenizer.cleaning import STANDARDIZERS

Side = Literal["pre", "post"]
SIDES: tuple[Side, ...] = ("pre", "post")
SPEC_VERSION = 1


@dataclass(frozen=True)
class Layout:
    """How id sequences become the graph's input: ``max_length`` ids at most, cut from the
    ``truncating`` side, zero-padded on the ``padding`` side."""

    max_length: int
    padding: Side = "post"
    truncating: Side = "post"
    padding_invariant: bool = False
    """True when the graph may be run on rows padded only to their batch's longest text."""

    def __post_init__(self) -> None:
        if not isinstance(self.max_length, int) or isinstance(self.max_length, bool) or self.max_length < 1:
            raise ValueError(f"max_length must be a positive integer, got {self.max_length!r}")
        if self.padding not in SIDES or self.truncating not in SIDES:
            raise ValueError(
                f"padding and truncating must be 'pre' or 'post', got {self.padding!r}, {self.truncating!r}"
            )
        if not isinstance(self.padding_invariant, bool):
            raise ValueError("padding_invariant must be true or false")

    def cut(self, ids: list[int]) -> tuple[list[int], bool]:
        """``ids`` cut to ``max_length`` (``pad_sequences``' ``truncating``) and whether anything was cut."""
        limit = self.max_length
        if len(ids) <= limit:
            return ids, False
        return (ids[-limit:] if self.truncating == "pre" else ids[:limit]), True

    def pad(self, sequences: Sequence[Sequence[int]], length: int | None = None) -> np.ndarray:
        """Stack id lists into an int32 ``[n, length]`` matrix (``length`` defaults to ``max_length``)."""
        width = self.max_length if length is None else length
        if not 1 <= width <= self.max_length:
            raise ValueError(f"length must be in 1..{self.max_length}, got {width}")
        out = np.zeros((len(sequences), width), dtype=np.int32)
        pre = self.padding == "pre"
        for row, seq in enumerate(sequences):
            if len(seq) > width:
                seq = seq[-width:] if self.truncating == "pre" else seq[:width]
            if not seq:
                continue
            if pre:
                out[row, width - len(seq) :] = seq
            else:
                out[row, : len(seq)] = seq
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_length": self.max_length,
            "padding": self.padding,
            "truncating": self.truncating,
            "padding_invariant": self.padding_invariant,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Layout:
        return cls(
            max_length=data["max_length"],
            padding=data["padding"],
            truncating=data["truncating"],
            padding_invariant=data["padding_invariant"],
        )


class SequenceTokenizer(ABC):
    """A tokenizer that reproduces a Keras pipeline: ``standardize`` (what the user did to
    texts before tokenizing), the kind's own rules (:meth:`token_ids`), then :class:`Layout`."""

    kind: ClassVar[str]

    def __init__(self, layout: Layout, standardize: str = "none") -> None:
        if standardize not in STANDARDIZERS:
            raise ValueError(f"standardize must be one of {sorted(STANDARDIZERS)}, got {standardize!r}")
        self.layout = layout
        self.standardize = standardize
        self._clean = STANDARDIZERS[standardize]

    @abstractmethod
    def token_ids(self, text: str) -> list[int]:
        """Every id of ``text``, in order, before truncation."""

    @abstractmethod
    def spec(self) -> dict[str, Any]:
        """The kind's own fields of ``tokenizer.json``."""

    @property
    def max_length(self) -> int:
        return self.layout.max_length

    @property
    def padding_invariant(self) -> bool:
        return self.layout.padding_invariant

    def ids_and_truncated(self, text: str) -> tuple[list[int], bool]:
        return self.layout.cut(self.token_ids(text))

    def ids(self, text: str) -> list[int]:
        return self.ids_and_truncated(text)[0]

    def pad(self, sequences: Sequence[Sequence[int]], length: int | None = None) -> np.ndarray:
        return self.layout.pad(sequences, length)

    def encode(self, texts: Sequence[str], length: int | None = None) -> np.ndarray:
        return self.pad([self.ids(t) for t in texts], length)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "format_version": SPEC_VERSION,
            **self.layout.to_dict(),
            "standardize": self.standardize,
            **self.spec(),
        }

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=0), encoding="utf-8")


def check_spec_version(data: dict[str, Any], kind: str) -> None:
    if data.get("format_version") != SPEC_VERSION:
        raise ValueError(f"unsupported {kind} tokenizer format_version {data.get('format_version')!r}")
