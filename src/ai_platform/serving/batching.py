"""Dynamic batching: predictions that arrive together share one forward pass.

What is batched are rows (an image, or one batch row of every input of a model); every route
of the model server feeds the same batcher, so an OIP request and a ``/predict`` request that
arrive together share a pass.

A forward pass over 8 images costs little more than over one, so under concurrent load the
model server answers several requests per pass, as Ray Serve's ``@serve.batch`` and KServe's
batcher do. Unlike those, nothing waits for a batch to fill: a request that finds the model
idle runs at once (no added latency for a lone client), and the requests that arrive while a
pass runs form the next one. Passes run one at a time on a dedicated thread, so the event loop
keeps parsing and answering HTTP on the other core.

Except quick ones: handing a pass to the thread and its answer back costs two thread wake-ups
(about 0.3 ms here when idle, more on a busy machine), more than the whole pass of a small
model (an 8-feature MLP: about 0.1 ms) and a third of the MNIST CNN's (about 0.8 ms). A lone
client pays it on every request. So a lone request (nothing else queued) whose pass is
expected, from the seconds per row passes have taken so far, to take under ``inline_seconds``
(5 ms: where the hand-over is still over 5 % of the pass) runs on the event loop instead; the
first pass, every pass expected to take longer, and passes under concurrent load (where the
thread lets a pass overlap with parsing the next requests) run on the thread. An inline pass
holds the loop for at most about that long, and only when no other request was waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

Forward = Callable[[Sequence[Any]], Sequence[Any]]
_Entry = tuple[Sequence[Any], "asyncio.Future[Sequence[Any]]"]


class Batcher:
    """Queue requests' rows and run them through ``forward`` in as few passes as possible.

    Args:
        forward: answers a batch of rows, one result per row, in order (a sequence that
            slices). A request alone in its pass is handed over as the sequence it gave;
            requests sharing a pass, as one list of all their rows.
        max_images: the most images one pass takes from the queue; a single request larger
            than this still runs, alone.
        inline_seconds: passes expected to take less run on the event loop (0: never).
    """

    def __init__(
        self, forward: Forward, max_images: int = 256, inline_seconds: float = 0.005
    ) -> None:
        self.forward = forward
        self.max_images = max_images
        self.inline_seconds = inline_seconds
        self._row_seconds: float | None = None  # a running mean of seconds per row of a pass
        self._queue: deque[_Entry] = deque()
        self._drainer: asyncio.Task[None] | None = None  # runs while the queue has entries
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="forward")
        self.passes = 0  # forward passes run; with ``requests``, how much batching happened
        self.requests = 0
        self.images = 0  # rows: images for the image codec
        self.on_pass: Callable[[int], None] | None = None  # told each pass's row count

    @property
    def queued(self) -> int:
        """Rows waiting for a pass (not counting the pass running now)."""
        return sum(len(rows) for rows, _ in self._queue)

    async def predict(self, images: Sequence[Any]) -> Sequence[Any]:
        """Results for ``images`` (rows), computed in a pass shared with concurrent requests."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Sequence[Any]] = loop.create_future()
        self._queue.append((images, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            batch: list[_Entry] = []
            size = 0
            while self._queue and (not batch or size + len(self._queue[0][0]) <= self.max_images):
                entry = self._queue.popleft()
                batch.append(entry)
                size += len(entry[0])
            self.passes += 1
            self.requests += len(batch)
            self.images += size
            if self.on_pass is not None:
                self.on_pass(size)
            await self._run(loop, batch)

    async def _run(self, loop: asyncio.AbstractEventLoop, batch: list[_Entry]) -> None:
        if len(batch) == 1:
            # As the request gave them: a block of arrays runs without being split into rows.
            images = batch[0][0]
        else:
            images = [image for entry_images, _ in batch for image in entry_images]
        # Only a lone request: under load the thread lets passes overlap with parsing.
        inline = (
            len(batch) == 1
            and not self._queue
            and self._row_seconds is not None
            and self._row_seconds * len(images) < self.inline_seconds
        )
        try:
            if inline:
                results = self._timed(images)
            else:
                results = await loop.run_in_executor(self._thread, self._timed, images)
        except Exception as exc:
            if len(batch) > 1:  # one request's failure must not fail the others
                for entry in batch:
                    await self._run(loop, [entry])
                return
            _, future = batch[0]
            if not future.done():
                future.set_exception(exc)
            return
        start = 0
        for entry_images, future in batch:
            if not future.done():  # the client may have gone (cancelled)
                future.set_result(results[start : start + len(entry_images)])
            start += len(entry_images)
        if inline:
            await asyncio.sleep(0)  # let the loop read the requests that form the next pass

    def _timed(self, images: Sequence[Any]) -> Sequence[Any]:
        started = time.perf_counter()
        results = self.forward(images)
        per_row = (time.perf_counter() - started) / max(1, len(images))
        last = self._row_seconds
        self._row_seconds = per_row if last is None else 0.8 * last + 0.2 * per_row
        return results

    def close(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)
