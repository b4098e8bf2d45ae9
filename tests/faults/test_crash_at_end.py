"""kill -9 of the Data Platform at each step of a task's end, then a restart on the lake.

The steps (``data_platform.faults``): before the completion marker is committed on the
output, after it, and after the completed record. Before the marker the task never finished
in the platform's eyes: it is interrupted and its output rolled back to what it was. After
the marker it finished, and the restart says so, keeping the output, even though its record
may still say "running".
"""

from __future__ import annotations

import time

import lance
import pyarrow as pa
import pytest

from tests.faults.support import no_task_processes, stored_tasks, submit, tags, wait_done


@pytest.mark.parametrize(
    ("point", "status", "expected"),
    [
        ("end:before-marker", "failed", ["old"] * 2),
        ("end:after-marker", "completed", ["new"] * 3),
        ("end:after-record", "completed", ["new"] * 3),
    ],
)
def test_kill_9_at_each_step_of_a_task_end(dp_factory, tmp_path, point, status, expected):
    uri = str(tmp_path / "lake" / "datasets" / "out.lance")
    lance.write_dataset(pa.table({"x": [0, 1], "tag": ["old"] * 2}), uri)  # committed before
    dp = dp_factory()
    client = dp.start(DP_TEST_CRASH_AT=point)
    victim = submit(client, "write_rows.py", params={"rows": 3, "tag": "new"})
    assert dp.exited() == -9  # it died at that point, by SIGKILL
    assert f"DP_TEST_CRASH_AT={point}" in dp.log.read_text()

    started = time.monotonic()
    client = dp.start()
    task = client.get(f"/api/v1/tasks/{victim['id']}").json()
    assert task["status"] == status, task
    if status == "failed":
        assert task["error"]["reason"] == "interrupted"
    else:
        assert task["result"] == {"rows": 3}
        assert task["output_version"] is not None
    assert tags(uri) == expected  # no committed dataset lost, nothing partial kept
    ids = {t["id"] for t in client.get("/api/v1/tasks").json()}
    assert ids == {victim["id"]}  # no phantom
    assert stored_tasks(tmp_path / "lake")[victim["id"]]["status"] == status  # durable
    no_task_processes(victim["id"])
    assert time.monotonic() - started < 60


def test_kill_9_before_the_marker_of_a_first_output_removes_only_that(dp_factory):
    """A dataset the task created from nothing is partial until marked: removed; a second
    task then writes it afresh."""
    dp = dp_factory()
    client = dp.start(DP_TEST_CRASH_AT="end:before-marker")
    victim = submit(client, "write_rows.py", output="datasets/fresh", params={"rows": 3})
    assert dp.exited() == -9
    client = dp.start()
    task = client.get(f"/api/v1/tasks/{victim['id']}").json()
    assert task["status"] == "failed" and "removed partial output" in task["error"]["message"]
    assert client.get("/api/v1/datasets/fresh").status_code == 404
    again = wait_done(client, submit(client, "write_rows.py", output="datasets/fresh")["id"])
    assert again["status"] == "completed"
    assert client.get("/api/v1/datasets/fresh").json()["num_rows"] == 3
