"""Tasks through the real Data Platform: outcomes, cancel, logs, FIFO, progress."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import lance
import pytest

from tests.support import pid_alive, wait_until


def submit(dp: httpx.Client, script: str, output: str = "datasets/out", **body) -> dict:
    r = dp.post("/api/v1/tasks", json={"script": script, "output": output, **body})
    assert r.status_code == 201, r.text
    return r.json()


def wait_done(dp: httpx.Client, task_id: str, timeout: float = 30) -> dict:
    def done():
        task = dp.get(f"/api/v1/tasks/{task_id}").json()
        return task if task["status"] in ("completed", "failed") else None

    return wait_until(done, timeout)


def test_dict_result_completes_with_result(dp):
    task = submit(dp, "exit_ok.py", params={"a": 1})
    assert task["status"] == "pending" and task["id"].startswith("task-")
    done = wait_done(dp, task["id"])
    assert done["status"] == "completed"
    assert done["result"]["ok"] is True
    assert done["started_at"] <= done["completed_at"]
    assert "hello from exit_ok {'a': 1}" in dp.get(f"/api/v1/tasks/{task['id']}/logs").text


def test_exception_fails_with_message_and_traceback_in_log(dp):
    done = wait_done(dp, submit(dp, "raise_error.py")["id"])
    assert done["status"] == "failed"
    assert done["error"]["reason"] == "exception"
    assert done["error"]["type"] == "ValueError"
    assert done["error"]["message"] == "bad pixels in row 42"
    log = dp.get(f"/api/v1/tasks/{done['id']}/logs").text
    assert "Traceback (most recent call last)" in log
    assert "in helper" in log and "ValueError: bad pixels in row 42" in log
    tail = dp.get(f"/api/v1/tasks/{done['id']}/logs", params={"tail": 1}).text
    assert tail.strip() == "ValueError: bad pixels in row 42"


def test_non_dict_return_fails(dp):
    done = wait_done(dp, submit(dp, "bad_return.py")["id"])
    assert done["error"]["reason"] == "bad_result"
    assert "returned list, expected a dict" in done["error"]["message"]


def test_hard_exit_and_signal_fail_saying_which(dp):
    exited = wait_done(dp, submit(dp, "crash.py")["id"])
    assert exited["error"]["reason"] == "crashed"
    assert "exited with code 3" in exited["error"]["message"]
    killed = wait_done(dp, submit(dp, "crash.py", params={"signal": True})["id"])
    assert killed["error"]["reason"] == "killed"
    assert "SIGSEGV" in killed["error"]["message"]


def test_cancel_running_task_kills_it_within_grace(dp, dp_root: Path):
    pid_file = dp_root / "pid"
    task = submit(dp, "sleep_forever.py", params={"pid_file": str(pid_file)})
    pid = int(wait_until(lambda: pid_file.exists() and pid_file.read_text()))
    assert dp.get(f"/api/v1/tasks/{task['id']}").json()["status"] == "running"
    started = time.monotonic()
    r = dp.post(f"/api/v1/tasks/{task['id']}/cancel")
    assert r.status_code == 200
    assert r.json()["status"] == "failed"
    assert r.json()["error"]["reason"] == "cancelled"
    wait_until(lambda: not pid_alive(pid), timeout=2)
    assert time.monotonic() - started < 1 + 1  # grace (1 s in tests) + 1 s


def test_cancel_finished_task_is_409(dp):
    done = wait_done(dp, submit(dp, "exit_ok.py")["id"])
    r = dp.post(f"/api/v1/tasks/{done['id']}/cancel")
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "TASK_ALREADY_FINISHED"


def test_level1_runs_one_at_a_time_fifo_and_cancels_pending_at_once(dp, dp_root: Path):
    pid_file = dp_root / "pid"
    first = submit(dp, "sleep_forever.py", params={"pid_file": str(pid_file)})
    second = submit(dp, "exit_ok.py", output="datasets/b")
    third = submit(dp, "exit_ok.py", output="datasets/c")
    wait_until(lambda: pid_file.exists())
    assert dp.get(f"/api/v1/tasks/{second['id']}").json()["status"] == "pending"
    r = dp.post(f"/api/v1/tasks/{second['id']}/cancel")
    assert r.json()["status"] == "failed" and r.json()["error"]["reason"] == "cancelled"
    assert r.json()["started_at"] is None
    dp.post(f"/api/v1/tasks/{first['id']}/cancel")
    assert wait_done(dp, third["id"])["status"] == "completed"
    listed = [t["id"] for t in dp.get("/api/v1/tasks").json()]
    assert listed == [third["id"], second["id"], first["id"]]  # newest first
    failed = dp.get("/api/v1/tasks", params={"status": "failed"}).json()
    assert {t["id"] for t in failed} == {first["id"], second["id"]}


def test_same_kind_and_name_is_409_while_active(dp, dp_root: Path):
    body = {"kind": "ingestion", "name": "nightly", "params": {"pid_file": str(dp_root / "p")}}
    first = submit(dp, "sleep_forever.py", **body)
    r = dp.post("/api/v1/tasks", json={"script": "exit_ok.py", "output": "datasets/o", **body})
    assert r.status_code == 409 and r.json()["error"]["code"] == "TASK_ALREADY_RUNNING"
    dp.post(f"/api/v1/tasks/{first['id']}/cancel")
    again = submit(dp, "exit_ok.py", **body)
    assert wait_done(dp, again["id"])["status"] == "completed"
    named = dp.get("/api/v1/tasks", params={"kind": "ingestion", "name": "nightly"}).json()
    assert len(named) == 2


def test_failed_task_restores_previous_version_of_its_output(dp, dp_root: Path):
    first = wait_done(dp, submit(dp, "write_rows.py", params={"rows": 5, "tag": "old"})["id"])
    assert first["status"] == "completed"
    path = first["output_path"]
    good_version = lance.dataset(path).version
    done = wait_done(dp, submit(dp, "write_rows.py", params={"rows": 2, "then": "raise"})["id"])
    assert done["status"] == "failed"
    assert f"restored version {good_version}" in done["error"]["message"]
    ds = lance.dataset(path)
    assert ds.to_table().column("tag").to_pylist() == ["old"] * 5


def test_failed_first_write_leaves_no_dataset(dp):
    done = wait_done(
        dp, submit(dp, "write_rows.py", output="datasets/fresh", params={"then": "raise"})["id"]
    )
    assert "removed partial output" in done["error"]["message"]
    assert dp.get("/api/v1/datasets/fresh").status_code == 404


def test_progress_reports_show_on_the_task(dp):
    done = wait_done(dp, submit(dp, "report_progress.py", params={"epochs": 3})["id"])
    assert done["progress"]["epoch"] == 3
    assert [p["epoch"] for p in done["history"]] == [1, 2, 3]


@pytest.mark.parametrize(
    ("script", "fragment"),
    [
        ("../conftest.py", "relative path"),
        ("/etc/passwd", "relative path"),
        ("nope.py", "not found"),
        ("sub/../../x.py", "relative path"),
    ],
)
def test_script_outside_root_or_missing_is_400(dp, script, fragment):
    r = dp.post("/api/v1/tasks", json={"script": script, "output": "datasets/x"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "INVALID_REQUEST"
    assert fragment in r.json()["error"]["message"]


def test_symlink_out_of_scripts_root_is_400(tmp_path):
    from data_platform.local_executor import LocalExecutor
    from data_platform.manager import TaskManager
    from data_platform.settings import DataPlatformSettings
    from data_platform.store import Lake
    from lakeapi.errors import InvalidRequest

    scripts = tmp_path / "scripts"
    scripts.mkdir()
    outside = tmp_path / "evil.py"
    outside.write_text("def run(i, o, p):\n    return {}\n")
    (scripts / "link.py").symlink_to(outside)
    settings = DataPlatformSettings(lake_root=tmp_path / "lake", scripts_root=scripts)
    executor = LocalExecutor(tmp_path / "work")
    manager = TaskManager(settings, Lake(settings.lake_root), executor)
    with pytest.raises(InvalidRequest, match="leads out of the scripts root"):
        manager.resolve.script("link.py")


def test_logs_follow_streams_until_the_task_ends(dp, dp_root: Path):
    pid_file = dp_root / "pid"
    task = submit(dp, "sleep_forever.py", params={"pid_file": str(pid_file)})
    wait_until(lambda: pid_file.exists())
    received = b""
    with dp.stream("GET", f"/api/v1/tasks/{task['id']}/logs", params={"follow": True}) as r:
        assert r.status_code == 200
        for chunk in r.iter_bytes():
            received += chunk
            if b"sleeping" in received:
                dp.post(f"/api/v1/tasks/{task['id']}/cancel")
    # The stream closed by itself once the task was cancelled.
    assert b"sleeping" in received
    assert dp.get(f"/api/v1/tasks/{task['id']}").json()["status"] == "failed"


def test_logs_tail_reads_the_last_lines_of_a_long_log(tmp_path: Path):
    from data_platform.local_executor import read_log

    log = tmp_path / "t.log"
    log.write_bytes(b"".join(b"line %d\n" % i for i in range(100_000)))
    data, size = read_log(log, 3)
    assert data == b"line 99997\nline 99998\nline 99999\n"
    assert size == log.stat().st_size
    assert read_log(log, 0)[0] == b""
    assert read_log(tmp_path / "missing.log", 5) == (b"", 0)


def test_a_model_output_that_is_no_model_record_fails_and_is_rolled_back(dp):
    nothing = wait_done(dp, submit(dp, "exit_ok.py", output="models/nothing")["id"])
    assert nothing["status"] == "failed" and nothing["error"]["reason"] == "bad_result"
    assert "not a model record" in nothing["error"]["message"]
    assert "save_model" in nothing["error"]["message"]  # says what to call
    # A script that writes a plain dataset where its model belongs: it goes again.
    junk = wait_done(dp, submit(dp, "write_rows.py", output="models/junk")["id"])
    assert junk["status"] == "failed" and junk["error"]["reason"] == "bad_result"
    assert "removed partial output" in junk["error"]["message"]
    assert dp.get("/api/v1/models/junk").status_code == 404
    assert [m["id"] for m in dp.get("/api/v1/models").json()] == []


def test_a_model_record_completes_with_its_signature(dp):
    done = wait_done(dp, submit(dp, "train_tiny.py", output="models/tiny")["id"], timeout=60)
    assert done["status"] == "completed", done["error"]
    model = dp.get("/api/v1/models/tiny").json()
    assert model["signature"]["inputs"][0]["shape"][-1] == 4
    assert model["metrics"] == {"epochs": 2}


def test_a_pending_task_says_its_place_in_the_queue_and_what_runs(dp, tmp_path: Path):
    pid_file = tmp_path / "pid"
    first = submit(dp, "sleep_forever.py", output="datasets/a", params={"pid_file": str(pid_file)})
    wait_until(pid_file.exists)
    second = submit(dp, "exit_ok.py", output="datasets/b")
    third = submit(dp, "exit_ok.py", output="datasets/c")
    places = {
        t["id"]: t["queue"] for t in dp.get("/api/v1/tasks", params={"status": "pending"}).json()
    }
    assert places[second["id"]] == {"position": 1, "running": [first["id"]], "slots": 1}
    assert places[third["id"]]["position"] == 2
    assert dp.get(f"/api/v1/tasks/{third['id']}").json()["queue"]["position"] == 2
    assert dp.get(f"/api/v1/tasks/{first['id']}").json()["queue"] is None  # running: no place
    dp.post(f"/api/v1/tasks/{first['id']}/cancel")
    assert wait_done(dp, third["id"])["queue"] is None


def test_lists_come_in_pages_newest_first_without_histories(dp):
    ids = [
        wait_done(dp, submit(dp, "write_rows.py", output=f"datasets/p{i}")["id"])["id"]
        for i in range(5)
    ]
    ids.append(wait_done(dp, submit(dp, "report_progress.py", output="datasets/q")["id"])["id"])
    seen, cursor, pages = [], None, 0
    while True:
        r = dp.get("/api/v1/tasks", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200
        assert len(r.json()) <= 2 and all(t["history"] == [] for t in r.json())
        seen += [t["id"] for t in r.json()]
        pages += 1
        cursor = r.headers.get("X-Next-Cursor")
        if not cursor:
            break
    assert seen == ids[::-1] and pages == 3  # each once, newest first
    assert len(dp.get(f"/api/v1/tasks/{ids[-1]}").json()["history"]) == 3  # detail keeps it
    assert "X-Next-Cursor" not in dp.get("/api/v1/tasks").headers  # default page holds all 6
    datasets = dp.get("/api/v1/datasets", params={"limit": 4})
    assert [d["id"] for d in datasets.json()] == ["p0", "p1", "p2", "p3"]
    rest = dp.get("/api/v1/datasets", params={"cursor": datasets.headers["X-Next-Cursor"]})
    assert [d["id"] for d in rest.json()] == ["p4"]
    for bad in ("not-a-cursor", "W10"):
        r = dp.get("/api/v1/tasks", params={"cursor": bad})
        assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_REQUEST"
