"""The onnxruntime session for a bundle, checked against the bundle's manifest.

``ModelRuntime.predict`` is thread-safe (``InferenceSession.run`` is) and releases the GIL
while the model runs, so the service calls it from a worker thread.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from service.bundle.format import Bundle, BundleError
from service.bundle.options import RuntimeOptions

_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
_ORT_DTYPES = {"tensor(int32)": "int32", "tensor(float)": "float32"}


def _session_options(options: RuntimeOptions) -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.intra_op_num_threads = options.intra_op_threads
    so.inter_op_num_threads = options.inter_op_threads
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = _LEVELS[options.optimization]
    # Threads spinning while idle would steal the core from the event loop.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    so.log_severity_level = 3
    return so


class ModelRuntime:
    """An ``InferenceSession`` whose inputs and outputs match what the manifest promises."""

    def __init__(self, bundle: Bundle, options: RuntimeOptions | None = None) -> None:
        self.bundle = bundle
        self.options = options or RuntimeOptions()
        self.model_file = bundle.variant_file(self.options.variant)
        try:
            self.session = ort.InferenceSession(
                str(bundle.path / self.model_file),
                _session_options(self.options),
                providers=["CPUExecutionProvider"],
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors on bad files
            where = f"bundle {bundle.path}: onnxruntime cannot load {self.model_file}"
            raise BundleError(f"{where}: {exc}", "onnx") from exc
        self._check_signature()
        self.input_name = bundle.manifest.input.name
        self.output_name = bundle.manifest.output.name

    def _check_signature(self) -> None:
        manifest = self.bundle.manifest
        inputs = self.session.get_inputs()
        outputs = self.session.get_outputs()
        where = f"bundle {self.bundle.path}: {self.model_file}"
        if len(inputs) != 1:
            raise BundleError(f"{where} has {len(inputs)} inputs, expected 1", "signature")
        got_in = inputs[0]
        if got_in.name != manifest.input.name or _ORT_DTYPES.get(got_in.type) != "int32":
            raise BundleError(
                f"{where} input is {got_in.name!r} {got_in.type}, manifest says"
                f" {manifest.input.name!r} int32", "signature",
            )
        if len(got_in.shape) != 2:
            raise BundleError(f"{where} input has rank {len(got_in.shape)}, expected 2", "signature")
        match = [o for o in outputs if o.name == manifest.output.name]
        if not match:
            raise BundleError(f"{where} has no output named {manifest.output.name!r}", "signature")
        got_out = match[0]
        n_labels = len(manifest.labels)
        if _ORT_DTYPES.get(got_out.type) != "float32" or len(got_out.shape) != 2:
            raise BundleError(f"{where} output is {got_out.type} {got_out.shape}, expected float32 rank 2", "signature")
        if isinstance(got_out.shape[1], int) and got_out.shape[1] != n_labels:
            raise BundleError(
                f"{where} outputs {got_out.shape[1]} classes but the manifest has {n_labels} labels", "signature",
            )

    def predict(self, ids: np.ndarray) -> np.ndarray:
        """Class probabilities ``[n, n_labels]`` (float32) for an int32 ``[n, length]`` matrix."""
        probs: np.ndarray = self.session.run([self.output_name], {self.input_name: ids})[0]
        return probs

    def warm_up(self) -> None:
        """Run the shapes the service will use once, so the first request pays nothing extra.
        A graph that is not padding-invariant only ever sees rows of ``max_length`` ids."""
        n_labels = len(self.bundle.labels)
        longest = self.bundle.manifest.max_length
        shapes: tuple[tuple[int, int], ...] = ((1, 1), (1, longest), (8, 8))
        if not self.bundle.tokenizer.padding_invariant:
            shapes = ((1, longest), (8, longest))
        for rows, length in shapes:
            probs = self.predict(np.ones((rows, length), dtype=np.int32))
            if probs.shape != (rows, n_labels) or not np.all(np.isfinite(probs)):
                raise BundleError(
                    f"bundle {self.bundle.path}: model.onnx returned shape {probs.shape}"
                    f" (expected {(rows, n_labels)}) or non-finite values on warm-up", "onnx",
                )
