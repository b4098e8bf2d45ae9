"""The forwarding client against real loopback servers: a scripted socket server for exact
framing and failures, and uvicorn for the real thing."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from serverkit.upstream import UpstreamError, UpstreamPool
from tests.support import free_port, wait_until

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head, await reader.readexactly(length)


async def serve(handler: Handler) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def run(coro: Awaitable[object]) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_content_length_answers_reuse_one_connection() -> None:
    connections = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        while True:
            try:
                head, body = await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            assert head.startswith(b"POST /predict HTTP/1.1\r\n")
            answer = b'{"echo": ' + body + b"}"
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))
            await writer.drain()

    async def main() -> None:
        server, port = await serve(handler)
        pool = UpstreamPool(timeout=5)
        for i in range(3):
            status, content = await pool.post("127.0.0.1", port, "/predict", b"%d" % i)
            assert (status, content) == (200, b'{"echo": %d}' % i)
        assert len(connections) == 1
        await pool.close()
        server.close()

    run(main())


def test_chunked_and_close_delimited_answers() -> None:
    answers = [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
        b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n\r\nuntil the end",
    ]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while answers:  # one connection: the chunked answer keeps it open for the next
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            answer = answers.pop(0)
            writer.write(answer)
            await writer.drain()
            if answer.startswith(b"HTTP/1.0"):
                writer.close()
                return

    async def main() -> None:
        server, port = await serve(handler)
        pool = UpstreamPool(timeout=5)
        assert await pool.post("127.0.0.1", port, "/p", b"{}") == (200, b"hello world")
        assert await pool.post("127.0.0.1", port, "/p", b"{}") == (503, b"until the end")
        await pool.close()
        server.close()

    run(main())


def test_a_keep_alive_connection_closed_by_the_server_is_retried_once() -> None:
    connections = []
    served = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        await read_request(reader)
        served.append(len(connections))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        if len(connections) == 1:
            # The next request on this connection meets a close, as when a server's idle
            # timeout fires just as the client reuses the socket.
            await read_request(reader)
            writer.close()

    async def main() -> None:
        server, port = await serve(handler)
        pool = UpstreamPool(timeout=5, idle_seconds=60)
        assert await pool.post("127.0.0.1", port, "/p", b"{}") == (200, b"ok")
        assert await pool.post("127.0.0.1", port, "/p", b"{}") == (200, b"ok")
        assert served == [1, 2] and len(connections) == 2
        await pool.close()
        server.close()

    run(main())


def test_stale_idle_connections_are_not_reused() -> None:
    connections = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        while True:
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()

    async def main() -> None:
        server, port = await serve(handler)
        pool = UpstreamPool(timeout=5, idle_seconds=0.1)
        await pool.post("127.0.0.1", port, "/p", b"{}")
        await pool.post("127.0.0.1", port, "/p", b"{}")
        assert len(connections) == 1
        await asyncio.sleep(0.2)
        await pool.post("127.0.0.1", port, "/p", b"{}")
        assert len(connections) == 2
        await pool.close()
        server.close()

    run(main())


@pytest.mark.parametrize(
    ("answer", "text"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "cut off in its body"),
        (b"HTTP/1.1 200 OK\r\nContent-Le", "cut off in its headers"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", "bad Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
        (b"", "connection closed before an answer"),
    ],
)
def test_broken_answers_are_upstream_errors(answer: bytes, text: str) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer)
        await writer.drain()
        writer.close()

    async def main() -> None:
        server, port = await serve(handler)
        pool = UpstreamPool(timeout=5)
        with pytest.raises(UpstreamError, match=text):
            await pool.post("127.0.0.1", port, "/p", b"{}")
        server.close()

    run(main())


def test_refused_and_silent_servers() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(10)

    async def main() -> None:
        pool = UpstreamPool(timeout=0.3)
        with pytest.raises(UpstreamError, match="ConnectionRefused"):
            await pool.post("127.0.0.1", free_port(), "/p", b"{}")
        server, port = await serve(silent)
        with pytest.raises(UpstreamError, match=r"no answer within 0\.3 s"):
            await pool.post("127.0.0.1", port, "/p", b"{}")
        server.close()

    run(main())


@pytest.fixture(scope="module")
def uvicorn_port() -> Iterator[int]:
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    @app.post("/stream")
    async def stream() -> StreamingResponse:
        return StreamingResponse(iter([b"a" * 70000, b"b"]), media_type="text/plain")

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, timeout=20)
    yield port
    server.should_exit = True
    thread.join(10)


def test_against_uvicorn(uvicorn_port: int) -> None:
    async def main() -> None:
        pool = UpstreamPool(timeout=10)
        big = b"x" * 3_000_000
        results = await asyncio.gather(
            *(pool.post("127.0.0.1", uvicorn_port, "/echo", big[: 1000 * i]) for i in range(20))
        )
        assert [r for r in results] == [(200, b'{"bytes":%d}' % (1000 * i)) for i in range(20)]
        status, content = await pool.post("127.0.0.1", uvicorn_port, "/stream", b"")
        assert status == 200 and content == b"a" * 70000 + b"b"
        assert (await pool.post("127.0.0.1", uvicorn_port, "/echo", big))[1] == b'{"bytes":3000000}'
        assert (await pool.post("127.0.0.1", uvicorn_port, "/nope", b""))[0] == 404
        await pool.close()

    run(main())


def test_abort_ends_requests_in_flight_at_once_and_none_is_retried() -> None:
    heads: list[bytes] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _ = await read_request(reader)
        heads.append(head)
        await asyncio.sleep(30)  # a hung server: it read the request, it never answers

    async def main() -> None:
        server, port = await serve(silent)
        pool = UpstreamPool(timeout=20, headers=[("Authorization", "Bearer k")])
        calls = [
            asyncio.create_task(pool.post("127.0.0.1", port, "/predict", b"{}")),
            asyncio.create_task(pool.request("GET", "127.0.0.1", port, "/v2/models/m")),
        ]
        await asyncio.to_thread(wait_until, lambda: len(heads) == 2, 5)
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert pool.abort("127.0.0.1", port) == 2
        for call in calls:
            with pytest.raises(UpstreamError, match="stopped answering"):
                await call
        assert loop.time() - started < 0.5
        assert len(heads) == 2  # not sent again on a new connection
        assert all(b"\r\nAuthorization: Bearer k\r\n" in head for head in heads)
        assert pool.abort("127.0.0.1", port) == 0
        server.close()

    run(main())
