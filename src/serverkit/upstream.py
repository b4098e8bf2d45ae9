"""A lean HTTP/1.1 client for forwarding requests to servers we run ourselves, on loopback.

The AI Platform forwards every prediction it routes to a model server. A general client
(aiohttp, httpx) spends most of that hop's CPU on features this path never uses: cookies,
redirects, proxies, TLS, header multidicts, tracing hooks. This one writes the request line
and headers directly and reads the answer with asyncio streams, keeping connections alive per
host and port. It speaks the subset of HTTP/1.1 that servers send back: a body framed by
``Content-Length``, ``Transfer-Encoding: chunked`` or the end of the connection.

Failures raise ``UpstreamError``. A request that fails on a reused keep-alive connection before
any of the answer arrived is sent once more on a fresh one (the server may have closed the
idle socket just as we used it); callers forward only idempotent requests. ``abort`` ends the
requests in flight to a server that stopped answering (the health probe found it hung), so
they fail now rather than at their deadline.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import deque
from collections.abc import Collection, Sequence
from urllib.parse import urlsplit

_MAX_HEAD = 64 * 1024
_ABORTED = "the server stopped answering (its health probe failed)"


@functools.lru_cache(maxsize=1024)
def split_endpoint(endpoint: str) -> tuple[str, int, str]:
    """Host, port and base path of an ``http://`` endpoint (parsed once per endpoint, not
    once per request)."""
    url = urlsplit(endpoint)
    return url.hostname or "", url.port or 80, url.path.rstrip("/")


class UpstreamError(Exception):
    """The upstream server could not be reached, or its answer was cut off or malformed;
    ``timed_out`` when no answer came within the pool's timeout."""

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class _Connection:
    __slots__ = ("aborted", "idle_since", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0
        self.aborted = False

    def close(self) -> None:
        self.writer.close()


class UpstreamPool:
    """Keep-alive connections to upstream servers, reused last-in first-out.

    Args:
        timeout: seconds for a whole request: connect, send and read the answer.
        idle_seconds: an idle connection older than this is closed rather than reused; keep it
            below the server's keep-alive timeout (uvicorn: 5 s).
        max_idle: idle connections kept per host and port.
        headers: sent with every request (e.g. the model servers' ``Authorization``).
    """

    def __init__(
        self,
        timeout: float,
        idle_seconds: float = 2.0,
        max_idle: int = 64,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.timeout = timeout
        self.idle_seconds = idle_seconds
        self.max_idle = max_idle
        self._extra = "".join(f"{name}: {value}\r\n" for name, value in headers)
        self._idle: dict[tuple[str, int], deque[_Connection]] = {}
        self._busy: dict[tuple[str, int], set[_Connection]] = {}

    async def post(
        self, host: str, port: int, path: str, body: bytes, content_type: str = "application/json"
    ) -> tuple[int, bytes]:
        """POST ``body`` to ``http://host:port{path}``; the answer's status and body.

        Raises:
            UpstreamError: not reachable, timed out, or the answer was cut off or malformed.
        """
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n"
            f"{self._extra}Content-Length: {len(body)}\r\n\r\n"
        ).encode("latin-1")
        status, _, content = await self._send(host, port, head + body, ())
        return status, content

    async def request(
        self,
        method: str,
        host: str,
        port: int,
        target: str,
        body: bytes = b"",
        headers: Sequence[tuple[str, str]] = (),
        keep: Collection[str] = (),
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Any method to ``http://host:port{target}`` (path and query) with ``headers``.

        Args:
            keep: the answer's headers to return (lower-case names); the rest are dropped.

        Returns:
            The status, the kept headers (name as ``keep`` spells it, value), the body.

        Raises:
            UpstreamError: not reachable, timed out, or the answer was cut off or malformed.
        """
        lines = [f"{method} {target} HTTP/1.1", f"Host: {host}:{port}"]
        lines += [f"{name}: {value}" for name, value in headers]
        if body or method not in ("GET", "HEAD", "DELETE"):
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n" + self._extra + "\r\n").encode("latin-1")
        return await self._send(host, port, head + body, keep)

    async def _send(
        self, host: str, port: int, request: bytes, keep: Collection[str]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        try:
            async with asyncio.timeout(self.timeout):
                conn = self._take(host, port)
                if conn is not None:
                    try:
                        return await self._exchange(conn, host, port, request, keep)
                    except _Retryable:
                        pass  # closed under us while idle: once more, on a new connection
                conn = await self._connect(host, port)
                try:
                    return await self._exchange(conn, host, port, request, keep)
                except _Retryable as exc:
                    raise UpstreamError(f"connection closed before an answer: {exc}") from None
        except TimeoutError:
            raise UpstreamError(f"no answer within {self.timeout:g} s", timed_out=True) from None
        except OSError as exc:
            raise UpstreamError(f"{type(exc).__name__}: {exc}") from None

    def abort(self, host: str, port: int) -> int:
        """Fail every request in flight to ``host:port`` now, and drop its idle connections;
        how many requests were in flight."""
        for conn in self._idle.pop((host, port), ()):
            conn.close()
        busy = self._busy.pop((host, port), set())
        for conn in busy:
            conn.aborted = True
            conn.writer.transport.abort()  # wakes the reader: the request fails at once
        return len(busy)

    async def close(self) -> None:
        """Close every idle connection."""
        for idle in self._idle.values():
            while idle:
                idle.pop().close()
        self._idle.clear()

    def _take(self, host: str, port: int) -> _Connection | None:
        idle = self._idle.get((host, port))
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            fresh = now - conn.idle_since < self.idle_seconds
            if fresh and not conn.reader.at_eof() and not conn.writer.is_closing():
                return conn
            conn.close()
        return None

    async def _connect(self, host: str, port: int) -> _Connection:
        reader, writer = await asyncio.open_connection(host, port, limit=_MAX_HEAD)
        return _Connection(reader, writer)

    async def _exchange(
        self, conn: _Connection, host: str, port: int, request: bytes, keep: Collection[str]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Send, read the answer, and put the connection back if it may be reused."""
        reusable = False
        started = False
        busy = self._busy.setdefault((host, port), set())
        busy.add(conn)
        try:
            conn.writer.write(request)
            await conn.writer.drain()
            try:
                head = await conn.reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as exc:
                if not exc.partial:
                    raise _Retryable("end of stream") from None
                raise UpstreamError("answer cut off in its headers") from None
            except ConnectionResetError as exc:
                raise _Retryable(str(exc)) from None
            except asyncio.LimitOverrunError:
                raise UpstreamError("answer headers too large") from None
            started = True
            status, length, chunked, keep_alive, kept = _parse_head(head, keep)
            if chunked:
                content = await _read_chunked(conn.reader)
            elif length is not None:
                content = await conn.reader.readexactly(length)
            else:
                content = await conn.reader.read()  # framed by the end of the connection
                keep_alive = False
            reusable = keep_alive
            return status, kept, content
        except asyncio.IncompleteReadError:
            raise UpstreamError("answer cut off in its body") from None
        except (BrokenPipeError, ConnectionResetError) as exc:
            if conn.aborted:
                raise UpstreamError(_ABORTED) from None
            if not started:
                raise _Retryable(str(exc)) from None
            raise
        except _Retryable:
            if conn.aborted:
                raise UpstreamError(_ABORTED) from None
            raise
        finally:
            busy.discard(conn)
            if conn.aborted:
                reusable = False
            if reusable:
                conn.idle_since = time.monotonic()
                idle = self._idle.setdefault((host, port), deque())
                if len(idle) < self.max_idle:
                    idle.append(conn)
                else:
                    conn.close()
            else:
                conn.close()


class _Retryable(Exception):
    """Nothing of the answer arrived on a reused connection."""


def _parse_head(
    head: bytes, keep: Collection[str] = ()
) -> tuple[int, int | None, bool, bool, list[tuple[str, str]]]:
    """Status, Content-Length, chunked, keep-alive, and the headers named in ``keep``."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise UpstreamError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    status = int(parts[1])
    keep_alive = parts[0] == "HTTP/1.1"
    length: int | None = None
    chunked = False
    kept: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            continue
        name = name.strip().lower()
        value = value.strip()
        if name in keep:
            kept.append((name, value))
        if name == "content-length":
            if not value.isdigit():
                raise UpstreamError(f"bad Content-Length: {value[:40]!r}")
            length = int(value)
        elif name == "transfer-encoding":
            chunked = value.lower().endswith("chunked")
        elif name == "connection":
            tokens = {t.strip().lower() for t in value.split(",")}
            if "close" in tokens:
                keep_alive = False
            elif "keep-alive" in tokens:
                keep_alive = True
    if status in (204, 304) or 100 <= status < 200:
        length = 0
    return status, length, chunked, keep_alive, kept


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size_text = size_line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise UpstreamError(f"bad chunk size: {size_text[:20]!r}") from None
        if size == 0:
            # Trailers, if any, end with an empty line.
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        if await reader.readexactly(2) != b"\r\n":
            raise UpstreamError("chunk not followed by CRLF")
