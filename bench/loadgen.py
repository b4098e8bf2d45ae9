"""A closed-loop HTTP load generator: N concurrent workers, a fixed number of POSTs.

Uses ``aiohttp`` (an established async client, in the ``dev`` and ``ray`` extras that ``make
setup`` installs) and falls back to ``httpx.AsyncClient`` (a core dependency). Each of
``concurrency`` workers sends its next request as soon as the previous answer is read, over
one keep-alive connection each; latency is measured per request from send to the last byte
of the answer. A warm-up (not counted) opens the connections and warms the server first.
Requests cycle through a list of pre-encoded bodies so that no JSON encoding is measured.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from typing import Any

from bench.stats import percentile

try:
    import aiohttp
except ImportError:  # pragma: no cover - only without the ray extra
    aiohttp = None  # type: ignore[assignment]

CLIENT = f"aiohttp {aiohttp.__version__}" if aiohttp else "httpx.AsyncClient"
HEADERS = {"content-type": "application/json"}


@dataclass
class LoadResult:
    requests: int
    concurrency: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int

    def json(self) -> dict[str, Any]:
        return asdict(self)


async def _aiohttp_load(
    url: str, bodies: list[bytes], concurrency: int, total: int, warmup: int, limit: float
) -> tuple[list[float], int, float]:
    assert aiohttp is not None
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    client_timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:

        async def send(i: int) -> tuple[float, bool]:
            started = time.perf_counter()
            async with session.post(url, data=bodies[i % len(bodies)], headers=HEADERS) as r:
                await r.read()
                return time.perf_counter() - started, r.status == 200

        return await _drive(send, concurrency, total, warmup, limit)


async def _httpx_load(
    url: str, bodies: list[bytes], concurrency: int, total: int, warmup: int, limit: float
) -> tuple[list[float], int, float]:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def send(i: int) -> tuple[float, bool]:
            started = time.perf_counter()
            r = await client.post(url, content=bodies[i % len(bodies)], headers=HEADERS)
            return time.perf_counter() - started, r.status_code == 200

        return await _drive(send, concurrency, total, warmup, limit)


async def _drive(
    send: Any, concurrency: int, total: int, warmup: int, max_seconds: float
) -> tuple[list[float], int, float]:
    """Warm up, then run ``total`` requests on ``concurrency`` workers; a shared counter
    hands out request numbers, so the count is exact whatever the workers' speeds. No new
    request starts after ``max_seconds``: a slow target is measured on fewer requests."""

    async def phase(count: int, latencies: list[float] | None) -> int:
        next_i, errors = 0, 0
        deadline = time.perf_counter() + max_seconds

        async def worker() -> None:
            nonlocal next_i, errors
            while next_i < count and time.perf_counter() < deadline:
                i = next_i
                next_i += 1
                try:
                    latency, ok = await send(i)
                except Exception:  # a refused or dropped request counts as an error
                    ok, latency = False, 0.0
                if not ok:
                    errors += 1
                elif latencies is not None:
                    latencies.append(latency)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return errors

    await phase(warmup, None)
    latencies: list[float] = []
    started = time.perf_counter()
    errors = await phase(total, latencies)
    return latencies, errors, time.perf_counter() - started


def run_load(
    url: str,
    bodies: list[bytes],
    concurrency: int,
    total: int,
    warmup: int | None = None,
    max_seconds: float = 5.0,
) -> LoadResult:
    """POST ``total`` bodies to ``url`` with ``concurrency`` requests in flight, stopping
    early after ``max_seconds`` (the warm-up has the same limit)."""
    warmup = max(2 * concurrency, 20) if warmup is None else warmup
    driver = _aiohttp_load if aiohttp is not None else _httpx_load
    latencies, errors, seconds = asyncio.run(
        driver(url, bodies, concurrency, total, warmup, max_seconds)
    )
    return LoadResult(
        requests=len(latencies) + errors,
        concurrency=concurrency,
        seconds=seconds,
        rps=len(latencies) / seconds if seconds > 0 else 0.0,
        p50_ms=percentile(latencies, 50) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
        errors=errors,
    )
