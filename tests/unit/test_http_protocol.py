"""GatheredWrites: the writes of one loop turn leave as one, and nothing is lost or reordered."""

from __future__ import annotations

import asyncio

import pytest

from service.process.protocol import GatheredWrites


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False
        self.buffered = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closed, "write after close"
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = self.closed = True

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 8000) if name == "sockname" else default


async def next_turn() -> None:
    await asyncio.sleep(0)
    await asyncio.sleep(0)


async def test_writes_of_one_turn_are_sent_together_in_order() -> None:
    raw = RecordingTransport()
    gathered = GatheredWrites(raw, asyncio.get_running_loop())
    gathered.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    gathered.write(memoryview(b"{}"))
    assert raw.writes == []  # nothing leaves before the turn ends
    await next_turn()
    assert raw.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
    gathered.write(b"next")
    await next_turn()
    assert raw.writes[1:] == [b"next"]  # a later turn is a later write


async def test_empty_writes_send_nothing() -> None:
    raw = RecordingTransport()
    gathered = GatheredWrites(raw, asyncio.get_running_loop())
    gathered.write(b"")
    await next_turn()
    assert raw.writes == []


async def test_close_sends_what_was_gathered_first() -> None:
    raw = RecordingTransport()
    gathered = GatheredWrites(raw, asyncio.get_running_loop())
    gathered.writelines([b"HTTP/1.1 400 Bad Request\r\n", b"\r\n"])
    gathered.close()
    assert raw.writes == [b"HTTP/1.1 400 Bad Request\r\n\r\n"] and raw.closed
    await next_turn()  # the scheduled flush finds nothing left to send
    assert len(raw.writes) == 1


async def test_abort_drops_what_was_gathered() -> None:
    raw = RecordingTransport()
    gathered = GatheredWrites(raw, asyncio.get_running_loop())
    gathered.write(b"partial")
    gathered.abort()
    await next_turn()
    assert raw.writes == [] and raw.aborted


async def test_nothing_is_written_to_a_transport_the_peer_closed() -> None:
    raw = RecordingTransport()
    gathered = GatheredWrites(raw, asyncio.get_running_loop())
    gathered.write(b"late answer")
    raw.closed = True  # connection lost before the turn ended
    await next_turn()
    assert raw.writes == []


async def test_buffer_size_counts_gathered_bytes_and_the_rest_is_the_transport() -> None:
    raw = RecordingTransport()
    raw.buffered = 10
    gathered = GatheredWrites(raw, asyncio.get_running_loop())
    gathered.write(b"12345")
    assert gathered.get_write_buffer_size() == 15
    assert gathered.get_extra_info("sockname") == ("127.0.0.1", 8000)
    assert not gathered.is_closing()
    with pytest.raises(AttributeError):
        gathered.no_such_method  # noqa: B018
