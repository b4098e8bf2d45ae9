"""Log followers are async: 200 of them on a running task do not slow the API down."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import httpx

from tests.data_platform.test_tasks import submit, wait_done
from tests.support import wait_until

FOLLOWERS = 200
ROUNDS = 300  # p99 then tolerates a few scheduling hiccups of a shared machine


def latencies(base_url: str, paths: list[str]) -> dict[str, list[float]]:
    """Seconds per request, ``ROUNDS`` sequential requests to each path."""
    timings: dict[str, list[float]] = {path: [] for path in paths}
    with httpx.Client(base_url=base_url, timeout=10) as client:
        for path in paths:  # warm: the first listing opens the lake's datasets cold
            assert client.get(path).status_code == 200
        for _ in range(ROUNDS):
            for path in paths:
                started = time.perf_counter()
                assert client.get(path).status_code == 200
                timings[path].append(time.perf_counter() - started)
    return timings


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def test_200_followers_while_datasets_and_task_keep_answering(data_platform, dp, dp_root: Path):
    assert wait_done(dp, submit(dp, "write_rows.py")["id"])["status"] == "completed"
    pid_file = dp_root / "pid"
    task = submit(dp, "sleep_forever.py", output="datasets/s", params={"pid_file": str(pid_file)})
    wait_until(lambda: pid_file.exists())
    task_path = f"/api/v1/tasks/{task['id']}"

    async def scenario() -> tuple[dict[str, list[float]], list[bytes]]:
        limits = httpx.Limits(max_connections=FOLLOWERS + 10, max_keepalive_connections=0)
        opened = 0
        all_open = asyncio.Event()

        async with httpx.AsyncClient(
            base_url=data_platform.url, timeout=60, limits=limits
        ) as client:

            async def follow() -> bytes:
                nonlocal opened
                received = b""
                counted = False
                async with client.stream("GET", f"{task_path}/logs", params={"follow": True}) as r:
                    assert r.status_code == 200
                    async for chunk in r.aiter_bytes():
                        received += chunk
                        if not counted and b"sleeping" in received:
                            counted, opened = True, opened + 1
                            if opened == FOLLOWERS:
                                all_open.set()
                return received

            followers = [asyncio.create_task(follow()) for _ in range(FOLLOWERS)]
            await asyncio.wait_for(all_open.wait(), timeout=60)
            timings = await asyncio.to_thread(
                latencies, data_platform.url, ["/api/v1/datasets", task_path]
            )
            assert all(not f.done() for f in followers)  # still open while measured
            cancelled = await client.post(f"{task_path}/cancel")
            assert cancelled.json()["status"] == "failed"
            # Every follower ends by itself once the task has ended.
            received = await asyncio.wait_for(asyncio.gather(*followers), timeout=30)
        return timings, received

    timings, received = asyncio.run(scenario())
    assert len(received) == FOLLOWERS and all(b"sleeping" in r for r in received)
    for path, values in timings.items():
        p50, worst = statistics.median(values) * 1000, p99(values) * 1000
        print(f"{FOLLOWERS} followers open: GET {path}: p50 {p50:.1f} ms, p99 {worst:.1f} ms")
        assert worst < 100, f"GET {path} p99 {worst:.1f} ms with {FOLLOWERS} followers"
