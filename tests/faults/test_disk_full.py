"""A full disk under the lake (a real small tmpfs) at submit, during a task, and at the moment
a task finishes. Nothing committed is lost, nothing enters memory that was not saved, and once
space is back everything works without a restart.
"""

from __future__ import annotations

import lance

from tests.faults.support import (
    fill,
    no_task_processes,
    small_disk,
    stored_tasks,
    submit,
    tags,
    wait_done,
)
from tests.support import wait_until


def test_disk_full_at_submit_is_503_with_no_phantom(dp_factory, tmp_path):
    with small_disk(tmp_path / "lake") as lake:
        dp = dp_factory()
        client = dp.start()
        filler = lake / "filler"
        fill(filler)
        body = {"script": "exit_ok.py", "output": "datasets/x", "kind": "k", "name": "n"}
        r = client.post("/api/v1/tasks", json=body)
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] and "could not be saved" in r.json()["error"]["message"]
        assert client.get("/api/v1/tasks").json() == []  # no phantom, the list still works
        filler.unlink()
        r = client.post("/api/v1/tasks", json=body)  # the name is not blocked
        assert r.status_code == 201, r.text
        assert wait_done(client, r.json()["id"])["status"] == "completed"
        dp.stop()
        assert list(stored_tasks(lake)) == [r.json()["id"]]


def test_disk_full_during_a_task_keeps_the_committed_dataset(dp_factory, tmp_path):
    with small_disk(tmp_path / "lake") as lake:
        dp = dp_factory()
        client = dp.start()
        old = wait_done(client, submit(client, "write_rows.py", params={"tag": "old"})["id"])
        uri = old["output_path"]
        filler = lake / "filler"
        # The disk fills while the task runs; its write fails, and the committed version stays.
        params = {"order": "fill-write", "rows": 50_000, "tag": "new", "filler": str(filler)}
        big = submit(client, "write_then_fill.py", params=params)
        failed = wait_done(client, big["id"])
        assert failed["status"] == "failed" and failed["error"]["reason"] == "exception"
        assert "No space left" in failed["error"]["message"] or "os error 28" in str(failed)
        assert tags(uri) == ["old"] * 3
        no_task_processes(big["id"])
        filler.unlink()
        assert client.get(f"/api/v1/tasks/{big['id']}").json()["status"] == "failed"
        # Its end, unsaved while the disk was full, is saved once there is space again.
        wait_until(lambda: stored_tasks(lake)[big["id"]]["status"] == "failed", 20)
        after = wait_done(client, submit(client, "write_rows.py", params={"tag": "after"})["id"])
        assert after["status"] == "completed" and tags(uri) == ["after"] * 3
        dp.stop()
        stored = stored_tasks(lake)
        assert stored[old["id"]]["status"] == "completed"
        assert stored[after["id"]]["status"] == "completed"


def test_disk_full_when_a_task_finishes_loses_nothing_committed(dp_factory, tmp_path):
    """The script writes its output, then fills the disk: the platform's marker and record
    commits fail. It never says completed for what it could not make durable; after a
    restart (space back) the earlier dataset is intact and the task is failed, not lost."""
    with small_disk(tmp_path / "lake") as lake:
        dp = dp_factory()
        client = dp.start()
        old = wait_done(client, submit(client, "write_rows.py", params={"tag": "old"})["id"])
        uri = old["output_path"]
        old_version = lance.dataset(uri).version
        filler = lake / "filler"
        task = submit(
            client, "write_then_fill.py", params={"rows": 2, "tag": "new", "filler": str(filler)}
        )
        ended = wait_done(client, task["id"])
        assert ended["status"] == "failed", ended  # its completion could not be made durable
        no_task_processes(task["id"])
        dp.kill()
        filler.unlink()
        client = dp.start()
        again = client.get(f"/api/v1/tasks/{task['id']}").json()
        assert again["status"] == "failed"
        ds = lance.dataset(uri)
        assert ds.checkout_version(old_version).to_table().column("tag").to_pylist() == ["old"] * 3
        assert tags(uri) in (["old"] * 3, ["new"] * 2)
        assert tags(uri) == ["old"] * 3  # what it wrote was never proven complete: undone
        assert client.get(f"/api/v1/tasks/{old['id']}").json()["status"] == "completed"
