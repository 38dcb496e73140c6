"""Run by tests/e2e/test_grpc_client.py under the separate tritonclient[grpc] virtualenv
(``.venv-triton``; its grpcio and protobuf pins clash with TensorFlow's): the unmodified
``tritonclient.grpc`` against a real server. Reads ``{"target", "batches", "key"}`` as JSON
on stdin and prints what the client saw as JSON. Imports nothing of textserve."""

from __future__ import annotations

import json
import sys

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException


def main() -> None:
    job = json.load(sys.stdin)
    client = grpcclient.InferenceServerClient(url=job["target"])
    headers = {"authorization": f"Bearer {job['key']}"} if job.get("key") else None
    metadata = client.get_model_metadata("sentiment", as_json=True)
    out = {
        "live": client.is_server_live(),
        "ready": client.is_server_ready(),
        "model_ready": client.is_model_ready("sentiment"),
        "model_ready_version": client.is_model_ready("sentiment", job["version"]),
        "server": client.get_server_metadata(as_json=True),
        "metadata": metadata,
        "index": client.get_model_repository_index(headers=headers, as_json=True),
        "results": [],
    }
    for texts in job["batches"]:
        tensor = grpcclient.InferInput("text", [len(texts)], "BYTES")
        tensor.set_data_from_numpy(np.array([t.encode() for t in texts], dtype=np.object_))
        result = client.infer("sentiment", [tensor], headers=headers, request_id="r1")
        top = grpcclient.InferRequestedOutput("probabilities", class_count=1)
        best = client.infer("sentiment", [tensor], outputs=[top], headers=headers)
        out["results"].append({
            "probabilities": result.as_numpy("probabilities").tolist(),
            "labels": [b.decode() for b in result.as_numpy("label").ravel()],
            "top": [b.decode() for b in best.as_numpy("probabilities").ravel()],
            "id": result.get_response().id,
        })
    errors = {}
    for name, call in {
        "no_key": lambda: client.infer("sentiment", [tensor]),
        "unknown_model": lambda: client.infer("nope", [tensor], headers=headers),
        "load": lambda: client.load_model("sentiment", headers=headers),
        "config": lambda: client.get_model_config("sentiment"),
    }.items():
        try:
            call()
            errors[name] = "OK"
        except InferenceServerException as exc:
            errors[name] = exc.status()
    out["errors"] = errors
    client.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
