"""``textserve-export convert`` options, checked before TensorFlow is imported: a missing file,
a file that is not a Keras model or tokenizer, bad labels or a taken version are refused in
well under a second."""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from model_export.convert.errors import ConvertError
from service.bundle.tokenizer.cleaning import STANDARDIZERS
from service.bundle.tokenizer.sequences import SIDES, Side

PROG = "textserve-export convert"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_ZIP_MAGIC = b"PK\x03\x04"
SAVED_MODEL_FILE = "saved_model.pb"


@dataclass(frozen=True)
class ConvertOptions:
    keras_model: Path
    model_format: str  # "h5", "keras" or "saved_model"
    labels: list[str]
    tokenizer: Path | None = None
    standardize: str = "none"
    max_length: int | None = None
    padding: Side | None = None  # None: not given (pad_sequences' "pre" for a Keras Tokenizer)
    truncating: Side | None = None
    probe_texts: Path | None = None
    name: str = "model"
    version: int | None = None
    output_dir: Path = Path("models")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a mistake in one line (no usage block) and exits 2."""

    def error(self, message: str) -> NoReturn:
        print(f"{PROG}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Convert your own trained Keras text classifier and its tokenizer into a textserve"
        " bundle, written only if it answers as Keras does (max |diff| <= 1e-4, same argmax) on"
        " built-in hard cases and on --probe-texts.",
    )
    add = parser.add_argument
    add("--keras-model", type=Path, required=True,
        help="model.h5 (legacy HDF5), model.keras, or a SavedModel directory")
    add("--tokenizer", type=Path,
        help="the JSON of keras.preprocessing.text.Tokenizer.to_json(); not needed when the model"
        " starts with a TextVectorization layer")
    add("--labels", required=True,
        help="class names in output order, comma-separated; a Dense(1, sigmoid) model takes two")
    add("--standardize", choices=sorted(STANDARDIZERS), default="none",
        help="what you did to texts before the tokenizer: none, lower, or seed (lower-case, then"
        r" re.sub(r'[^\w\s]', '', text)) (default: none)")
    add("--max-length", type=_positive_int, help="pad_sequences' maxlen (default: the model's input length)")
    add("--padding", choices=SIDES, help="pad_sequences' padding (default: pre)")
    add("--truncating", choices=SIDES, help="pad_sequences' truncating (default: pre)")
    add("--probe-texts", type=Path,
        help="UTF-8 file, one text per line, checked for parity besides the built-in hard cases")
    add("--name", help="model name (default: the model file's name without its extension)")
    add("--version", type=_positive_int, help="bundle version (default: one more than the newest)")
    add("--output-dir", type=Path, default=Path("models"),
        help="models directory; the bundle goes to OUTPUT_DIR/NAME/VERSION (default: models)")
    return parser


def model_format(path: Path) -> str:
    """"h5", "keras" or "saved_model", from what the path holds (not only its name)."""
    if path.is_dir():
        if not (path / SAVED_MODEL_FILE).is_file():
            raise ConvertError(f"--keras-model {path} is a directory without {SAVED_MODEL_FILE}: not a SavedModel")
        return "saved_model"
    if not path.is_file():
        raise ConvertError(f"--keras-model {path}: no such file or directory")
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise ConvertError(f"--keras-model {path}: cannot read it ({exc.strerror or exc})") from exc
    if head == _HDF5_MAGIC:
        return "h5"
    if head.startswith(_ZIP_MAGIC):
        return "keras"
    raise ConvertError(
        f"--keras-model {path} is not a Keras model: neither an HDF5 file (model.h5), a .keras"
        " archive nor a SavedModel directory"
    )


def _labels(text: str) -> list[str]:
    labels = [label.strip() for label in text.split(",")]
    if any(not label for label in labels):
        raise ConvertError(f"--labels {text!r} has an empty label")
    if len(labels) < 2:
        raise ConvertError(f"--labels {text!r} names {len(labels)} class; a classifier has at least two")
    if len(set(labels)) != len(labels):
        raise ConvertError(f"--labels {text!r} repeats a label")
    return labels


def _existing_file(path: Path | None, flag: str) -> None:
    if path is not None and not path.is_file():
        raise ConvertError(f"{flag} {path}: no such file")


def parse_args(argv: list[str]) -> ConvertOptions:
    """Options from ``argv``; ConvertError (or SystemExit 2 from argparse) if they are wrong."""
    args = build_parser().parse_args(argv)
    fmt = model_format(args.keras_model)
    _existing_file(args.tokenizer, "--tokenizer")
    _existing_file(args.probe_texts, "--probe-texts")
    name = args.name or args.keras_model.name.split(".")[0]
    if not _NAME.match(name):
        raise ConvertError(f"--name {name!r}: use letters, digits, '_', '.' and '-', starting with a letter or digit")
    return ConvertOptions(
        keras_model=args.keras_model,
        model_format=fmt,
        labels=_labels(args.labels),
        tokenizer=args.tokenizer,
        standardize=args.standardize,
        max_length=args.max_length,
        padding=args.padding,
        truncating=args.truncating,
        probe_texts=args.probe_texts,
        name=name,
        version=args.version,
        output_dir=args.output_dir,
    )


def read_probe_texts(path: Path | None) -> list[str]:
    """One text per line (``\\n`` or ``\\r\\n`` ends a line; no other character does)."""
    if path is None:
        return []
    try:
        lines = path.read_bytes().decode("utf-8").split("\n")
    except UnicodeDecodeError as exc:
        raise ConvertError(f"--probe-texts {path} is not UTF-8 text (byte {exc.start})") from exc
    except OSError as exc:
        raise ConvertError(f"--probe-texts {path}: cannot read it ({exc.strerror or exc})") from exc
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]
