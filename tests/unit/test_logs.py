import asyncio
import io
import json

from service.logs import AccessLog


async def test_access_lines_are_written_in_batches_and_never_lost() -> None:
    stream = io.BytesIO()
    log = AccessLog(stream)  # type: ignore[arg-type]
    log.write({"request_id": "a", "status": 200})
    log.write({"request_id": "b", "status": 422})
    assert stream.getvalue() == b""  # gathered, not one system call per request
    await asyncio.sleep(AccessLog.FLUSH_AFTER_S * 2)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(x["request_id"], x["status"], x["logger"]) for x in lines] == [
        ("a", 200, "textserve.access"), ("b", 422, "textserve.access")]
    log.write({"request_id": "c"})
    log.flush()  # what the app does when it stops
    assert stream.getvalue().count(b"\n") == 3


def test_a_large_batch_is_written_at_once_and_without_a_loop_each_line_is() -> None:
    stream = io.BytesIO()
    log = AccessLog(stream)  # type: ignore[arg-type]
    log.write({"pad": "x" * 10})
    assert stream.getvalue().count(b"\n") == 1  # no event loop to flush later
