"""uvicorn with ``CoalescingHttpProtocol`` (what ``serverkit.http.serve`` runs), on a real
socket: a response leaves in one send, keep-alive and close still work, streams still stream."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.responses import StreamingResponse

from serverkit.coalesce import CoalescingHttpProtocol, CoalescingTransport
from serverkit.net import free_port
from tests.support import wait_until

STREAM_GAP = 0.3


def app() -> FastAPI:
    app = FastAPI()

    @app.post("/echo")
    async def echo(body: dict[str, str]) -> dict[str, str]:
        return body

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def parts():  # type: ignore[no-untyped-def]
            yield b"first\n"
            await asyncio.sleep(STREAM_GAP)
            yield b"second\n"

        return StreamingResponse(parts(), media_type="text/plain")

    return app


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    port = free_port()
    config = uvicorn.Config(
        app(), host="127.0.0.1", port=port, http=CoalescingHttpProtocol, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, timeout=20)
    yield port
    server.should_exit = True
    thread.join(timeout=10)


def post(sock: socket.socket, body: bytes, close: bool = False) -> None:
    extra = b"Connection: close\r\n" if close else b""
    sock.sendall(
        b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + extra
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )


class Recorded(asyncio.Transport):
    """Records what reaches the socket, write by write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:  # type: ignore[override]
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0


def test_writes_in_one_loop_step_leave_in_one_write_at_its_end():
    async def go() -> tuple[list[bytes], list[bytes], list[bytes]]:
        inner = Recorded()
        transport = CoalescingTransport(inner, asyncio.get_running_loop())
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        transport.write(b"body")
        during = list(inner.writes)
        await asyncio.sleep(0)
        after_step = list(inner.writes)
        transport.write(b"last")
        transport.close()  # flushes first
        return during, after_step, inner.writes

    during, after_step, final = asyncio.run(go())
    assert during == []
    assert after_step == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
    assert final == [b"HTTP/1.1 200 OK\r\n\r\nbody", b"last"]


def test_answers_on_a_reused_connection_are_whole(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for value in (b"one", b"two"):
            post(sock, b'{"x": "%s"}' % value)
            answer = b""
            while not answer.endswith(b"}"):
                answer += sock.recv(65536)
            head, _, content = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200")
            assert content == b'{"x":"%s"}' % value


def test_connection_close_sends_the_whole_answer_before_closing(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        post(sock, b'{"x": "bye"}', close=True)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 200")
    assert received.endswith(b'{"x":"bye"}')


def test_a_streamed_response_still_sends_each_part_when_it_is_made(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        first = b""
        while b"first" not in first:
            first += sock.recv(65536)
        arrived = time.monotonic()
        assert b"second" not in first
        rest = b""
        while b"0\r\n\r\n" not in rest:
            rest += sock.recv(65536)
        assert b"second" in rest
        assert time.monotonic() - arrived >= STREAM_GAP * 0.5
