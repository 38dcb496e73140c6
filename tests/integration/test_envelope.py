"""The per-request envelope: /predict answered on its lean branch still runs inside the
app's middleware stack, so middleware added the FastAPI way sees every route."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from fastapi.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from service.app import create_app
from service.settings import Settings


class Tagging:
    """A user's middleware: counts the requests it sees and tags their answers."""

    seen: ClassVar[list[str]] = []

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            Tagging.seen.append(scope["path"])

            async def tagged(message: dict) -> None:  # type: ignore[type-arg]
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", []), (b"x-tagged", b"yes")]
                await send(message)

            await self.app(scope, receive, tagged)
            return
        await self.app(scope, receive, send)


def test_middleware_added_the_fastapi_way_runs_on_the_lean_predict(shipped_bundle_dir: Path) -> None:
    app = create_app(Settings(model_path=shipped_bundle_dir))
    app.add_middleware(Tagging)
    Tagging.seen.clear()
    with TestClient(app) as client:
        predicted = client.post("/predict", json={"texts": ["on time"]})
        refused = client.post("/predict", content=b"[", headers={"content-type": "application/json"})
        health = client.get("/health")
    assert predicted.status_code == 200 and predicted.headers["x-tagged"] == "yes"
    assert refused.status_code == 400 and refused.headers["x-tagged"] == "yes"
    assert health.headers["x-tagged"] == "yes"
    assert Tagging.seen == ["/predict", "/predict", "/health"]
    assert predicted.headers["x-request-id"] and refused.json()["request_id"] == refused.headers["x-request-id"]


def test_openapi_documents_predict_with_this_apps_limits(shipped_bundle_dir: Path) -> None:
    app = create_app(Settings(model_path=shipped_bundle_dir, max_texts_per_request=7))
    with TestClient(app) as client:
        document = client.get("/openapi.json").json()
    predict = document["paths"]["/predict"]["post"]
    schema = predict["requestBody"]["content"]["application/json"]["schema"]
    texts = schema["properties"]["texts"]["anyOf"][0]
    assert texts["maxItems"] == 7
    assert {"200", "400", "401", "413", "415", "422", "503", "504"} <= set(predict["responses"])
    for path in ("/v2/models/{model_name}/infer", "/v2/models/{model_name}/versions/{model_version}/infer"):
        params = {p["name"] for p in document["paths"][path]["post"]["parameters"]}
        assert params == {"model_name"} | ({"model_version"} if "versions" in path else set())
