"""How a bundle's graph is opened in onnxruntime, spelled without importing onnxruntime (the
settings refer to these names, and reading the settings must stay cheap)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

OptimizationLevel = Literal["disable", "basic", "extended", "all"]
Precision = Literal["fp32", "int8"]


@dataclass(frozen=True)
class RuntimeOptions:
    intra_op_threads: int = 1
    inter_op_threads: int = 1
    optimization: OptimizationLevel = "all"
    variant: str = "fp32"
