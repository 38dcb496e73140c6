"""``python -m model_export`` / ``textserve-export``: train, export and write a bundle;
``textserve-export convert ...`` converts a user's own Keras model instead (docs/convert.md)."""

from __future__ import annotations

import sys

from model_export.data import DataError
from model_export.options import parse_args, read_corpus
from model_export.parity import ParityError
from model_export.writer import BundleExistsError, check_writable


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    # The export image's entrypoint puts "--output-dir /app/models" before any arguments.
    lead = args[:2] if args[:1] == ["--output-dir"] else []
    if args[len(lead) : len(lead) + 1] == ["convert"]:
        from model_export.convert import main as convert

        return convert([*lead, *args[len(lead) + 1 :]])
    options = parse_args(argv)
    try:
        corpus = read_corpus(options)
        check_writable(options.output_dir / options.name)
        # TensorFlow is imported only once the data is known to be usable.
        from model_export.pipeline import run

        run(options, corpus)
    except (DataError, ParityError, BundleExistsError) as exc:
        print(f"textserve-export: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
