"""``textserve-export convert``: a user's own trained Keras classifier and its tokenizer -> a
textserve bundle that answers raw text exactly as Keras does (docs/convert.md).

Everything that can be refused without TensorFlow is refused first (``options``,
``tokenizer_json``); then ``run`` loads the model (``source``), decides the tokenizer and
padding (``plan``), runs the user's pipeline in Keras on the probe texts (``probes``,
``reference``), converts with tf2onnx (``graph``), and publishes the bundle only if the
service's own code reproduces Keras's ids and probabilities (``parity``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import warnings
from pathlib import Path


def _import_tensorflow() -> None:
    """Import TensorFlow with its start-up chatter (C++ log lines written before its logging is
    set up) kept off stderr, so that a refusal is the one line the user reads."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", module=r"(keras|tensorflow|tf2onnx|google\.protobuf)(\.|$)")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            import keras  # noqa: F401
            import tensorflow as tf
            import tf2onnx  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    tf.get_logger().setLevel(logging.ERROR)
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)


def main(argv: list[str]) -> int:
    from model_export.convert.errors import ConvertError
    from model_export.convert.options import PROG, parse_args, read_probe_texts
    from model_export.convert.tokenizer_json import read_keras_tokenizer
    from model_export.writer import BundleExistsError, check_writable
    from service.bundle.format import BundleError

    made: list[Path] = []  # directories this run created, removed again if it fails
    try:
        options = parse_args(argv)
        if options.tokenizer is not None:
            read_keras_tokenizer(options.tokenizer)
        read_probe_texts(options.probe_texts)
        root = options.output_dir / options.name
        made = [p for p in (options.output_dir, root) if not p.exists()]
        check_writable(root)
        if options.version is not None and (root / str(options.version)).exists():
            raise BundleExistsError(f"{root / str(options.version)} already exists; choose another --version")
        _import_tensorflow()
        from model_export.convert.run import convert, say

        final = convert(options)
    except (ConvertError, BundleExistsError, BundleError) as exc:
        print(f"{PROG}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        for directory in reversed(made):
            with contextlib.suppress(OSError):
                directory.rmdir()  # only if still empty
        return 2
    say(f"bundle written to {final}")
    return 0
