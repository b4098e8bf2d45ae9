"""200 log followers through the AI Platform on a running task, while other calls answer.

Real processes: both services, a task that runs until cancelled. The followers are one asyncio
client here; the AI Platform relays each stream asynchronously (no thread per follower), so
its other routes, and the Data Platform's, answer as if the followers were not there.
"""

from __future__ import annotations

import asyncio
import signal
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import PlatformServers, wait_until

FOLLOWERS = 200
LEAVERS = 50  # followers that hang up early: the AI Platform must let go of their upstream
SAMPLES = 100
TCP_ESTABLISHED = "01"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformServers]:
    servers = PlatformServers(tmp_path_factory.mktemp("followers")).start()
    yield servers
    servers.stop()


def connections_to(port: int) -> int:
    """Established TCP connections whose remote end is ``port`` on this host (IPv4)."""
    count = 0
    with open("/proc/net/tcp") as fh:
        next(fh)
        for line in fh:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == port and fields[3] == TCP_ESTABLISHED:
                count += 1
    return count


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed_gets(client: httpx.AsyncClient, paths: list[str]) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {path: [] for path in paths}
    for path in paths:  # untimed: a new connection, and the first listing of the lake
        started = time.perf_counter()
        r = await client.get(path)
        assert r.status_code == 200, r.text
        print(f"\n{path}: first call {(time.perf_counter() - started) * 1000:.1f} ms")
    for _ in range(SAMPLES):
        for path in paths:
            started = time.perf_counter()
            r = await client.get(path)
            times[path].append((time.perf_counter() - started) * 1000)
            assert r.status_code == 200, r.text
    return times


@pytest.mark.slow
def test_200_followers_leave_every_other_call_fast_and_are_freed(
    platform: PlatformServers, tmp_path: Path
):
    dp_port = platform.dp.port
    pid_file = tmp_path / "task.pid"
    body = {
        "name": "followed",
        "input": "",
        "script": "fixtures/sleep_forever.py",
        "params": {"pid_file": str(pid_file)},
        "output": "followed",
    }

    async def scenario() -> None:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        timeout = httpx.Timeout(30, read=None)
        async with httpx.AsyncClient(base_url=platform.url, timeout=timeout, limits=limits) as api:
            r = await api.post("/api/v1/ingestion-tasks", json=body)
            assert r.status_code == 201, r.text
            task_id = r.json()["id"]
            await asyncio.to_thread(wait_until, pid_file.exists, 30)
            logs = f"/api/v1/ingestion-tasks/{task_id}/logs"
            baseline = connections_to(dp_port)

            opened = asyncio.Queue[int]()
            received: dict[int, bytes] = {}

            async def follow(i: int, leave: asyncio.Event | None) -> None:
                async with api.stream("GET", logs, params={"follow": True}) as stream:
                    assert stream.status_code == 200
                    received[i] = b""
                    opened.put_nowait(i)
                    async for chunk in stream.aiter_bytes():
                        received[i] += chunk
                        if leave is not None and b"sleeping" in received[i]:
                            await leave.wait()
                            return  # hangs up mid-stream

            leave = asyncio.Event()
            followers = [
                asyncio.create_task(follow(i, leave if i < LEAVERS else None))
                for i in range(FOLLOWERS)
            ]
            for _ in range(FOLLOWERS):
                await asyncio.wait_for(opened.get(), 60)
            await asyncio.to_thread(
                wait_until, lambda: all(b"sleeping" in v for v in received.values()), 60
            )
            # Each follower holds one connection from the AI Platform to the Data Platform.
            assert connections_to(dp_port) >= baseline + FOLLOWERS

            paths = ["/api/v1/datasets", f"/api/v1/ingestion-tasks/{task_id}"]
            async with httpx.AsyncClient(base_url=platform.url, timeout=30) as other:
                times = await timed_gets(other, paths)
                for path, ms in times.items():
                    print(
                        f"\n{path} with {FOLLOWERS} followers open: p50"
                        f" {statistics.median(ms):.1f} ms, p99 {percentile(ms, 0.99):.1f} ms"
                    )
                    assert percentile(ms, 0.99) < 100, f"{path}: {sorted(ms)[-5:]}"

                # Followers that hang up: the AI Platform closes their upstream streams within
                # 1 s. Counted from the connections open just before they leave: the 200 opens
                # left idle keep-alive connections in the AI Platform's ordinary pool too, which
                # it closes only on its next call (none comes meanwhile).
                opened = connections_to(dp_port)
                leave.set()
                await asyncio.gather(*followers[:LEAVERS])
                left = time.monotonic()
                await asyncio.to_thread(
                    wait_until, lambda: connections_to(dp_port) <= opened - LEAVERS, 10, 0.01
                )
                freed = time.monotonic() - left
                print(f"{LEAVERS} leavers' upstream streams freed in {freed:.2f} s")
                assert freed <= 1.0, f"{LEAVERS} streams freed in {freed:.2f} s"

                # The task ends: every remaining follower's stream ends with it.
                r = await other.post(f"/api/v1/ingestion-tasks/{task_id}/cancel")
                assert r.status_code == 200 and r.json()["status"] == "failed"
                started = time.monotonic()
                await asyncio.wait_for(asyncio.gather(*followers[LEAVERS:]), 30)
                print(f"all followers ended {time.monotonic() - started:.1f} s after the cancel")
            await asyncio.to_thread(wait_until, lambda: connections_to(dp_port) <= baseline + 2, 10)

    asyncio.run(scenario())


def test_a_stop_does_not_wait_for_open_followers(tmp_path: Path):
    servers = PlatformServers(tmp_path / "stop").start()
    try:
        pid_file = tmp_path / "stop.pid"
        body = {
            "name": "held",
            "input": "",
            "script": "fixtures/sleep_forever.py",
            "params": {"pid_file": str(pid_file)},
            "output": "held",
        }
        with httpx.Client(base_url=servers.url, timeout=httpx.Timeout(30, read=None)) as api:
            task = api.post("/api/v1/ingestion-tasks", json=body).json()
            wait_until(pid_file.exists, 30)
            path = f"/api/v1/ingestion-tasks/{task['id']}/logs"
            with api.stream("GET", path, params={"follow": True}) as stream:
                assert b"sleeping" in next(stream.iter_bytes())
                started = time.monotonic()
                servers.aip.stop()  # SIGTERM, the follower still open
                took = time.monotonic() - started
        # uvicorn re-raises the signal once it has shut down gracefully: -SIGTERM, not 0.
        assert servers.aip.proc is not None and servers.aip.proc.returncode == -signal.SIGTERM
        print(f"\nstopped in {took:.1f} s with a follower open")
        assert took < 15, f"the AI Platform took {took:.1f} s to stop"
    finally:
        servers.stop()
