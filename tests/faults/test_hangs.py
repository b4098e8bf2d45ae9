"""Hangs, injected: a SIGSTOPped model server, a SIGSTOPped Data Platform, Ctrl-C of the
launcher with 40 log streams open on each service. Real processes and real signals; each case
asserts a bounded time and that no process outlives it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from serverkit.net import free_port
from tests.data_platform.test_errors import assert_error
from tests.serving.small_model import MODEL, raw_digits, train_mlp
from tests.support import FIXTURE_SCRIPTS, REPO, PlatformServers, pid_alive, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.slow]

SERVICES = "/api/v1/inference-services"
STREAMS = 40
GRACE = 5.0


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformServers]:
    root = tmp_path_factory.mktemp("hangs")
    train_mlp(root / "lake")
    servers = PlatformServers(
        root,
        AIP_STATE_DIR=f"file://{root}/state",
        AIP_DP_READ_TIMEOUT="2",
        AIP_DP_WRITE_TIMEOUT="3",
    ).start()
    yield servers
    servers.stop()


@pytest.fixture(scope="module")
def api(platform: PlatformServers) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=platform.url, timeout=60) as client:
        yield client


def timed(call):  # type: ignore[no-untyped-def]
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def start_sleeper(aip_url: str, name: str, script: str, tmp_path: Path) -> str:
    """An ingestion task that runs until stopped (its pid in ``tmp_path/task.pid``), once its
    process is up; its id."""
    pid_file = tmp_path / "task.pid"
    job = {
        "name": name,
        "input": "",
        "script": script,
        "params": {"pid_file": str(pid_file)},
        "output": name,
    }
    r = httpx.post(f"{aip_url}/api/v1/ingestion-tasks", json=job, timeout=30)
    assert r.status_code == 201, r.text
    wait_until(pid_file.exists, 30)
    return str(r.json()["id"])


def test_a_sigstopped_model_server_is_unhealthy_fails_fast_and_recovers(api):
    r = api.post(SERVICES, json={"name": "frozen", "model": MODEL})
    assert r.status_code == 201, r.text
    pid = r.json()["pid"]
    images = raw_digits(2)[0]
    assert api.post(f"{SERVICES}/frozen/predict", json={"images": images}).status_code == 200
    os.kill(pid, signal.SIGSTOP)
    try:
        # In flight when the server hung: ended when the probe finds it (about 2.5 s).
        r, took = timed(lambda: api.post(f"{SERVICES}/frozen/predict", json={"images": images}))
        assert_error(r, 503, "SERVICE_UNAVAILABLE")
        assert took < 5, took

        def unhealthy() -> dict | None:
            s = api.get(f"{SERVICES}/frozen").json()
            return s if s["status"] == "unhealthy" else None

        service = wait_until(unhealthy, timeout=5)
        assert "health probe" in service["error"]
        # Once found, every prediction fails at once, on both protocols, each in its shape.
        r, took = timed(lambda: api.post(f"{SERVICES}/frozen/predict", json={"images": images}))
        error = assert_error(r, 503, "SERVICE_UNAVAILABLE")
        assert "unhealthy" in error["message"] and took < 1, took
        r, took = timed(lambda: api.get(f"{SERVICES}/frozen/v2/models/frozen/ready"))
        assert r.status_code == 503 and "unhealthy" in r.json()["error"] and took < 1
        assert pid_alive(pid)  # hung, not dead: it is not failed
    finally:
        os.kill(pid, signal.SIGCONT)

    def recovered() -> bool:
        s = api.get(f"{SERVICES}/frozen").json()
        return s["status"] == "running" and s["error"] is None

    wait_until(recovered, timeout=5)
    assert api.post(f"{SERVICES}/frozen/predict", json={"images": images}).status_code == 200
    assert api.delete(f"{SERVICES}/frozen").status_code == 204
    wait_until(lambda: not pid_alive(pid))


def test_a_sigstopped_data_platform_gives_504_within_the_deadline_and_health_stays_up(
    platform, api
):
    wait_until(lambda: api.get("/health").json()["data_platform"] == "ok")
    job = {"name": "late", "input": "", "script": "fixtures/exit_ok.py", "output": "late"}
    dp = platform.dp.proc
    assert dp is not None
    dp.send_signal(signal.SIGSTOP)
    try:
        r, took = timed(lambda: api.get("/api/v1/datasets"))
        assert_error(r, 504, "UPSTREAM_TIMEOUT")
        assert 2 <= took < 3.5, took  # AIP_DP_READ_TIMEOUT=2
        r, took = timed(lambda: api.post("/api/v1/ingestion-tasks", json=job))
        assert_error(r, 504, "UPSTREAM_TIMEOUT")
        assert 3 <= took < 4.5, took  # AIP_DP_WRITE_TIMEOUT=3
        # /health answers at once, and says the Data Platform is slow.
        health, took = timed(lambda: api.get("/health", timeout=1).json())
        assert took < 0.5
        health = wait_until(
            lambda: (h := api.get("/health", timeout=1).json())["data_platform"] == "slow" and h
        )
        assert health["status"] == "degraded"
        # Routes that need no Data Platform answer as usual meanwhile.
        assert api.get(SERVICES, timeout=1).status_code == 200
    finally:
        dp.send_signal(signal.SIGCONT)
    wait_until(lambda: api.get("/health").json()["status"] == "ok")
    assert api.get("/api/v1/datasets").status_code == 200


def test_a_data_platform_that_is_gone_is_502_at_once(platform, api):
    platform.dp.kill()
    try:
        r, took = timed(lambda: api.get("/api/v1/datasets"))
        assert_error(r, 502, "UPSTREAM_UNAVAILABLE")
        assert took < 1, took
        wait_until(lambda: api.get("/health").json()["data_platform"] == "unreachable")
    finally:
        platform.dp.start()


def test_a_log_stream_is_freed_within_1_s_of_its_client_leaving(platform, tmp_path):
    from tests.ai_platform.test_followers import connections_to

    task_id = start_sleeper(platform.url, "followed", "fixtures/sleep_forever.py", tmp_path)
    dp_port = platform.dp.port

    async def follow_then_leave(count: int) -> tuple[int, float]:
        """Open ``count`` followers, then all hang up at once: the connections to the Data
        Platform once they were open, and when they left."""
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        timeout = httpx.Timeout(30, read=None)
        async with httpx.AsyncClient(base_url=platform.url, timeout=timeout, limits=limits) as api:
            url = f"/api/v1/ingestion-tasks/{task_id}/logs"
            streams, readers = [], []
            # Opened one after another: each open first checks the task through the AI
            # Platform's ordinary client, whose pool, opened 40 at once, would keep up to 32
            # idle keep-alive connections to the Data Platform for 5 s (as any pool does),
            # which a count of connections cannot tell from streams.
            for _ in range(count):
                request = api.build_request("GET", url, params={"follow": True})
                stream = await api.send(request, stream=True)
                streams.append(stream)
                # Kept: an iterator dropped mid-stream is finalised, and that closes its stream.
                readers.append(reader := stream.aiter_bytes())
                async for chunk in reader:
                    if b"sleeping" in chunk:
                        break
            opened = connections_to(dp_port)
            await asyncio.gather(*(stream.aclose() for stream in streams))  # hang up mid-stream
            return opened, time.monotonic()

    for count in (1, STREAMS):
        opened, left = asyncio.run(follow_then_leave(count))
        wait_until(lambda: connections_to(dp_port) <= opened - count, 10, 0.01)  # noqa: B023
        freed = time.monotonic() - left
        print(f"\n{count} follower(s) left at once: their upstream streams freed in {freed:.2f} s")
        assert freed <= 1.0, f"{count} streams freed in {freed:.2f} s"
    r = httpx.post(f"{platform.url}/api/v1/ingestion-tasks/{task_id}/cancel", timeout=30)
    assert r.status_code == 200, r.text


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children") as fh:
                    children = {int(p) for p in fh.read().split()}
            except FileNotFoundError:
                continue
            todo += children - found
            found |= children
    return found


def _launcher_env(root: Path) -> dict[str, str]:
    (root / "data").mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "DP_LAKE_ROOT": str(root / "lake"),
        "DP_SCRIPTS_ROOT": str(FIXTURE_SCRIPTS),
        "DP_DATA_ROOT": str(root / "data"),
        "DP_PORT": str(free_port()),
        "AIP_PORT": str(free_port()),
        "DP_CANCEL_GRACE_SECONDS": "1",
        "LAKESTACK_SHUTDOWN_GRACE_SECONDS": str(GRACE),
    }


async def _open_streams(urls: list[str], opened: threading.Event) -> None:
    """Open every follow stream, tell the test, then read until the servers go."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(timeout=httpx.Timeout(30, read=None), limits=limits) as http:
        ready = 0

        async def follow(url: str) -> None:
            nonlocal ready
            try:
                async with http.stream("GET", url, params={"follow": True}) as stream:
                    assert stream.status_code == 200
                    ready += 1
                    if ready == len(urls):
                        opened.set()
                    async for _ in stream.aiter_bytes():
                        pass
            except httpx.HTTPError:
                pass  # the server went away: what shutdown does

        await asyncio.gather(*(follow(u) for u in urls))


def test_ctrl_c_with_40_streams_open_on_each_service_stops_all_within_the_grace(tmp_path):
    env = _launcher_env(tmp_path)
    dp_url, aip_url = (f"http://127.0.0.1:{env[v]}" for v in ("DP_PORT", "AIP_PORT"))
    log = open(tmp_path / "launcher.log", "wb")  # noqa: SIM115 - the child owns it
    # Its own session, so that Ctrl-C can be sent as a terminal does: to the whole group.
    launcher = subprocess.Popen(
        [sys.executable, "-m", "lakestack.launcher"],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    log.close()
    everything: set[int] = set()
    streams: threading.Thread | None = None
    try:
        wait_until(lambda: httpx.get(f"{aip_url}/health", timeout=1).status_code == 200, 90)
        task_id = start_sleeper(aip_url, "endless", "sleep_forever.py", tmp_path)
        urls = [f"{aip_url}/api/v1/ingestion-tasks/{task_id}/logs"] * STREAMS
        urls += [f"{dp_url}/api/v1/tasks/{task_id}/logs"] * STREAMS
        opened = threading.Event()
        streams = threading.Thread(target=asyncio.run, args=(_open_streams(urls, opened),))
        streams.start()
        assert opened.wait(60), "the streams did not open"
        everything = _descendants(launcher.pid) | {launcher.pid}
        assert int((tmp_path / "task.pid").read_text()) in everything

        started = time.monotonic()
        os.killpg(launcher.pid, signal.SIGINT)  # Ctrl-C
        launcher.wait(GRACE + 10)
        wait_until(lambda: not any(pid_alive(p) for p in everything), GRACE + 10, 0.02)
        took = time.monotonic() - started
        print(f"\nCtrl-C with {2 * STREAMS} streams open: everything gone in {took:.2f} s")
        assert took <= GRACE + 1, took
        for url in (dp_url, aip_url):
            with pytest.raises(httpx.HTTPError):
                httpx.get(f"{url}/health", timeout=1)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()
        for pid in everything:  # should the fix regress, no orphan outlives the test
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        if streams is not None:
            streams.join(30)
