"""The linear baseline the LSTM must not lose to: TF-IDF (1-2-grams) + logistic regression,
fitted on the same training split and scored on the same test split."""

from __future__ import annotations

from typing import Any

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

from model_export.data import Splits


def linear_baseline(splits: Splits, seed: int) -> dict[str, Any]:
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    x_train = vectorizer.fit_transform(splits.train.texts)
    model = LogisticRegression(max_iter=2000, random_state=seed).fit(x_train, splits.train.labels)
    predicted = model.predict(vectorizer.transform(splits.test.texts))
    return {
        "model": "TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True) + LogisticRegression(C=1.0)",
        "accuracy": float(accuracy_score(splits.test.labels, predicted)),
        "macro_f1": float(f1_score(splits.test.labels, predicted, average="macro")),
    }
