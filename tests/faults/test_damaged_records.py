"""The latest manifest of ``_system/tasks.lance`` truncated (torn) or deleted.

The Data Platform still starts, names the file, reads the newest readable version, and
reconciles with the outputs: a task whose completed record was in the lost version is
completed again from its output's marker, and its dataset is kept.
"""

from __future__ import annotations

import pytest

from serverkit.recordstore import list_manifests
from tests.faults.support import stored_tasks, submit, tags, wait_done


@pytest.mark.parametrize("damage", ["truncated", "deleted"])
def test_latest_record_manifest_damaged(dp_factory, tmp_path, damage):
    dp = dp_factory()
    client = dp.start()
    first = wait_done(client, submit(client, "write_rows.py", params={"rows": 2, "tag": "a"})["id"])
    done = wait_done(
        client,
        submit(client, "write_rows.py", output="datasets/second", params={"tag": "b"})["id"],
    )
    assert done["status"] == "completed"
    dp.stop()

    table = tmp_path / "lake" / "_system" / "tasks.lance"
    _, latest = list_manifests(str(table))[0]
    manifest = table / "_versions" / latest
    if damage == "truncated":
        with open(manifest, "r+b") as fh:
            fh.truncate(20)
    else:
        manifest.unlink()

    client = dp.start()
    log = dp.log.read_text()
    if damage == "truncated":
        assert str(manifest) in log and "unreadable" in log  # it names the file
        assert (table / "_damaged" / latest).exists()  # kept aside, not deleted
    else:
        assert "is missing" in log
    task = client.get(f"/api/v1/tasks/{done['id']}").json()
    assert task["status"] == "completed", task  # from its marker: nothing committed is lost
    assert tags(done["output_path"]) == ["b"] * 3
    assert client.get(f"/api/v1/tasks/{first['id']}").json()["status"] == "completed"
    assert tags(first["output_path"]) == ["a"] * 2
    assert {t["id"] for t in client.get("/api/v1/tasks").json()} == {first["id"], done["id"]}
    # Writes go on, and a restart reads what they wrote.
    third = wait_done(client, submit(client, "exit_ok.py", output="datasets/third")["id"])
    assert third["status"] == "completed"
    dp.stop()
    assert {t["status"] for t in stored_tasks(tmp_path / "lake").values()} == {"completed"}
