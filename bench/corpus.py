"""The benchmark's texts: real tweets from the model's test split (see make_corpus.py)."""

from __future__ import annotations

import json
from pathlib import Path

TEXTS = Path(__file__).with_name("texts.json")


def load_texts() -> list[str]:
    texts: list[str] = json.loads(TEXTS.read_text(encoding="utf-8"))["texts"]
    return texts
