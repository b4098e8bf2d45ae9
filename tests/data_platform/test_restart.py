"""The Data Platform killed with SIGKILL mid-task, then restarted on the same lake."""

from __future__ import annotations

from pathlib import Path

import httpx
import lance

from tests.data_platform.test_tasks import submit, wait_done
from tests.support import Server, dp_env, pid_alive, wait_until


def test_sigkill_mid_task_then_restart_recovers_everything(dp_root: Path):
    env = dp_env(dp_root)
    server = Server("data_platform", env, "DP_PORT", dp_root / "dp.log").start()
    pid_file = dp_root / "pid"
    try:
        with httpx.Client(base_url=server.url, timeout=30) as dp:
            old = wait_done(dp, submit(dp, "write_rows.py", params={"rows": 5, "tag": "old"})["id"])
            path = old["output_path"]
            old_version = lance.dataset(path).version
            victim = submit(
                dp, "write_rows.py", params={"rows": 1, "then": "sleep", "pid_file": str(pid_file)}
            )
            queued = submit(dp, "exit_ok.py", output="datasets/after")
            pid = int(wait_until(lambda: pid_file.exists() and pid_file.read_text()))
            assert lance.dataset(path).version > old_version  # the overwrite is committed
            server.kill()

        server = Server("data_platform", env, "DP_PORT", dp_root / "dp.log").start()
        with httpx.Client(base_url=server.url, timeout=30) as dp:
            task = dp.get(f"/api/v1/tasks/{victim['id']}").json()
            assert task["status"] == "failed"
            assert task["error"]["reason"] == "interrupted"
            assert "interrupted by restart" in task["error"]["message"]
            assert not pid_alive(pid)
            ds = lance.dataset(path)
            assert ds.to_table().column("tag").to_pylist() == ["old"] * 5
            assert dp.get("/api/v1/datasets/out").json()["num_rows"] == 5
            # The task that was pending is queued again and runs.
            assert wait_done(dp, queued["id"])["status"] == "completed"
            ids = {t["id"] for t in dp.get("/api/v1/tasks").json()}
            assert ids == {old["id"], victim["id"], queued["id"]}
    finally:
        server.stop()
