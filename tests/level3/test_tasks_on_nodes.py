"""Level 3 tasks: the Data Platform on the lake on S3 runs each task under a supervisor actor on
a worker node of a real multi-node cluster; logs follow live from the lake; cancel, a Data
Platform restart and a lost node mid-task. The tests share one cluster and run in order: the
last one kills a node."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.level3.platform import DataPlatform, lake_keys
from tests.level3.ray_cluster import RayCluster, describe
from tests.level3.s3 import S3Endpoint
from tests.support import pid_alive, wait_until

pytestmark = [
    pytest.mark.level3,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:lance is not fork-safe"),
]


def local_lake_files(*roots: Path) -> list[str]:
    """Anything on local disk that looks like lake data (Lance files or task logs)."""
    found = []
    for root in roots:
        for path in root.rglob("*"):
            if path.suffix in (".lance", ".manifest", ".txn") or path.name.endswith(".log.1"):
                found.append(str(path))
    return found


def test_a_task_runs_on_the_worker_it_asked_for_and_its_log_follows_live(
    dp: DataPlatform, ray_cluster: RayCluster, s3: S3Endpoint
) -> None:
    task = dp.submit("ticks", "worker1", seconds=4)
    pid = dp.pid("ticks")
    worker1 = ray_cluster.node("worker1")
    assert pid in worker1.pids(), f"not on worker1: {describe([pid])}"

    seen_while_running = False
    lines: list[str] = []
    follow = f"{dp.url}/{task['id']}/logs"
    with httpx.stream("GET", follow, params={"follow": "true"}, timeout=60) as r:
        for line in r.iter_lines():
            lines.append(line)
            if line == "tick 2":
                seen_while_running = dp.get(task["id"])["status"] == "running"
    done = dp.ended(task["id"])

    assert done["status"] == "completed", done
    assert seen_while_running, "the follower saw output while the task ran"
    assert done["node"] == worker1.ip and done["pid"] == pid
    assert lines[-1] == "done ticking" and "tick 1" in lines
    assert done["result"]["ticks"] >= 10 and done["progress"]["tick"] == done["result"]["ticks"]
    # Read back after the end from the lake, as a whole and as a tail.
    whole = httpx.get(f"{dp.url}/{task['id']}/logs", timeout=30).text
    assert whole.splitlines() == lines
    tail = httpx.get(f"{dp.url}/{task['id']}/logs", params={"tail": 1}, timeout=30).text
    assert tail == "done ticking\n"
    # Chunks and the progress object in the bucket; the output there too; nothing local.
    logs = lake_keys(s3, dp, f"_system/task-logs/{task['id']}/")
    assert any(k.endswith("00000000.log") for k in logs) and any("progress" in k for k in logs)
    assert lake_keys(s3, dp, "datasets/ticks.lance/_versions/")
    assert not local_lake_files(dp.root, *(n.temp_dir for n in ray_cluster.nodes))
    assert not pid_alive(pid)


def test_cancel_stops_the_tree_on_the_worker_and_rolls_the_output_back(
    dp: DataPlatform, ray_cluster: RayCluster, s3: S3Endpoint
) -> None:
    task = dp.submit("forever", "worker2")
    pid = dp.pid("forever")
    assert pid in ray_cluster.node("worker2").pids()

    r = httpx.post(f"{dp.url}/{task['id']}/cancel", timeout=60)

    assert r.status_code == 200, r.text
    assert r.json()["status"] == "failed" and r.json()["error"]["reason"] == "cancelled"
    assert "removed partial output" in r.json()["error"]["message"]
    wait_until(lambda: not pid_alive(pid), timeout=10)
    assert not lake_keys(s3, dp, "datasets/forever.lance/")
    assert "tick 1" in httpx.get(f"{dp.url}/{task['id']}/logs", timeout=30).text


def test_a_restarted_data_platform_reattaches_to_a_running_task(
    dp: DataPlatform, ray_cluster: RayCluster
) -> None:
    task = dp.submit("survivor", "worker1", seconds=12)
    pid = dp.pid("survivor")
    before = dp.get(task["id"])
    assert before["status"] == "running"
    assert dp.server is not None
    dp.server.kill()  # SIGKILL: no shutdown, the task is left running on the cluster
    assert pid_alive(pid), "the task outlives the Data Platform's process"

    dp.start()
    done = dp.ended(task["id"])

    # Completed, not interrupted: the new process found the supervisor actor by its name
    # (whether the task still ran then or had ended, its outcome waiting for collection).
    assert done["status"] == "completed", done
    assert done["started_at"] == before["started_at"] and done["error"] is None
    assert done["pid"] == pid and done["node"] == ray_cluster.node("worker1").ip
    log = httpx.get(f"{dp.url}/{task['id']}/logs", timeout=30).text.splitlines()
    ticks = [int(line.split()[1]) for line in log if line.startswith("tick ")]
    assert ticks == list(range(1, done["result"]["ticks"] + 1)), "no line lost across it"
    assert log[-1] == "done ticking"


def test_a_lost_worker_node_fails_its_task_node_lost_and_rolls_back(
    dp: DataPlatform, ray_cluster: RayCluster, s3: S3Endpoint
) -> None:
    task = dp.submit("doomed", "worker2")
    pid = dp.pid("doomed")
    worker2 = ray_cluster.node("worker2")
    assert pid in worker2.pids()

    worker2.kill()
    killed_at = time.monotonic()
    done = dp.ended(task["id"], timeout=90)

    assert done["status"] == "failed", done
    assert done["error"]["reason"] == "node lost", done["error"]
    assert "removed partial output" in done["error"]["message"]
    assert time.monotonic() - killed_at < 60
    assert not pid_alive(pid)
    assert not lake_keys(s3, dp, "datasets/doomed.lance/")
