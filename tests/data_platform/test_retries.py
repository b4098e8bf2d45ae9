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
from tests.support import Server, dp_env, wait_until

FLAKY = '''
from pathlib import Path

import lance
import pyarrow as pa


def run(input_path, output_path, params):
    """Appends rows tagged with its attempt, then fails until attempt fail_times + 1."""
    counter = Path(params["counter"])
    n = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(n))
    lance.write_dataset(pa.table({"attempt": [n] * 3}), output_path, mode="append")
    if n <= params["fail_times"]:
        raise RuntimeError(f"attempt {n} fails")
    return {"attempt": n}
'''


@pytest.fixture
def scripts(tmp_path: Path) -> Path:
    root = tmp_path / "scripts"
    root.mkdir()
    (root / "flaky.py").write_text(textwrap.dedent(FLAKY))
    return root


@pytest.fixture
def dp(dp_root: Path, scripts: Path) -> Iterator[httpx.Client]:
    server = Server("data_platform", dp_env(dp_root, scripts), "DP_PORT", dp_root / "dp.log")
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            yield client
    finally:
        server.stop()


def submit(dp: httpx.Client, dp_root: Path, fail_times: int, **body) -> dict:
    params = {"counter": str(dp_root / "data" / "counter"), "fail_times": fail_times}
    r = dp.post(
        "/api/v1/tasks",
        json={"script": "flaky.py", "output": "datasets/out", "params": params, **body},
    )
    assert r.status_code == 201, r.text
    return r.json()


def wait_done(dp: httpx.Client, task_id: str, timeout: float = 60) -> dict:
    def done() -> dict | None:
        task = dp.get(f"/api/v1/tasks/{task_id}").json()
        return task if task["status"] in ("completed", "failed") else None

    return wait_until(done, timeout, interval=0.1)


def test_failed_attempts_are_rolled_back_then_retried_until_one_completes(dp, dp_root):
    task = submit(dp, dp_root, 2, retries=3, retry_backoff_seconds=0.2)
    assert task["retries"] == 3
    done = wait_done(dp, task["id"])
    assert done["status"] == "completed", done["error"]
    assert done["result"] == {"attempt": 3}
    assert [a["attempt"] for a in done["attempts"]] == [1, 2]
    assert all(a["error"]["reason"] == "exception" for a in done["attempts"])
    assert "attempt 2 fails" in done["attempts"][1]["error"]["message"]
    # Only the completed attempt's rows: the failed ones were rolled back before each retry.
    out = lance.dataset(str(dp_root / "lake" / "datasets" / "out.lance"))
    assert out.to_table()["attempt"].to_pylist() == [3, 3, 3]
    retry_points = [p for p in done["history"] if "retry_in_seconds" in p]
    assert [p["retry_in_seconds"] for p in retry_points] == [0.2, 0.4]  # doubled each time


def test_retries_spent_fails_with_the_last_error_and_every_attempt(dp, dp_root):
    done = wait_done(dp, submit(dp, dp_root, 10, retries=1, retry_backoff_seconds=0)["id"])
    assert done["status"] == "failed"
    assert done["error"]["reason"] == "exception" and "attempt 2 fails" in done["error"]["message"]
    assert [a["attempt"] for a in done["attempts"]] == [1]
    assert not (dp_root / "lake" / "datasets" / "out.lance").exists()


def test_a_cancel_during_the_backoff_ends_the_task_cancelled(dp, dp_root):
    task = submit(dp, dp_root, 10, retries=5, retry_backoff_seconds=60)

    def backing_off() -> bool:
        points = dp.get(f"/api/v1/tasks/{task['id']}").json()["history"]
        return any("retry_in_seconds" in p for p in points)

    wait_until(backing_off, 30, interval=0.1)
    r = dp.post(f"/api/v1/tasks/{task['id']}/cancel")
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["status"] == "failed" and done["error"]["reason"] == "cancelled"
    assert [a["attempt"] for a in done["attempts"]] == [1]
    assert (dp_root / "data" / "counter").read_text() == "1"  # no second attempt ran


def test_without_retries_a_failure_is_final(dp, dp_root):
    done = wait_done(dp, submit(dp, dp_root, 1)["id"])
    assert done["status"] == "failed" and done["attempts"] == []


def test_bad_retry_settings_are_refused(dp, dp_root):
    for body in ({"retries": -1}, {"retries": 11}, {"retry_backoff_seconds": -1}):
        r = dp.post("/api/v1/tasks", json={"script": "flaky.py", "output": "datasets/o", **body})
        assert_error(r, 400, "INVALID_REQUEST")
