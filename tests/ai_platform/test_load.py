"""Bursts of work: nothing lost, nothing duplicated."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support import wait_until

BURST = 200


@pytest.mark.slow
def test_200_submissions_in_a_burst_all_reach_a_terminal_state(platform):
    def submit(i: int) -> str:
        with httpx.Client(base_url=platform.url, timeout=60) as client:
            r = client.post(
                "/api/v1/ingestion-tasks",
                json={
                    "name": f"burst-{i}",
                    "input": "",
                    "script": "fixtures/exit_ok.py",
                    "params": {"i": i},
                    "output": f"burst_{i % 7}",
                },
            )
            assert r.status_code == 201, r.text
            return r.json()["id"]

    with ThreadPoolExecutor(16) as pool:
        ids = list(pool.map(submit, range(BURST)))
    assert len(set(ids)) == BURST

    with httpx.Client(base_url=platform.url, timeout=60) as client:

        def burst_tasks() -> list[dict]:
            tasks = client.get("/api/v1/ingestion-tasks", params={"limit": 1000}).json()
            return [t for t in tasks if t["name"].startswith("burst-")]

        def all_done() -> list[dict] | None:
            tasks = burst_tasks()
            return tasks if all(t["status"] == "completed" for t in tasks) else None

        tasks = wait_until(all_done, timeout=240, interval=1)
    assert sorted(t["id"] for t in tasks) == sorted(ids)
    assert all(t["stats"]["ok"] is True for t in tasks)
    assert sorted(t["params"]["i"] for t in tasks) == list(range(BURST))
