"""Retries through the real Data Platform: a failed attempt's output is rolled back before
the next one runs; the record lists the attempts; a cancel during the backoff ends it."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import lance
import pytest

from tests.data_platform.test_errors import assert_error
from tests.support import Server, dp_env, pid_alive, wait_until

FLAKY = '''
import os
import time
from pathlib import Path

import lance
import pyarrow as pa


def run(input_path, output_path, params):
    """Appends rows tagged with its attempt, then fails until attempt fail_times + 1; with a
    pid_file, the first attempt writes its pid there and hangs instead (the restart case)."""
    counter = Path(params["counter"])
    n = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(n))
    lance.write_dataset(pa.table({"attempt": [n] * 3}), output_path, mode="append")
    if n == 1 and params.get("pid_file"):
        Path(params["pid_file"]).write_text(str(os.getpid()))
        time.sleep(600)
    if n <= params.get("fail_times", 0):
        raise RuntimeError(f"attempt {n} fails")
    return {"attempt": n}
'''


# One Data Platform for the module (a server start costs seconds on 2 busy cores); each test
# writes its own output and counts its attempts in its own file.


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("retries")
    (root / "data").mkdir()
    scripts = root / "scripts"
    scripts.mkdir()
    (scripts / "flaky.py").write_text(textwrap.dedent(FLAKY))
    return root


@pytest.fixture(scope="module")
def dp(root: Path) -> Iterator[httpx.Client]:
    server = Server("data_platform", dp_env(root, root / "scripts"), "DP_PORT", root / "dp.log")
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            yield client
    finally:
        server.stop()


@pytest.fixture
def out(request: pytest.FixtureRequest) -> str:
    """This test's own output name (its attempts counter is ``data/NAME.count``)."""
    return request.node.name.removeprefix("test_")[:40].rstrip("_")


def submit(dp: httpx.Client, root: Path, out: str, fail_times: int, **body) -> dict:
    params = {"counter": str(counter(root, out)), "fail_times": fail_times}
    r = dp.post(
        "/api/v1/tasks",
        json={"script": "flaky.py", "output": f"datasets/{out}", "params": params, **body},
    )
    assert r.status_code == 201, r.text
    return r.json()


def wait_done(dp: httpx.Client, task_id: str, timeout: float = 60) -> dict:
    def done() -> dict | None:
        task = dp.get(f"/api/v1/tasks/{task_id}").json()
        return task if task["status"] in ("completed", "failed") else None

    return wait_until(done, timeout, interval=0.1)


def counter(root: Path, out: str) -> Path:
    return root / "data" / f"{out}.count"


def lake_path(root: Path, out: str) -> Path:
    return root / "lake" / "datasets" / f"{out}.lance"


def test_failed_attempts_are_rolled_back_then_retried_until_one_completes(dp, root, out):
    task = submit(dp, root, out, 2, retries=3, retry_backoff_seconds=0.2)
    assert task["retries"] == 3
    done = wait_done(dp, task["id"])
    assert done["status"] == "completed", done["error"]
    assert done["result"] == {"attempt": 3}
    assert [a["attempt"] for a in done["attempts"]] == [1, 2]
    assert all(a["error"]["reason"] == "exception" for a in done["attempts"])
    assert "attempt 2 fails" in done["attempts"][1]["error"]["message"]
    # Only the completed attempt's rows: the failed ones were rolled back before each retry.
    written = lance.dataset(str(lake_path(root, out)))
    assert written.to_table()["attempt"].to_pylist() == [3, 3, 3]
    retry_points = [p for p in done["history"] if "retry_in_seconds" in p]
    assert [p["retry_in_seconds"] for p in retry_points] == [0.2, 0.4]  # doubled each time


def test_retries_spent_fails_with_the_last_error_and_every_attempt(dp, root, out):
    done = wait_done(dp, submit(dp, root, out, 10, retries=1, retry_backoff_seconds=0)["id"])
    assert done["status"] == "failed"
    assert done["error"]["reason"] == "exception" and "attempt 2 fails" in done["error"]["message"]
    assert [a["attempt"] for a in done["attempts"]] == [1]
    assert not lake_path(root, out).exists()


def test_a_cancel_during_the_backoff_ends_the_task_cancelled(dp, root, out):
    task = submit(dp, root, out, 10, retries=5, retry_backoff_seconds=60)

    def backing_off() -> bool:
        points = dp.get(f"/api/v1/tasks/{task['id']}").json()["history"]
        return any("retry_in_seconds" in p for p in points)

    wait_until(backing_off, 30, interval=0.1)
    r = dp.post(f"/api/v1/tasks/{task['id']}/cancel")
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["status"] == "failed" and done["error"]["reason"] == "cancelled"
    assert [a["attempt"] for a in done["attempts"]] == [1]
    assert counter(root, out).read_text() == "1"  # no second attempt ran


def test_without_retries_a_failure_is_final(dp, root, out):
    done = wait_done(dp, submit(dp, root, out, 1)["id"])
    assert done["status"] == "failed" and done["attempts"] == []


def test_bad_retry_settings_are_refused(dp):
    for body in ({"retries": -1}, {"retries": 11}, {"retry_backoff_seconds": -1}):
        r = dp.post("/api/v1/tasks", json={"script": "flaky.py", "output": "datasets/o", **body})
        assert_error(r, 400, "INVALID_REQUEST")


def restart_victim(dp_root: Path, retries: int, how: str) -> tuple[dict, int]:
    """A task whose Data Platform stops (``how``: ``kill`` with SIGKILL, ``stop`` with SIGTERM)
    in its first attempt, after it wrote rows; then the Data Platform restarted on the same
    lake: the task once it ended, and the first attempt's pid."""
    scripts = dp_root / "scripts"
    scripts.mkdir()
    (scripts / "flaky.py").write_text(textwrap.dedent(FLAKY))
    env = dp_env(dp_root, scripts)
    pid_file = dp_root / "pid"
    params = {"counter": str(dp_root / "data" / "count"), "pid_file": str(pid_file)}
    server = Server("data_platform", env, "DP_PORT", dp_root / "dp.log").start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as dp:
            body = {"script": "flaky.py", "output": "datasets/out", "params": params}
            r = dp.post("/api/v1/tasks", json={**body, "retries": retries})
            assert r.status_code == 201, r.text
            pid = int(wait_until(lambda: pid_file.exists() and pid_file.read_text(), 60))
    finally:
        getattr(server, how)()
    server = Server("data_platform", env, "DP_PORT", dp_root / "dp.log").start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as dp:
            return wait_done(dp, r.json()["id"]), pid
    finally:
        server.stop()


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_a_retrying_task_interrupted_by_a_restart_runs_again(dp_root, how):
    done, pid = restart_victim(dp_root, 2, how)
    assert done["status"] == "completed", done["error"]
    assert done["result"] == {"attempt": 2}
    (attempt,) = done["attempts"]
    assert attempt["attempt"] == 1 and attempt["error"]["reason"] == "interrupted"
    assert "interrupted by restart" in attempt["error"]["message"]
    assert not pid_alive(pid)
    # The interrupted attempt's rows were rolled back before the task ran again.
    out = lance.dataset(str(dp_root / "lake" / "datasets" / "out.lance"))
    assert out.to_table()["attempt"].to_pylist() == [2, 2, 2]


def test_without_retries_left_a_restart_ends_the_task_interrupted(dp_root):
    done, _ = restart_victim(dp_root, 0, "stop")
    assert done["status"] == "failed" and done["error"]["reason"] == "interrupted"
    assert done["attempts"] == []
    assert not (dp_root / "lake" / "datasets" / "out.lance").exists()
