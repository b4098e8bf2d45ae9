"""Following a task's log: what it wrote so far, then its new output, until it has ended.

Async end to end: a follower holds no thread, only its share of the event loop, so hundreds
of open followers leave every other request its answer. The log comes from the executor's
``LogSource`` (a local file, or the Ray log client); how the task stands, from the caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from data_platform.execution import LogSource

POLL_SECONDS = 0.2
CHUNK_BYTES = 1024 * 1024  # bounds one read, so each stays short


async def follow(
    source: LogSource, ended: Callable[[], bool], tail: int | None = None
) -> AsyncIterator[bytes]:
    """The log (or its last ``tail`` lines), then new output as it is written, until
    ``ended()`` and everything written before it was sent."""
    offset = 0
    if tail is not None:
        data, offset = await source.tail(tail)
        if data:
            yield data
    while True:
        finished = ended()  # before the read: what it wrote up to its end is still sent
        data, offset = await source.read(offset, CHUNK_BYTES)
        if data:
            yield data
        elif finished:
            return
        else:
            await asyncio.sleep(POLL_SECONDS)
