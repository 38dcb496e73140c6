"""``python -m model_export.search [export options]``: train one recipe and print its
*validation* figures (each ensemble copy's and their average's), never touching the test
split. This is how the recipes in ``recipes.py`` were chosen; ``tried.py`` records the runs.

Takes the export's own options (``--arch``, ``--learning-rate``, ``--ensemble``, ...),
``--log FILE`` to append the result as one JSON line, and ``--save-probabilities FILE.npy``
to keep the averaged validation probabilities (to score averages across recipes later).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _scores(probs: Any, truth: Any, labels: list[str]) -> dict[str, float]:
    from model_export.train import evaluate

    metrics = evaluate(probs, truth, labels)
    return {k: round(metrics[k], 4) for k in ("accuracy", "macro_f1", "loss")}


def main(argv: list[str] | None = None) -> int:
    from model_export.options import ExportOptions, build_parser, read_corpus

    parser = build_parser()
    parser.prog = "python -m model_export.search"
    parser.add_argument("--log", type=Path, default=None, help="append the result to this JSON-lines file")
    parser.add_argument("--save-probabilities", type=Path, default=None, help="write the validation probabilities")
    args = vars(parser.parse_args(argv))
    log, save = args.pop("log"), args.pop("save_probabilities")
    options = ExportOptions(**args)
    corpus = read_corpus(options)

    from model_export.candidate import average, encode_splits, train_candidate

    data = encode_splits(corpus, options)
    recipe = options.recipe_for(options.arch)
    candidate = train_candidate(options.arch, recipe, data, options)
    x, y = data.x["validation"], data.y["validation"]
    copies = [m.predict(x, batch_size=256, verbose=0) for m in candidate.members]
    result = {
        "arch": options.arch,
        "recipe": candidate.recipe,
        "overrides": options.overrides(),
        "tokenizer": {"max_length": options.max_length, "vocab_size": options.vocab_size,
                      "min_count": options.min_count},
        "training": {"epochs": options.epochs, "batch_size": options.batch_size, "patience": options.patience,
                     "class_weighting": options.class_weighting, **candidate.training_summary()},
        "parameters": int(average(candidate.members).count_params()),
        "validation": _scores(sum(copies) / len(copies), y, data.labels),
        "validation_per_copy": [_scores(p, y, data.labels) for p in copies],
    }
    if save is not None:
        import numpy as np

        np.save(save, sum(copies) / len(copies))
    line = json.dumps(result)
    print(line, flush=True)
    if log is not None:
        with log.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
