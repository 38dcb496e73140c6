"""The protocol hands POST /predict to the direct path and everything else to the ASGI app.

uvicorn's protocol class is driven in-process with raw request bytes and a recording
transport, on the real app and the shipped model; the end-to-end tests check the same path
over sockets (``tests/e2e/test_direct_predict.py``)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import uvicorn
from uvicorn.server import ServerState

from service.http_protocol import CoalescingHttpToolsProtocol
from service.main import create_app
from service.settings import Settings
from tests.unit.test_http_protocol import RecordingTransport

BODY = b'{"texts": ["great crew", "lost my bag"]}'
PREDICT = (
    b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)
HEALTH = b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n"


class Connection(RecordingTransport):
    """A recording transport that also takes uvicorn's flow control."""

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def exchange(fast_path: bool, bundle: Path, requests: bytes, answers: int) -> tuple[list[bytes], int]:
    """The raw responses to ``requests`` sent on one connection, and how many requests the
    direct path served."""
    app = create_app(Settings(model_path=bundle, fast_path=fast_path))
    config = uvicorn.Config(app, http=CoalescingHttpToolsProtocol, log_config=None, lifespan="off")
    served = 0
    async with app.router.lifespan_context(app):
        direct = app.direct_predict
        assert (direct is not None) == fast_path
        if direct is not None:
            serve = direct.serve

            async def counted(cycle):  # type: ignore[no-untyped-def]
                nonlocal served
                served += 1
                await serve(cycle)

            direct.serve = counted  # type: ignore[method-assign]
        protocol = CoalescingHttpToolsProtocol(config=config, server_state=ServerState(), app_state={})
        transport = Connection()
        protocol.connection_made(transport)
        protocol.data_received(requests)
        for _ in range(500):  # bounded: a few seconds at most
            if b"".join(transport.writes).count(b"HTTP/1.1 ") >= answers:
                break
            await asyncio.sleep(0.01)
        protocol.connection_lost(None)
    return [b"HTTP/1.1 " + part for part in b"".join(transport.writes).split(b"HTTP/1.1 ")[1:]], served


@pytest.mark.parametrize("fast_path", [True, False])
def test_predict_goes_direct_and_the_rest_to_the_app(shipped_bundle_dir: Path, fast_path: bool) -> None:
    responses, served = asyncio.run(exchange(fast_path, shipped_bundle_dir, PREDICT + HEALTH + PREDICT, 3))
    assert served == (2 if fast_path else 0)
    assert [r.split(b" ", 2)[1] for r in responses] == [b"200", b"200", b"200"]
    first, health, last = (json.loads(r.partition(b"\r\n\r\n")[2]) for r in responses)
    assert health["status"] == "ready"
    assert first == last and [p["label"] for p in first["predictions"]] != []
    assert len(first["predictions"]) == 2
    assert all(b"\r\nx-request-id: " in r for r in responses)
