"""Texts in, predictions out, with no HTTP: admission, the tokenizer on the caller's side,
the micro-batcher's queue, onnxruntime in the inference thread, labels back.

Nothing here imports FastAPI, Starlette or the transports; refusals are engine errors
(``admission.py``), which each transport turns into its own status.
"""
