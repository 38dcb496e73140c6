"""Every shortcut the hot path takes must give the plain path's answer."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.corpus import load_texts
from service.bundle.format import load_bundle
from service.bundle.options import RuntimeOptions
from service.bundle.runtime import ModelRuntime
from service.engine.predictor import Predictor


def test_padding_each_batch_to_its_longest_text_changes_no_output(shipped_bundle_dir: Path) -> None:
    """The batcher pads to the batch's longest text, not to max_length (the model masks
    padding): checked on the benchmark's 2,000 real tweets, in batches of mixed lengths."""
    bundle = load_bundle(shipped_bundle_dir)
    runtime = ModelRuntime(bundle)
    predictor = Predictor(runtime, max_batch_size=64, max_delay=0, max_queue_size=64)
    texts = load_texts()
    plain = runtime.predict(bundle.tokenizer.encode(texts))  # every row padded to max_length
    for size in (1, 7, 64):
        bucketed = np.concatenate(
            [predictor.run_batch(predictor.encode(texts[i : i + size])[0]) for i in range(0, len(texts), size)]
        )
        np.testing.assert_allclose(bucketed, plain, atol=1e-5)
        assert (bucketed.argmax(1) == plain.argmax(1)).all()


def test_session_options_do_not_change_outputs(shipped_bundle_dir: Path) -> None:
    bundle = load_bundle(shipped_bundle_dir)
    ids = bundle.tokenizer.encode(load_texts()[:300])
    reference = ModelRuntime(bundle, RuntimeOptions(optimization="disable")).predict(ids)
    for options in (RuntimeOptions(), RuntimeOptions(intra_op_threads=2), RuntimeOptions(optimization="basic")):
        np.testing.assert_allclose(ModelRuntime(bundle, options).predict(ids), reference, atol=1e-5)
