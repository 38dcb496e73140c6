"""``bench/instructions.py`` counts what it claims to: real /predict requests through the
service's app (and the bare server's), answered 200, with only the model's run stubbed.
(Running it under valgrind takes minutes; that part is the bench's, not the tests'.)"""

from __future__ import annotations

import asyncio
import json

import orjson
import pytest

from bench.instructions import build_app, post, request_scope, started

BODY = json.dumps({"texts": ["great flight, lovely crew", "they lost my bag again"]}).encode()


@pytest.mark.parametrize("which", ["textserve", "bare"])
def test_the_counted_requests_are_answered_by_the_app(which: str) -> None:
    app = build_app(which)

    async def run() -> list[int]:
        lifespan = await started(app)  # keep it referenced: a collected lifespan task drains the app
        statuses = list(await asyncio.gather(*(post(app, BODY) for _ in range(8))))
        lifespan.cancel()
        return statuses

    assert asyncio.run(run()) == [200] * 8


def test_only_the_model_is_stubbed() -> None:
    """The request still goes through tokenizer, batcher and reply: the answer has one
    prediction per text, with the stub's uniform scores."""
    app = build_app("textserve")
    bodies = []

    async def run() -> None:
        lifespan = await started(app)
        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": BODY, "more_body": False}

        async def send(message: dict[str, object]) -> None:
            if message["type"] == "http.response.body":
                bodies.append(message["body"])

        await app(request_scope(BODY), receive, send)
        lifespan.cancel()

    asyncio.run(run())
    predictions = orjson.loads(bodies[0])["predictions"]
    assert len(predictions) == 2
    assert all(score == pytest.approx(1 / 3) for p in predictions for score in p["scores"].values())
