"""uvicorn's HTTP protocol with each response's writes sent together.

uvicorn writes a response's status line and headers, then its body, as two ``transport.write``
calls: two ``send`` syscalls, two TCP segments, and a client that may wake once for each. On
the platform's predict route a prediction pays that on both hops, and on two busy cores those
wake-ups are most of what the hop costs. Here the writes made in one step of the event loop
are joined and leave at the end of that step, in one ``send``; nothing waits longer than the
current step (a streamed response's chunks still go out as they are produced).
"""

from __future__ import annotations

import asyncio
from typing import Any

try:  # the fast parser when installed (uvicorn's own choice, "auto", prefers it too)
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Base
except ImportError:  # pragma: no cover - only without httptools
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Base  # type: ignore[assignment]


class CoalescingTransport:
    """A transport whose writes in one event-loop step leave in one ``write``."""

    __slots__ = ("_chunks", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._chunks: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not data:
            return
        if not self._chunks:
            self._loop.call_soon(self.flush)
        self._chunks.append(bytes(data))

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        chunks = self._chunks
        if not chunks:
            return
        self._chunks = []
        if not self._transport.is_closing():
            self._transport.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def close(self) -> None:
        self.flush()  # uvicorn closes right after the last write of a non-keep-alive answer
        self._transport.close()

    def abort(self) -> None:
        self._chunks = []
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        held = sum(len(c) for c in self._chunks)
        return self._transport.get_write_buffer_size() + held

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpProtocol(_Base):
    """uvicorn's protocol (httptools, else h11) on a ``CoalescingTransport``; pass it to
    ``uvicorn.run(..., http=CoalescingHttpProtocol)``."""

    def connection_made(self, transport: Any) -> None:
        # uvloop's transports quack like asyncio.Transport without subclassing it.
        coalescing = CoalescingTransport(transport, asyncio.get_running_loop())
        super().connection_made(coalescing)  # type: ignore[arg-type]
