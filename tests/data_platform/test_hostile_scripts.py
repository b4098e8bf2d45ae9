"""Scripts that misbehave: the task ends cleanly, its whole tree is gone, the service answers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.data_platform.test_tasks import submit, wait_done
from tests.support import Server, dp_env, pid_alive, wait_until


@pytest.fixture
def limited(dp_root: Path) -> Iterator[httpx.Client]:
    """A Data Platform with small limits: 1 MB logs, 300 MB memory, 4 s per task."""
    env = dp_env(
        dp_root,
        DP_LOG_MAX_BYTES=str(1024 * 1024),
        DP_TASK_MEMORY_MB="300",
        DP_TASK_TIMEOUT_SECONDS="4",
    )
    server = Server("data_platform", env, "DP_PORT", dp_root / "dp.log").start()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client
    server.stop()


def test_memory_hog_is_killed_at_the_limit(limited):
    done = wait_done(limited, submit(limited, "hog_memory.py")["id"])
    assert done["status"] == "failed"
    assert done["error"]["reason"] == "memory"
    assert "memory limit of 300 MB exceeded" in done["error"]["message"]


def test_script_that_never_returns_times_out(limited, dp_root: Path):
    pid_file = dp_root / "pid"
    done = wait_done(
        limited, submit(limited, "sleep_forever.py", params={"pid_file": str(pid_file)})["id"]
    )
    assert done["error"]["reason"] == "timeout"
    assert not pid_alive(int(pid_file.read_text()))


def test_log_flood_is_bounded_and_service_stays_responsive(limited, dp_root: Path):
    task = submit(limited, "flood_stdout.py", params={"mb": 200})
    # While it floods, the service answers quickly.
    for _ in range(5):
        started = time.monotonic()
        assert limited.get("/health").status_code == 200
        assert time.monotonic() - started < 1.0
    done = wait_done(limited, task["id"], timeout=60)
    assert done["status"] == "completed"
    logs = dp_root / "lake" / "_system" / "logs"
    sizes = [p.stat().st_size for p in logs.glob(f"{task['id']}.log*")]
    assert sum(sizes) <= 2 * 1024 * 1024 + 4096
    text = limited.get(f"/api/v1/tasks/{task['id']}/logs", params={"tail": 1}).text
    assert text == "last line\n"
    assert "[log rotated" in (logs / f"{task['id']}.log").read_text()[:200]


def test_forked_children_die_with_the_task_even_after_setsid(dp, dp_root: Path):
    pid_file = dp_root / "pids"
    task = submit(dp, "fork_children.py", params={"pid_file": str(pid_file)})
    pids = [int(p) for p in wait_until(lambda: pid_file.exists() and pid_file.read_text()).split()]
    assert all(pid_alive(p) for p in pids)
    dp.post(f"/api/v1/tasks/{task['id']}/cancel")
    wait_until(lambda: not any(pid_alive(p) for p in pids), timeout=3)


def test_children_left_behind_by_a_finished_script_are_killed(dp, dp_root: Path):
    pid_file = dp_root / "pids"
    done = wait_done(
        dp, submit(dp, "fork_children.py", params={"pid_file": str(pid_file), "return": True})["id"]
    )
    assert done["status"] == "completed"
    pids = [int(p) for p in pid_file.read_text().split()]
    wait_until(lambda: not any(pid_alive(p) for p in pids), timeout=3)


def test_sigterm_ignored_is_killed_after_grace(dp, dp_root: Path):
    pid_file = dp_root / "pid"
    task = submit(dp, "ignore_sigterm.py", params={"pid_file": str(pid_file)})
    pid = int(wait_until(lambda: pid_file.exists() and pid_file.read_text()))
    started = time.monotonic()
    r = dp.post(f"/api/v1/tasks/{task['id']}/cancel")
    assert r.json()["error"]["reason"] == "cancelled"
    assert not pid_alive(pid)
    elapsed = time.monotonic() - started
    assert 0.9 < elapsed < 1 + 1  # waited the 1 s grace, then SIGKILL
