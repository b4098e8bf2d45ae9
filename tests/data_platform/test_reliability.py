"""What a task needs is checked again when it starts; keys never reach a task; either key
protects the Data Platform; a default time limit; bad params leave no phantom."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from data_platform.settings import DEFAULT_TASK_TIME_LIMIT, DataPlatformSettings
from tests.data_platform.test_tasks import submit, wait_done
from tests.faults.support import scripts_root
from tests.support import Server, dp_env, wait_until


def test_what_submit_checked_is_checked_again_at_start(dp_root: Path):
    scripts = scripts_root(dp_root)
    (scripts / "doomed.py").write_text("def run(i, o, p):\n    return {}\n")
    server = Server("data_platform", dp_env(dp_root, scripts), "DP_PORT", dp_root / "dp.log")
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as dp:
            wait_done(dp, submit(dp, "write_rows.py", output="datasets/src")["id"])
            pid_file = dp_root / "pid"
            blocker = submit(dp, "sleep_forever.py", params={"pid_file": str(pid_file)})
            wait_until(pid_file.exists)  # holds the one slot: the next two wait
            gone_script = submit(dp, "doomed.py", output="datasets/a")
            gone_input = submit(dp, "exit_ok.py", input="datasets/src", output="datasets/b")
            (scripts / "doomed.py").unlink()
            assert dp.delete("/api/v1/datasets/src").status_code == 204
            dp.post(f"/api/v1/tasks/{blocker['id']}/cancel")
            for task, what in ((gone_script, "script 'doomed.py'"), (gone_input, "input")):
                done = wait_done(dp, task["id"])
                assert done["status"] == "failed" and done["error"]["reason"] == "rejected"
                assert (
                    what in done["error"]["message"]
                    and "no longer exists" in done["error"]["message"]
                )
    finally:
        server.stop()


def test_no_key_reaches_a_task_and_the_ai_platform_key_protects_the_data_platform(
    dp_root: Path,
):
    env = dp_env(dp_root, scripts_root(dp_root), AIP_API_KEY="aip-secret", DP_API_KEY="")
    env.pop("DP_API_KEY")
    server = Server(
        "data_platform", {**env, "LAKESTACK_DEMO_API_KEY": "x"}, "DP_PORT", dp_root / "dp.log"
    )
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as anonymous:
            r = anonymous.post(
                "/api/v1/tasks", json={"script": "exit_ok.py", "output": "datasets/o"}
            )
            assert r.status_code == 401, r.text
            assert anonymous.get("/health").status_code == 200
        headers = {"Authorization": "Bearer aip-secret"}
        with httpx.Client(base_url=server.url, timeout=30, headers=headers) as dp:
            done = wait_done(dp, submit(dp, "print_env.py")["id"])
            assert done["status"] == "completed"
            names = done["result"]["names"]
            assert "LAKEKIT_TASK_ID" in names  # the environment is there
            assert not [n for n in names if n.endswith("API_KEY")]
            log = dp.get(f"/api/v1/tasks/{done['id']}/logs").text
            assert "aip-secret" not in log and "LAKEKIT_TASK_ID=" in log
    finally:
        server.stop()


def test_default_time_limit_and_none(tmp_path: Path, monkeypatch):
    for var in ("DP_TASK_TIME_LIMIT", "DP_TASK_TIMEOUT_SECONDS"):
        monkeypatch.delenv(var, raising=False)
    assert DataPlatformSettings(_env_file=None).time_limit_seconds == DEFAULT_TASK_TIME_LIMIT
    monkeypatch.setenv("DP_TASK_TIME_LIMIT", "none")
    assert DataPlatformSettings(_env_file=None).time_limit_seconds is None
    monkeypatch.setenv("DP_TASK_TIME_LIMIT", "90")
    assert DataPlatformSettings(_env_file=None).time_limit_seconds == 90
    monkeypatch.setenv("DP_TASK_TIMEOUT_SECONDS", "5")  # the older name, when set, wins
    assert DataPlatformSettings(_env_file=None).time_limit_seconds == 5


def test_unstorable_params_are_400_and_leave_no_phantom(dp):
    nested: object = "x"
    for _ in range(300):
        nested = {"a": nested}
    body = {"script": "exit_ok.py", "output": "datasets/o", "kind": "k", "name": "n"}
    for params in (json.dumps(nested), '{"v": NaN}', '{"v": 1e400}'):
        raw = json.dumps(body)[:-1] + f', "params": {params}}}'
        r = dp.post("/api/v1/tasks", content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "INVALID_REQUEST"
    assert dp.get("/api/v1/tasks").json() == []
    r = dp.post("/api/v1/tasks", json=body)
    assert r.status_code == 201 and r.json()["name"] == "n"  # the name is free
    assert dp.get("/api/v1/tasks").status_code == 200
