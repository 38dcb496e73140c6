"""``report/split.json``: which CSV records went to train, validation and test, with their
labels, so anyone can rebuild a split from the source file alone and re-check the metrics.

``row_number`` is the 0-based index of a record among those Python's ``csv.reader`` yields
after the header, reading the file decoded as UTF-8 (a leading BOM skipped, undecodable
bytes replaced by U+FFFD). Rows whose texts tokenize the same were merged into one: the
group's first row (lowest row number) stands for it, its text is the one used, and the
label is the group's majority label (groups with a tied vote were dropped).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from model_export.data import DEFAULT_CORPUS_DIST, DEFAULT_CORPUS_FILE, Split, Splits

SPLIT_FILE = "split.json"
ROW_NUMBER_RULE = (
    "0-based index of the record among those csv.reader yields after the header, the file decoded"
    " as utf-8-sig with undecodable bytes replaced by U+FFFD"
)
DUPLICATE_RULE = (
    "rows whose texts give the same token sequence are one example: its row_number is the group's"
    " first (lowest) row number, whose text is the one used; its label is the group's majority label;"
    " groups with a tied vote were dropped"
)


def _pairs(split: Split) -> list[list[Any]]:
    return sorted([row, label] for row, label in zip(split.rows, split.labels, strict=True))


def split_record(splits: Splits, dataset: dict[str, Any]) -> dict[str, Any]:
    default = dataset.get("path") == DEFAULT_CORPUS_FILE
    source: dict[str, Any] = {
        "source": dataset["path"],
        "source_sha256": dataset["sha256"],
        "text_column": dataset["text_column"],
        "label_column": dataset["label_column"],
    }
    if default:
        source["source_distribution"] = f"{DEFAULT_CORPUS_DIST} (the path is inside the installed distribution)"
    return {
        **source,
        "row_number": ROW_NUMBER_RULE,
        "duplicates": DUPLICATE_RULE,
        "train": _pairs(splits.train),
        "validation": _pairs(splits.validation),
        "test": _pairs(splits.test),
    }


def write_split_record(directory: Path, splits: Splits, dataset: dict[str, Any]) -> Path:
    """One line per example keeps the file diffable without indenting every number."""
    record = split_record(splits, dataset)
    lines = ["{"]
    header = {k: v for k, v in record.items() if k not in ("train", "validation", "test")}
    for key, value in header.items():
        lines.append(f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)},")
    names = ("train", "validation", "test")
    for n, name in enumerate(names):
        rows = ",\n".join("    " + json.dumps(pair, ensure_ascii=False) for pair in record[name])
        lines.append(f"  {json.dumps(name)}: [\n{rows}\n  ]" + ("," if n < len(names) - 1 else ""))
    lines.append("}")
    path = directory / SPLIT_FILE
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
