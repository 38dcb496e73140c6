import asyncio
import datetime as dt
import io
import json
import re

from service.observability.access_log import AccessLog, _now


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


def test_access_log_times_are_iso_8601_with_milliseconds_in_utc() -> None:
    """The access log's clock (a cached second and a table of milliseconds) tells the time
    in the same shape as the other log lines."""
    before = dt.datetime.now(dt.UTC)
    stamp = _now()
    after = dt.datetime.now(dt.UTC)
    parsed = dt.datetime.fromisoformat(stamp)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", stamp)
    assert before - dt.timedelta(milliseconds=1) <= parsed <= after


class Writes(io.BytesIO):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[bytes] = []

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.calls.append(bytes(data))
        return super().write(data)


async def test_each_write_is_whole_lines_within_pipe_buf_so_workers_never_interleave() -> None:
    stream = Writes()
    log = AccessLog(stream)  # type: ignore[arg-type]
    entries = [{"request_id": str(i), "pad": "x" * (i % 300)} for i in range(200)]
    for entry in entries:
        log.write(entry)
    log.flush()
    assert len(stream.calls) > 1
    assert all(len(call) <= AccessLog.WRITE_BYTES and call.endswith(b"\n") for call in stream.calls)
    assert [json.loads(line)["request_id"] for line in stream.getvalue().splitlines()] == [
        e["request_id"] for e in entries]
