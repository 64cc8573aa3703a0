"""The dashboard's health check reads whole HTTP replies from servers that cut them up,
stall, lie about their size, answer chunked, send megabytes or no HTTP at all (small
servers on 127.0.0.1 play each part); it always ends within its timeout."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from services.tools.dashboard.lag import MAX_REPLY, NoHttpReply, http_get, readiness

pytestmark = pytest.mark.integration

Writer = Callable[[asyncio.StreamWriter], Awaitable[None]]
READY = json.dumps(
    {
        "ready": False,
        "stalled": {"consumer": 0, "relay": 42.0},
        "reasons": ["relay: no progress for 42 s"],
        "store_head": 7,
        "relay_published": 5,
        "relay_leader": True,
    }
).encode()


@contextlib.asynccontextmanager
async def server(answer: Writer) -> AsyncIterator[int]:
    """A server on 127.0.0.1 that reads the request head, then lets `answer` reply."""

    handlers: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            await reader.readuntil(b"\r\n\r\n")
            await answer(writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield srv.sockets[0].getsockname()[1]
    finally:
        srv.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await srv.wait_closed()


async def dribble(writer: asyncio.StreamWriter, data: bytes, piece: int = 7) -> None:
    """Send `data` a few bytes at a time, with pauses: many reads see part of it."""
    for at in range(0, len(data), piece):
        writer.write(data[at : at + piece])
        await writer.drain()
        await asyncio.sleep(0.002)


def head(status: str, *headers: str) -> bytes:
    return (f"HTTP/1.1 {status}\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n").encode()


async def test_a_reply_cut_in_small_pieces_is_read_whole() -> None:
    """Content-Length given and the connection kept open: read exactly the body, at once."""

    async def answer(writer: asyncio.StreamWriter) -> None:
        await dribble(
            writer,
            head(
                "503 Service Unavailable",
                "Content-Type: application/json",
                f"Content-Length: {len(READY)}",
            )
            + READY,
        )
        await asyncio.sleep(30)  # does not close: the length says when the body ends

    async with server(answer) as port:
        started = time.monotonic()
        reply = await http_get("127.0.0.1", port, "/ready", timeout=10)
    assert time.monotonic() - started < 5
    assert (reply.status, reply.body) == (503, READY)
    state = readiness(reply)
    assert not state["ready"] and state["stalled"] == [{"component": "relay", "seconds": 42.0}]
    assert state["reasons"] == ["relay: no progress for 42 s"] and state["relay_lag"] == 2


async def test_a_reply_without_length_ends_when_the_server_closes() -> None:
    async def answer(writer: asyncio.StreamWriter) -> None:
        await dribble(writer, head("200 OK") + READY, piece=3)

    async with server(answer) as port:
        reply = await http_get("127.0.0.1", port, "/ready", timeout=10)
    assert (reply.status, reply.body) == (200, READY)


async def test_a_chunked_reply_is_decoded() -> None:
    async def answer(writer: asyncio.StreamWriter) -> None:
        chunks = b"".join(
            b"%x\r\n%s\r\n" % (len(READY[i : i + 10]), READY[i : i + 10])
            for i in range(0, len(READY), 10)
        )
        await dribble(
            writer, head("200 OK", "Transfer-Encoding: chunked") + chunks + b"0\r\n\r\n", piece=5
        )
        await asyncio.sleep(30)

    async with server(answer) as port:
        reply = await http_get("127.0.0.1", port, "/ready", timeout=10)
    assert (reply.status, reply.body) == (200, READY)


async def test_a_huge_reply_is_not_read_to_its_end() -> None:
    async def answer(writer: asyncio.StreamWriter) -> None:
        writer.write(head("200 OK", f"Content-Length: {8 * MAX_REPLY}"))
        for _ in range(8):
            writer.write(b"x" * MAX_REPLY)
            await writer.drain()

    async with server(answer) as port:
        reply = await http_get("127.0.0.1", port, "/ready", timeout=10)
    assert (reply.status, reply.body) == (200, None)
    assert readiness(reply)["reply_problem"] == "reply too large"


@pytest.mark.parametrize(
    "garbage",
    [b"SSH-2.0-OpenSSH_9.2\r\n\r\n", b"\xff" * 100 + b"\r\n\r\n", b"HTTP/1.1 OK\r\n\r\n", b""],
)
async def test_what_is_not_http_is_said_so(garbage: bytes) -> None:
    async def answer(writer: asyncio.StreamWriter) -> None:
        writer.write(garbage)
        await writer.drain()

    async with server(answer) as port:
        with pytest.raises(NoHttpReply):
            await http_get("127.0.0.1", port, "/ready", timeout=10)


async def test_a_silent_or_endless_server_is_given_up_on_time() -> None:
    async def silent(writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    async def endless(writer: asyncio.StreamWriter) -> None:
        writer.write(head("200 OK", "Content-Length: 100") + b"{")
        await writer.drain()
        await asyncio.sleep(30)

    for answer in (silent, endless):
        async with server(answer) as port:
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await http_get("127.0.0.1", port, "/ready", timeout=0.5)
            assert time.monotonic() - started < 5


async def test_nothing_listening() -> None:
    async with server(lambda writer: asyncio.sleep(0)) as port:
        pass  # closed: nothing listens on that port any more
    with pytest.raises(OSError):
        await http_get("127.0.0.1", port, "/ready", timeout=5)
