"""The linear baseline a model must beat is tuned on the validation split, never on test."""

import pytest

pytestmark = pytest.mark.export


def test_the_linear_baseline_is_tuned_on_validation() -> None:
    """C comes from the grid by validation macro-F1 (the smaller C on a tie); the search is recorded."""
    from model_export.baseline import C_GRID, linear_baseline
    from model_export.data import load_corpus, stratified_split

    splits = stratified_split(load_corpus(None, "text", "label", 1500, 42), 42)
    baseline = linear_baseline(splits, 42)
    search = baseline["search"]
    assert [row["C"] for row in search] == list(C_GRID)
    best = max(search, key=lambda row: row["validation_macro_f1"])
    assert baseline["C"] == best["C"]
    assert baseline["validation"]["macro_f1"] == best["validation_macro_f1"]
    assert 0 < baseline["accuracy"] <= 1 and 0 < baseline["macro_f1"] <= 1
