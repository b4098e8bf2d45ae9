"""A second Data Platform on the same lake refuses to start and touches nothing; once the
first is gone (even by kill -9) the next one takes the lake over at once."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.faults.support import no_task_processes, submit, wait_done
from tests.support import REPO, pid_alive, wait_until


def test_a_second_instance_refuses_and_the_first_keeps_running(dp_factory, tmp_path):
    first = dp_factory()
    client = first.start()
    pid_file = tmp_path / "pid"
    running = submit(
        client, "write_rows.py", params={"rows": 1, "then": "sleep", "pid_file": str(pid_file)}
    )
    queued = submit(client, "exit_ok.py", output="datasets/queued")
    task_pid = int(wait_until(lambda: pid_file.exists() and pid_file.read_text()))

    started = time.monotonic()
    env = {**first.server.env, "DP_PORT": str(first.server.port + 1)}  # type: ignore[union-attr]
    second = subprocess.run(
        [sys.executable, "-m", "data_platform"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode != 0
    out = second.stdout + second.stderr
    assert "held by another instance" in out
    assert f"pid {first.server.proc.pid}" in out and "since" in out  # type: ignore[union-attr]
    assert time.monotonic() - started < 30
    # It recovered nothing: the first's task still runs, its queued task still waits.
    assert pid_alive(task_pid)
    assert client.get(f"/api/v1/tasks/{running['id']}").json()["status"] == "running"
    assert client.get(f"/api/v1/tasks/{queued['id']}").json()["status"] == "pending"

    first.kill()  # its lease names a dead process now: taken over without waiting
    started = time.monotonic()
    client = first.start()
    assert time.monotonic() - started < 30
    task = client.get(f"/api/v1/tasks/{running['id']}").json()
    assert task["status"] == "failed" and task["error"]["reason"] == "interrupted"
    assert wait_done(client, queued["id"])["status"] == "completed"
    no_task_processes(running["id"], queued["id"])
