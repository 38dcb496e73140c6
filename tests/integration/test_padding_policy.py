"""The predictor pads as the bundle's tokenizer says: to each group's longest text when the
graph is padding-invariant, to max_length in one run when it is not (a converted model with
pre-padding, no mask or a fixed input length). Real onnxruntime on the shipped model."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from service.bundle.format import load_bundle
from service.bundle.runtime import ModelRuntime
from service.bundle.tokenizer import Tokenizer
from service.engine.bucketing import RunCost
from service.engine.predictor import Predictor


class PaddingDependent(Tokenizer):
    """The shipped tokenizer, as if its model's outputs depended on padding."""

    @property
    def padding_invariant(self) -> bool:
        return False


class RecordingRuntime(ModelRuntime):
    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.shapes: list[tuple[int, ...]] = []

    def predict(self, ids: np.ndarray) -> np.ndarray:
        self.shapes.append(ids.shape)
        return super().predict(ids)


TEXTS = ["ok", "lost my bag again at the airport and nobody answers", "", "great crew, thanks!", "delayed"] * 4
# A cost model under which splitting a batch by length always pays.
SPLIT_ALWAYS = RunCost(per_run=0.0, per_step=0.0, per_row_step=1.0)


@pytest.mark.parametrize("invariant", [True, False])
def test_the_predictor_pads_as_the_tokenizer_says(shipped_bundle_dir: Path, invariant: bool) -> None:
    bundle = load_bundle(shipped_bundle_dir)
    if not invariant:
        bundle = dataclasses.replace(bundle, tokenizer=PaddingDependent(bundle.tokenizer.config, bundle.tokenizer.vocabulary))
    runtime = RecordingRuntime(bundle)
    runtime.warm_up()
    warm_up_shapes, runtime.shapes = runtime.shapes, []
    predictor = Predictor(runtime, max_batch_size=64, max_delay=0, max_queue_size=64, run_cost=SPLIT_ALWAYS)
    ids, _ = predictor.encode(TEXTS)
    probs = predictor.run_batch(ids)
    reference = ModelRuntime(load_bundle(shipped_bundle_dir)).predict(bundle.tokenizer.encode(TEXTS))
    np.testing.assert_allclose(probs, reference, atol=1e-5)
    max_length = bundle.tokenizer.max_length
    if invariant:
        assert len(runtime.shapes) > 1 and all(width < max_length for _, width in runtime.shapes)
    else:
        assert runtime.shapes == [(len(TEXTS), max_length)]
        assert {width for _, width in warm_up_shapes} == {max_length}
