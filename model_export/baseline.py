"""The linear baseline a model must beat: TF-IDF (1-2-grams) + logistic regression, with C
chosen by validation macro-F1 from a fixed grid, fitted on the same training split and
scored on the same validation and test splits. The test split plays no part in the choice."""

from __future__ import annotations

from typing import Any

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

from model_export.data import Split, Splits

C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
VECTORIZER = "TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)"


def _scores(truth: list[str], predicted: Any) -> dict[str, float]:
    return {
        "accuracy": float(accuracy_score(truth, predicted)),
        "macro_f1": float(f1_score(truth, predicted, average="macro")),
    }


def linear_baseline(splits: Splits, seed: int, grid: tuple[float, ...] = C_GRID) -> dict[str, Any]:
    """Test accuracy and macro-F1 of the grid's best C on validation, and the whole search."""
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    x_train = vectorizer.fit_transform(splits.train.texts)

    def features(split: Split) -> Any:
        return vectorizer.transform(split.texts)

    x_val = features(splits.validation)
    search: list[dict[str, float]] = []
    best: tuple[float, float, LogisticRegression] | None = None
    for c in grid:
        model = LogisticRegression(C=c, max_iter=5000, random_state=seed).fit(x_train, splits.train.labels)
        scores = _scores(splits.validation.labels, model.predict(x_val))
        search.append({"C": c, **{f"validation_{k}": v for k, v in scores.items()}})
        if best is None or scores["macro_f1"] > best[0]:  # ties keep the smaller C
            best = (scores["macro_f1"], c, model)
    assert best is not None
    _, c, model = best
    validation = next(s for s in search if s["C"] == c)
    return {
        "model": f"{VECTORIZER} + LogisticRegression(C={c:g})",
        "C": c,
        "chosen_by": "validation macro-F1 over C in " + ", ".join(f"{g:g}" for g in grid),
        **_scores(splits.test.labels, model.predict(features(splits.test))),
        "validation": {"accuracy": validation["validation_accuracy"], "macro_f1": validation["validation_macro_f1"]},
        "search": search,
    }
