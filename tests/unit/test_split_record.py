"""report/split.json: every example points back at the CSV record whose text was used."""

import csv
import io
import json
from pathlib import Path

from model_export.data import load_corpus, stratified_split
from model_export.split_record import split_record, write_split_record
from service.bundle.tokenizer import tokenize

# Record numbers (0-based, header not counted) are in the comments. Record 3 is a blank line,
# record 5 spans two physical lines, records 6-8 tokenize the same, as do 9 and 10 (a tie).
CSV = (
    'text,label\n'
    'first pos text w0,pos\n'           # 0
    'first neg text w1,neg\n'           # 1
    ',neg\n'                            # 2: no text, skipped
    '\n'                                # 3: blank line, csv.reader yields []
    'second pos w2,pos\n'               # 4
    '"multi\nline neg w3",neg\n'        # 5
    'Same Again!,pos\n'                 # 6
    '"same,,, again  !",neg\n'         # 7
    'SAME AGAIN!,pos\n'                 # 8
    'tie here,pos\n'                    # 9
    'Tie here,neg\n'                    # 10
)


def corpus_csv(tmp_path: Path) -> Path:
    extra = "".join(f"filler {label} w{i}x,{label}\n" for i in range(40) for label in ("pos", "neg"))
    path = tmp_path / "data.csv"
    path.write_bytes((CSV + extra).encode())
    return path


def records(path: Path) -> list[list[str]]:
    reader = csv.reader(io.StringIO(path.read_bytes().decode("utf-8-sig", errors="replace"), newline=""))
    next(reader)
    return list(reader)


def test_row_numbers_are_csv_record_indices_and_duplicates_keep_their_first_row(tmp_path: Path) -> None:
    path = corpus_csv(tmp_path)
    corpus = load_corpus(path, "text", "label", None, seed=1)
    rows = dict(zip(corpus.row_numbers, zip(corpus.texts, corpus.labels, strict=True), strict=True))
    assert 2 not in rows and 3 not in rows
    assert rows[5] == ("multi\nline neg w3", "neg")
    assert rows[6] == ("Same Again!", "pos")  # first of 6, 7, 8; majority label pos
    assert 7 not in rows and 8 not in rows
    assert 9 not in rows and 10 not in rows  # a tied vote is dropped
    on_disk = records(path)
    for row, (text, _) in rows.items():
        assert on_disk[row][0] == text


def test_split_json_rebuilds_each_split_from_the_csv_alone(tmp_path: Path) -> None:
    path = corpus_csv(tmp_path)
    corpus = load_corpus(path, "text", "label", None, seed=1)
    splits = stratified_split(corpus, seed=1)
    dataset = {**corpus.info, "path": str(path)}
    written = json.loads(write_split_record(tmp_path / "report", splits, dataset).read_text())
    assert written == json.loads(json.dumps(split_record(splits, dataset)))
    assert written["source"] == str(path)
    assert (written["text_column"], written["label_column"]) == ("text", "label")
    assert len(written["source_sha256"]) == 64
    on_disk = records(path)
    for name in ("train", "validation", "test"):
        split = getattr(splits, name)
        pairs = written[name]
        assert pairs == sorted(pairs)
        rebuilt = {tuple(tokenize(on_disk[row][0])): label for row, label in pairs}
        expected = {tuple(tokenize(t)): label for t, label in zip(split.texts, split.labels, strict=True)}
        assert rebuilt == expected
    all_rows = [row for name in ("train", "validation", "test") for row, _ in written[name]]
    assert len(all_rows) == len(set(all_rows)) == len(corpus.texts)


def test_a_subsample_keeps_the_original_row_numbers(tmp_path: Path) -> None:
    path = corpus_csv(tmp_path)
    corpus = load_corpus(path, "text", "label", limit=30, seed=3)
    on_disk = records(path)
    assert len(corpus.texts) <= 30
    assert max(corpus.row_numbers) > 30  # numbers in the file, not in the subsample
    for row, text in zip(corpus.row_numbers, corpus.texts, strict=True):
        assert on_disk[row][0] == text
