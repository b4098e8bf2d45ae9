"""Ingestion and training tasks through the AI Platform, backed by a real Data Platform."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.data_platform.test_errors import assert_error
from tests.support import wait_until


def job(name: str, script: str, output: str = "out", input: str = "raw/mnist", **params) -> dict:
    return {"name": name, "input": input, "script": script, "params": params, "output": output}


def wait_job(api: httpx.Client, path: str, timeout: float = 60) -> dict:
    def done():
        task = api.get(path).json()
        return task if task["status"] in ("completed", "failed") else None

    return wait_until(done, timeout, interval=0.2)


def test_ingestion_task_runs_and_reports_stats(api):
    r = api.post("/api/v1/ingestion-tasks", json=job("ok", "fixtures/exit_ok.py", "ds_ok"))
    assert r.status_code == 201, r.text
    task = r.json()
    assert task["id"].startswith("ingest-")
    assert task["name"] == "ok" and task["output"] == "ds_ok" and task["status"] == "pending"
    done = wait_job(api, f"/api/v1/ingestion-tasks/{task['id']}")
    assert done["status"] == "completed"
    assert done["stats"]["ok"] is True and done["completed_at"]
    assert done["stats"]["output"].endswith("datasets/ds_ok.lance")
    listed = api.get("/api/v1/ingestion-tasks").json()
    assert task["id"] in [t["id"] for t in listed]
    # An ingestion task is not a training task.
    assert_error(api.get(f"/api/v1/training-tasks/{task['id']}"), 404, "TASK_NOT_FOUND")
    log = api.get(f"/api/v1/ingestion-tasks/{task['id']}/logs").text
    assert "hello from exit_ok" in log


def test_same_name_while_running_is_409_and_cancel_ends_failed(api, root: Path):
    body = job("dup", "fixtures/sleep_forever.py", "ds_dup", pid_file=str(root / "dup.pid"))
    first = api.post("/api/v1/ingestion-tasks", json=body).json()
    assert_error(api.post("/api/v1/ingestion-tasks", json=body), 409, "TASK_ALREADY_RUNNING")
    wait_until(lambda: (root / "dup.pid").exists())
    r = api.post(f"/api/v1/ingestion-tasks/{first['id']}/cancel")
    assert r.status_code == 200
    assert r.json()["status"] == "failed" and r.json()["error"]["reason"] == "cancelled"
    assert_error(
        api.post(f"/api/v1/ingestion-tasks/{first['id']}/cancel"), 409, "TASK_ALREADY_FINISHED"
    )


def test_training_on_a_missing_dataset_is_404(api):
    r = api.post("/api/v1/training-tasks", json=job("t", "training/mnist_cnn.py", input="ghost"))
    assert_error(r, 404, "DATASET_NOT_FOUND")


def test_training_runs_on_an_existing_dataset(api):
    ingest = api.post(
        "/api/v1/ingestion-tasks",
        json=job("rows", "fixtures/write_rows.py", "small", rows=4),
    ).json()
    assert wait_job(api, f"/api/v1/ingestion-tasks/{ingest['id']}")["status"] == "completed"
    r = api.post(
        "/api/v1/training-tasks",
        json=job("fit", "fixtures/train_tiny.py", "m1", input="small", epochs=2),
    )
    assert r.status_code == 201, r.text
    done = wait_job(api, f"/api/v1/training-tasks/{r.json()['id']}")
    assert done["id"].startswith("train-") and done["input"] == "small"
    assert done["metrics"] == {"epochs": 2}
    assert [p["epoch"] for p in done["history"]] == [1, 2]


def test_unknown_task_ids(api):
    assert_error(api.get("/api/v1/ingestion-tasks/ingest-000000000000"), 404, "TASK_NOT_FOUND")
    assert_error(api.get("/api/v1/training-tasks/nope"), 404, "TASK_NOT_FOUND")
    assert_error(api.post("/api/v1/training-tasks/nope/cancel"), 404, "TASK_NOT_FOUND")
    assert_error(api.get("/api/v1/ingestion-tasks/a.b/logs"), 400, "INVALID_REQUEST")


def test_invalid_job_requests_are_400(api):
    for body in (
        {},
        job("x y", "fixtures/exit_ok.py"),
        job("x", "../../etc/passwd"),
        job("x", "fixtures/exit_ok.py", output="../escape"),
        job("x", "fixtures/exit_ok.py", input="../../etc"),
        {**job("x", "fixtures/exit_ok.py"), "extra": True},
    ):
        assert_error(api.post("/api/v1/ingestion-tasks", json=body), 400, "INVALID_REQUEST")


def test_datasets_and_models_pass_through_with_the_envelope(api):
    assert isinstance(api.get("/api/v1/datasets").json(), list)
    assert_error(api.get("/api/v1/datasets/ghost"), 404, "DATASET_NOT_FOUND")
    assert_error(api.delete("/api/v1/datasets/ghost"), 404, "DATASET_NOT_FOUND")
    assert_error(api.get("/api/v1/models/ghost"), 404, "MODEL_NOT_FOUND")
    assert_error(api.delete("/api/v1/models/ghost"), 404, "MODEL_NOT_FOUND")
    assert_error(api.get("/api/v1/datasets/bad.name"), 400, "INVALID_REQUEST")
    assert_error(api.get("/api/v1/nothing"), 404, "NOT_FOUND")
    assert_error(api.put("/api/v1/ingestion-tasks"), 405, "METHOD_NOT_ALLOWED")


def test_logs_follow_through_the_ai_platform(api, root: Path):
    body = job("follow", "fixtures/sleep_forever.py", "ds_f", pid_file=str(root / "f.pid"))
    task = api.post("/api/v1/ingestion-tasks", json=body).json()
    received = b""
    path = f"/api/v1/ingestion-tasks/{task['id']}/logs"
    with api.stream("GET", path, params={"follow": True}) as r:
        assert r.status_code == 200
        for chunk in r.iter_bytes():
            received += chunk
            if b"sleeping" in received:
                api.post(f"/api/v1/ingestion-tasks/{task['id']}/cancel")
    assert b"sleeping" in received
    assert_error(
        api.get("/api/v1/ingestion-tasks/ingest-0/logs?follow=true"), 404, "TASK_NOT_FOUND"
    )


def test_task_lists_page_through_the_platform_and_the_sdk_reads_every_page(api, platform):
    from aip import Client

    ids = []
    for i in range(3):
        r = api.post(
            "/api/v1/ingestion-tasks", json=job(f"page{i}", "fixtures/exit_ok.py", f"pg{i}")
        )
        ids.append(wait_job(api, f"/api/v1/ingestion-tasks/{r.json()['id']}")["id"])
    first = api.get("/api/v1/ingestion-tasks", params={"limit": 2, "name": "page2"})
    assert [t["id"] for t in first.json()] == [ids[2]] and "X-Next-Cursor" not in first.headers
    page = api.get("/api/v1/ingestion-tasks", params={"limit": 1})
    assert len(page.json()) == 1 and page.headers["X-Next-Cursor"]
    nxt = api.get(
        "/api/v1/ingestion-tasks", params={"limit": 1, "cursor": page.headers["X-Next-Cursor"]}
    )
    assert nxt.json()[0]["id"] != page.json()[0]["id"]
    with Client(platform.url) as client:
        every = client.http.every("/api/v1/ingestion-tasks", {"limit": 1})  # one per page
        assert {t["id"] for t in every} >= set(ids)
        assert len(every) == len({t["id"] for t in every})
        assert {t.id for t in client.ingestion.list()} >= set(ids)
