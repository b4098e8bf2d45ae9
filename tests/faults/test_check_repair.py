"""``python -m data_platform check|repair`` on a lake left by kill -9 with a torn record
manifest: check names the problems (exit 1), repair refuses while a Data Platform runs,
then fixes them without losing the finished work, and check is clean (exit 0)."""

from __future__ import annotations

import subprocess
import sys

from serverkit.recordstore import list_manifests
from tests.faults.support import submit, tags, wait_done
from tests.support import REPO, wait_until


def operator(env: dict[str, str], verb: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "data_platform", verb],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_and_repair_a_damaged_lake(dp_factory, tmp_path):
    dp = dp_factory()
    client = dp.start()
    done = wait_done(client, submit(client, "write_rows.py", params={"tag": "kept"})["id"])
    pid_file = tmp_path / "pid"
    victim = submit(
        client,
        "write_rows.py",
        output="datasets/partial",
        params={"rows": 1, "then": "sleep", "pid_file": str(pid_file)},
    )
    wait_until(pid_file.exists)
    env = dict(dp.server.env)  # type: ignore[union-attr]
    refused = operator(env, "repair")
    assert refused.returncode == 1 and "held by another instance" in refused.stdout
    dp.kill()

    table = tmp_path / "lake" / "_system" / "tasks.lance"
    first = list_manifests(str(table))
    checked = operator(env, "check")
    assert checked.returncode == 1, checked.stdout
    assert f"{victim['id']}: interrupted" in checked.stdout

    _, latest = first[0]
    (table / "_versions" / latest).write_bytes(b"torn")
    checked = operator(env, "check")
    assert checked.returncode == 1 and f"{table}/_versions/{latest} unreadable" in checked.stdout

    repaired = operator(env, "repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "fixed:" in repaired.stdout and "0 problem(s)" in repaired.stdout
    assert operator(env, "check").returncode == 0
    assert tags(done["output_path"]) == ["kept"] * 3  # finished work untouched

    client = dp.start()
    assert client.get(f"/api/v1/tasks/{done['id']}").json()["status"] == "completed"
    # The torn manifest held its "running" record: it reads as queued again, so it runs again
    # (not lost); cancelled here, it ends failed and what it wrote is undone.
    assert client.get(f"/api/v1/tasks/{victim['id']}").json()["status"] in ("pending", "running")
    cancelled = client.post(f"/api/v1/tasks/{victim['id']}/cancel").json()
    assert cancelled["status"] == "failed" and cancelled["error"]["reason"] == "cancelled"
