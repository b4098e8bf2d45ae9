"""A multi-node Ray cluster on one machine: placement by custom resource, a node lost.

What Level 3's executor will rely on: a task asked to run on a worker runs there (Ray's state
API says which node ran it), and a worker node that vanishes is noticed by Ray (the node is
marked dead and a task that was running there fails instead of waiting forever).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.level3.ray_cluster import RayCluster, describe, driver_result
from tests.support import pid_alive, wait_until

pytestmark = [
    pytest.mark.level3,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:lance is not fork-safe"),  # Popen, then exec at once
]

PINNED_TASK = """
import time
from ray.util.state import list_tasks

@ray.remote(resources={"worker1": 1}, num_cpus=1)
def where_am_i():
    return ray.get_runtime_context().get_node_id()

ran_on = ray.get(where_am_i.remote())
# Task events reach the state API asynchronously (workers report them about once a second).
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    done = list_tasks(filters=[("name", "=", "where_am_i"), ("state", "=", "FINISHED")])
    if done:
        break
    time.sleep(0.5)
report({"returned": ran_on, "state": [t.node_id for t in done]})
"""

DOOMED_TASK = """
import os, pathlib, sys

@ray.remote(resources={"worker2": 1}, num_cpus=1, max_retries=0)
def hold(pid_file):
    pathlib.Path(pid_file).write_text(str(os.getpid()))
    import time
    time.sleep(600)

try:
    ray.get(hold.remote(sys.argv[1]), timeout=120)
    report({"error": None})
except Exception as exc:
    report({"error": type(exc).__name__, "message": str(exc)[:2000]})
"""


def test_every_node_joined_on_its_own_address_with_its_resource(ray_cluster: RayCluster) -> None:
    nodes = {n["ip"]: n for n in ray_cluster.list_nodes() if n["alive"]}

    assert sorted(nodes) == ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    for node in ray_cluster.nodes:
        resources = nodes[node.ip]["resources"]
        assert resources["CPU"] == 1
        assert resources[node.name] == 1
    assert nodes["127.0.0.2"]["node_id"] == ray_cluster.head.node_id


def test_the_cluster_refuses_a_client_without_the_token(ray_cluster: RayCluster) -> None:
    # (A driver with a wrong token is refused too, but only after ~20 s of Ray's retries.)
    url = f"{ray_cluster.dashboard_url}/api/v0/nodes"
    assert httpx.get(url, timeout=10).status_code == 401
    wrong = {"Authorization": "Bearer " + "0" * 64}
    assert httpx.get(url, headers=wrong, timeout=10).status_code in (401, 403)


def test_a_task_pinned_by_its_custom_resource_runs_on_that_worker(
    ray_cluster: RayCluster,
) -> None:
    seen = ray_cluster.run_driver(PINNED_TASK)
    worker1 = ray_cluster.node("worker1").node_id

    assert seen["state"] == [worker1], "the state API names the node that ran the task"
    assert seen["returned"] == worker1
    assert worker1 != ray_cluster.head.node_id


def test_a_killed_worker_node_is_marked_dead_and_its_task_fails(
    ray_cluster: RayCluster, tmp_path: Path
) -> None:
    worker2 = ray_cluster.node("worker2")
    pid_file = tmp_path / "task.pid"
    argv, env = ray_cluster.driver(DOOMED_TASK)
    driver = subprocess.Popen([*argv, str(pid_file)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        task_pid = int(wait_until(lambda: pid_file.read_text(), timeout=60))
        assert task_pid in worker2.pids(), "the task's process belongs to worker2's node"

        worker2.kill()
        killed_at = time.monotonic()
        assert not worker2.pids(), describe(worker2.pids())
        assert not pid_alive(task_pid)

        def worker2_dead() -> bool:
            states = {n["node_id"]: n["alive"] for n in ray_cluster.list_nodes()}
            return states.get(worker2.node_id) is False

        wait_until(worker2_dead, timeout=60, interval=0.5)
        noticed_after = time.monotonic() - killed_at
        out, _ = driver.communicate(timeout=60)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()

    outcome = driver_result(out)
    assert outcome["error"] is not None, "the task's ray.get failed instead of waiting"
    assert outcome["error"] in {"NodeDiedError", "WorkerCrashedError", "RayTaskError"}, outcome
    # The GCS health checks (1 s period, 5 failures) bound how long a lost node goes unseen.
    assert noticed_after < 30
    alive = {n["ip"] for n in ray_cluster.list_nodes() if n["alive"]}
    assert alive == {"127.0.0.2", "127.0.0.3"}
