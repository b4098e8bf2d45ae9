"""Predict keeps answering while the service records are being written and compacted.

The serving manager runs in this process, over a real Data Platform process (the model is in
its lake) and a real model server process. A thread drives hundreds of record commits and
compactions through the manager's own writer while the event loop predicts through the
manager; no prediction may fail or wait for a commit.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import lance
import pytest

from ai_platform.dp_client import DataPlatformClient
from ai_platform.serving.backend import LocalProcessBackend
from ai_platform.serving.manager import ServingManager
from lakeapi.schemas import Service, ServiceCreate
from serverkit.recordstore import RecordTable
from tests.serving.small_model import MODEL, raw_digits, train_mlp
from tests.support import Server, dp_env

COMMITS = 300
COMPACT_EVERY = 10
CLIENTS = 4


@pytest.fixture(scope="module")
def data_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("compaction")
    train_mlp(root / "lake")
    server = Server("data_platform", dp_env(root), "DP_PORT", root / "dp.log").start()
    yield server
    server.stop()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@pytest.mark.slow
def test_predict_keeps_answering_while_service_records_are_compacted(
    data_platform: Server, tmp_path: Path
):
    table_uri = f"file://{tmp_path}/state/services.lance"
    images, _ = raw_digits(4)
    body = json.dumps({"images": images}).encode()

    async def scenario() -> tuple[list[float], list[str], int, float]:
        client = DataPlatformClient(data_platform.url, timeout=30)
        manager = ServingManager(
            RecordTable(table_uri),
            tmp_path / "logs",
            client,
            LocalProcessBackend("127.0.0.1"),
            start_timeout=60,
            upstream_timeout=30,
        )
        await manager.start()
        try:
            service = await manager.create(ServiceCreate(name="steady", model=MODEL))
            done = threading.Event()
            driven = {"commits": 0, "seconds": 0.0}

            def drive_records() -> None:
                # Each commit awaited before the next: one Lance version each, so the table
                # really has COMMITS versions to fold while predict runs.
                started = time.monotonic()
                try:
                    for i in range(COMMITS):
                        filler = Service.model_validate(
                            {**service.model_dump(), "id": f"serve-filler{i % 50}", "name": f"f{i}"}
                        )
                        manager.writer.put(filler.model_dump(mode="json")).result(timeout=60)
                        driven["commits"] += 1
                        if i % COMPACT_EVERY == COMPACT_EVERY - 1:
                            manager.writer.request_compaction()
                    manager.writer.flush(60)
                finally:
                    driven["seconds"] = time.monotonic() - started
                    done.set()

            latencies: list[float] = []
            errors: list[str] = []

            async def predict_until_done() -> None:
                while not done.is_set():
                    started = time.perf_counter()
                    try:
                        status, content = await manager.predict("steady", body)
                    except Exception as exc:  # counted, not raised: the test reports them all
                        errors.append(repr(exc))
                        continue
                    latencies.append(time.perf_counter() - started)
                    if status != 200 or len(json.loads(content)["predictions"]) != len(images):
                        errors.append(f"{status}: {content[:200]!r}")

            driver = threading.Thread(target=drive_records, name="drive-records")
            driver.start()
            await asyncio.gather(*(predict_until_done() for _ in range(CLIENTS)))
            await asyncio.to_thread(driver.join, 120)
            assert manager.get("steady").status == "running"
            return latencies, errors, driven["commits"], driven["seconds"]
        finally:
            await manager.aclose()
            await client.aclose()

    latencies, errors, commits, seconds = asyncio.run(scenario())
    versions = len(lance.dataset(table_uri).versions())
    ms = [x * 1000 for x in latencies]
    print(
        f"\n{commits} commits, {commits // COMPACT_EVERY} compactions asked, in {seconds:.1f} s;"
        f" {len(ms)} predictions by {CLIENTS} clients meanwhile: p50 {statistics.median(ms):.1f}"
        f" ms, p99 {percentile(ms, 0.99):.1f} ms, max {max(ms):.1f} ms; {len(errors)} errors;"
        f" {versions} table versions left"
    )
    assert errors == []
    assert commits == COMMITS and len(ms) >= 50
    assert versions < COMMITS // 10  # compaction did run (and dropped the old versions)
