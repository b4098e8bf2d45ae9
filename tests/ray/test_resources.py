"""A task's resource request (``resources`` in the request) at Level 1 and Level 2: checked at
submit against what runs the task, kept in the record, handed to the executor. Level 3 places
by it (``tests/level3``)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from data_platform.execution import machine_resources
from tests.data_platform.test_errors import assert_error
from tests.data_platform.test_tasks import wait_done
from tests.support import Server, dp_env

TASK = {"script": "exit_ok.py", "output": "datasets/res", "params": {}}


@pytest.fixture(scope="module")
def dp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """One Level 1 Data Platform for the module: only one test here runs a task."""
    root = tmp_path_factory.mktemp("resources")
    (root / "data").mkdir()
    server = Server("data_platform", dp_env(root), "DP_PORT", root / "dp.log").start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            yield client
    finally:
        server.stop()


def test_level1_checks_cpus_and_memory_against_the_machine(dp: httpx.Client) -> None:
    has = machine_resources()
    assert has["cpus"] >= 1 and has["memory_mb"] > 0
    fits = {"cpus": 1, "memory_mb": 64}
    r = dp.post("/api/v1/tasks", json={**TASK, "resources": fits})
    assert r.status_code == 201, r.text
    assert r.json()["resources"] == {"cpus": 1.0, "memory_mb": 64.0}
    done = wait_done(dp, r.json()["id"])
    assert done["status"] == "completed", done
    assert done["resources"] == {"cpus": 1.0, "memory_mb": 64.0}

    too_many = {**TASK, "resources": {"cpus": has["cpus"] + 1}}
    message = assert_error(dp.post("/api/v1/tasks", json=too_many), 400, "INVALID_REQUEST")
    assert "'cpus'" in message["message"] and "this machine has" in message["message"]
    too_much = {**TASK, "resources": {"memory_mb": has["memory_mb"] * 2}}
    message = assert_error(dp.post("/api/v1/tasks", json=too_much), 400, "INVALID_REQUEST")
    assert "'memory_mb'" in message["message"]
    # Level 1 has no custom resources: a request for one could never be met here.
    custom = {**TASK, "resources": {"worker1": 1}}
    message = assert_error(dp.post("/api/v1/tasks", json=custom), 400, "INVALID_REQUEST")
    assert "'worker1'" in message["message"] and "has none" in message["message"]
    zero = dp.post("/api/v1/tasks", json={**TASK, "resources": {"worker1": 0}})
    assert zero.status_code == 201, zero.text


@pytest.mark.parametrize(
    "resources",
    [
        {"cpus": -1},
        {"cpus": "2"},
        {"cpus": True},
        {"cpus": None},
        {"cpus": [1]},
        {"bad name": 1},
        [1],
        "cpus",
        {f"r{i}": 1 for i in range(17)},
    ],
)
def test_a_malformed_request_is_400(dp: httpx.Client, resources: object) -> None:
    r = dp.post("/api/v1/tasks", json={**TASK, "resources": resources})
    assert "resources" in assert_error(r, 400, "INVALID_REQUEST")["message"]


def test_a_non_finite_amount_is_400(dp: httpx.Client) -> None:
    # JSON has no NaN; Python's encoder writes it, and 1e400 parses as infinity.
    for raw in ('{"cpus": NaN}', '{"cpus": 1e400}'):
        body = '{"script": "exit_ok.py", "output": "datasets/res", "params": {}, "resources": '
        r = dp.post(
            "/api/v1/tasks",
            content=body + raw + "}",
            headers={"Content-Type": "application/json"},
        )
        assert_error(r, 400, "INVALID_REQUEST")
