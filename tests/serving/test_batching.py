"""Dynamic batching: grouping, order, no waiting when idle, failures kept to their request."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from ai_platform.serving.batching import Batcher
from ai_platform.serving.predictor import Predictor
from tests.lakekit.mnist_fixture import mnist_arrays


class RecordingForward:
    """A forward pass that takes ``seconds`` and answers each image's first pixel."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self.sizes: list[int] = []
        self.threads: set[str] = set()

    def __call__(self, images: Sequence[np.ndarray]) -> list[dict[str, Any]]:
        self.sizes.append(len(images))
        self.threads.add(threading.current_thread().name)
        if any(int(image[0, 0]) == 255 for image in images):
            raise ValueError("poisoned image")
        time.sleep(self.seconds)
        return [{"pixel": int(image[0, 0])} for image in images]


def image(value: int) -> np.ndarray:
    return np.full((28, 28), value, np.uint8)


def test_concurrent_requests_share_passes_and_keep_their_order() -> None:
    forward = RecordingForward(seconds=0.05)
    batcher = Batcher(forward)

    async def main() -> list[list[dict[str, Any]]]:
        requests = [[image(i), image(i + 100)] for i in range(12)]
        first = asyncio.ensure_future(batcher.predict(requests[0]))
        await asyncio.sleep(0.01)  # its pass is running: the others arrive meanwhile
        rest = await asyncio.gather(*(batcher.predict(r) for r in requests[1:]))
        return [await first, *rest]

    results = asyncio.run(main())
    assert results == [[{"pixel": i}, {"pixel": i + 100}] for i in range(12)]
    # The first request ran alone at once; the other 11 arrived during it and share one pass.
    assert forward.sizes == [2, 22]
    assert (batcher.requests, batcher.passes) == (12, 2)
    assert forward.threads == {"forward_0"}  # off the event loop
    batcher.close()


def test_a_lone_request_does_not_wait_for_company() -> None:
    """No batching window: a request that finds the model idle forms its pass within a few turns
    of the event loop, and one arriving during that pass runs in the next."""
    forward = RecordingForward()
    entered = threading.Event()
    release = threading.Event()

    def gated(images: Sequence[np.ndarray]) -> list[dict[str, Any]]:
        entered.set()
        assert release.wait(30)
        return forward(images)

    batcher = Batcher(gated)

    async def main() -> None:
        first = asyncio.ensure_future(batcher.predict([image(1)]))
        for _ in range(3):  # a few turns of the loop, no clock time: no timer can have fired
            await asyncio.sleep(0)
        assert batcher.passes == 1  # the lone request is already in a pass of its own
        assert await asyncio.to_thread(entered.wait, 30)
        second = asyncio.ensure_future(batcher.predict([image(2)]))
        await asyncio.sleep(0)
        release.set()
        assert await first == [{"pixel": 1}] and await second == [{"pixel": 2}]

    asyncio.run(main())
    assert forward.sizes == [1, 1]
    batcher.close()


def test_passes_are_capped_at_max_images_but_a_large_request_still_runs() -> None:
    forward = RecordingForward(seconds=0.02)
    batcher = Batcher(forward, max_images=4)

    async def main() -> None:
        sizes = [1, 3, 2, 2, 6, 1]
        results = await asyncio.gather(*(batcher.predict([image(n)] * n) for n in sizes))
        assert [len(r) for r in results] == sizes

    asyncio.run(main())
    # Whole requests, in arrival order, up to 4 images a pass; the 6-image request alone.
    assert forward.sizes == [4, 4, 6, 1]
    batcher.close()


def test_a_failing_request_does_not_fail_the_others_in_its_pass() -> None:
    forward = RecordingForward(seconds=0.02)
    batcher = Batcher(forward)

    async def main() -> list[object]:
        requests = [[image(1)], [image(2)], [image(255)], [image(3)]]
        return await asyncio.gather(*(batcher.predict(r) for r in requests), return_exceptions=True)

    first, second, poisoned, fourth = asyncio.run(main())
    assert first == [{"pixel": 1}] and second == [{"pixel": 2}] and fourth == [{"pixel": 3}]
    assert isinstance(poisoned, ValueError)
    batcher.close()


@pytest.fixture(scope="module")
def predictor(model_path: str) -> Predictor:
    return Predictor(model_path)


def test_batched_answers_equal_one_at_a_time(predictor: Predictor) -> None:
    digits, _ = mnist_arrays("test", 16)
    alone = [predictor.predict([d])[0] for d in digits]
    batcher = Batcher(predictor.predict)

    async def main() -> list[list[dict[str, Any]]]:
        return await asyncio.gather(*(batcher.predict([d]) for d in digits))

    together = [r[0] for r in asyncio.run(main())]
    assert batcher.passes < len(digits)
    for a, b in zip(alone, together, strict=True):
        assert a["prediction"] == b["prediction"]
        np.testing.assert_allclose(a["probabilities"], b["probabilities"], atol=1e-5)
    batcher.close()


def test_quick_passes_run_on_the_event_loop_and_slow_ones_on_the_thread() -> None:
    quick = RecordingForward(seconds=0.0)
    slow = RecordingForward(seconds=0.01)
    never = RecordingForward(seconds=0.0)
    batchers = [Batcher(quick), Batcher(slow), Batcher(never, inline_seconds=0)]

    async def main() -> list[list[Any]]:
        answers = []
        for batcher in batchers:
            for i in range(3):  # one at a time: each its own pass
                answers.append(await batcher.predict([image(i)]))
        return answers

    answers = asyncio.run(main())
    assert answers == [[{"pixel": i}] for i in range(3)] * 3
    # The first pass runs on the thread (nothing measured yet); once a pass is known to be
    # quick, the next ones skip the two thread wake-ups.
    assert quick.threads == {"forward_0", "MainThread"}
    assert slow.threads == never.threads == {"forward_0"}
    for batcher in batchers:
        batcher.close()
