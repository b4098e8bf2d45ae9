"""Exact versions and tags as task inputs, write modes, provenance and delete refusals,
through a real Data Platform whose scripts read and write with ``lakekit`` only."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import Server, dp_env, wait_until

WRITE = """
from lakekit import datasets
import pyarrow as pa


def run(input_path, output_path, params):
    rows = int(params.get("rows", 3))
    table = pa.table({"x": list(range(rows)), "tag": [params.get("tag", "new")] * rows})
    ds = datasets.write_dataset(table, output_path)
    return {"rows": ds.count_rows(), "version": ds.version}
"""

TRAIN = """
from lakekit import datasets
from lakekit.models import save_model


def run(input_path, output_path, params):
    import torch

    ds = datasets.open_dataset(input_path)
    table = datasets.read_table(ds)
    torch.manual_seed(0)
    save_model(output_path, torch.nn.Linear(4, 2), torch.zeros(2, 4), params=params,
               source=ds, metrics={"rows": table.num_rows})
    return {"rows": table.num_rows, "tags": sorted(set(table.column("tag").to_pylist())),
            "version": ds.version}
"""


@pytest.fixture
def scripts(tmp_path: Path) -> Path:
    root = tmp_path / "scripts"
    root.mkdir()
    (root / "write.py").write_text(WRITE)
    (root / "train.py").write_text(TRAIN)
    return root


@pytest.fixture
def dp(tmp_path: Path, scripts: Path) -> Iterator[httpx.Client]:
    (tmp_path / "data").mkdir()
    server = Server("data_platform", dp_env(tmp_path, scripts), "DP_PORT", tmp_path / "dp.log")
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            yield client
    finally:
        server.stop()


def run_task(dp: httpx.Client, script: str, output: str, **body) -> dict:
    r = dp.post("/api/v1/tasks", json={"script": script, "output": output, **body})
    assert r.status_code == 201, r.text

    def done():
        task = dp.get(f"/api/v1/tasks/{r.json()['id']}").json()
        return task if task["status"] in ("completed", "failed") else None

    task = wait_until(done, 120)
    assert task["status"] == "completed", task
    return task


def error(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    return r.json()["error"]


def test_training_on_a_version_after_overwrite_reads_the_old_rows(dp, scripts):
    run_task(dp, "write.py", "datasets/d", params={"rows": 3, "tag": "old"})
    r = dp.post("/api/v1/datasets/d/tags", json={"tag": "baseline", "version": 1})
    assert r.status_code == 201 and r.json()["version"] == 1, r.text
    run_task(dp, "write.py", "datasets/d", params={"rows": 5, "tag": "new"})
    assert dp.get("/api/v1/datasets/d").json()["num_rows"] == 5

    for ref in ("datasets/d@1", "datasets/d@baseline"):
        task = run_task(dp, "train.py", "models/m", input=ref, params={"lr": 0.1})
        assert task["result"] == {"rows": 3, "tags": ["old"], "version": 1}
        assert task["input"] == ref and task["input_version"] == 1
        assert task["input_path"].endswith("d.lance?version=1")
    # A plain name is pinned too: to the latest version at submit, named in the record.
    latest = run_task(dp, "train.py", "models/m", input="datasets/d")
    assert latest["result"]["rows"] == 5 and latest["input_version"] == 2

    model = dp.get("/api/v1/models/m").json()
    assert model["version"] == 3 and model["source"]["version"] == 2
    assert model["source"]["path"].endswith("d.lance")  # the plain URI, not the pinned one
    sha = hashlib.sha256((scripts / "train.py").read_bytes()).hexdigest()
    assert model["provenance"] == {
        "task_id": latest["id"],
        "script": str(scripts / "train.py"),
        "script_sha256": sha,
    }
    versions = dp.get("/api/v1/models/m/versions").json()
    assert [v["version"] for v in versions] == [1, 2, 3]
    assert [v["source"]["version"] for v in versions] == [1, 1, 2]
    assert versions[0]["params"] == {"lr": 0.1} and versions[0]["metrics"] == {"rows": 3}
    assert versions[0]["provenance"]["script_sha256"] == sha
    # Each trained model version pins the dataset version it read.
    assert dp.get("/api/v1/datasets/d").json()["tags"] == {
        "baseline": 1,
        "model-m-v1": 1,
        "model-m-v2": 1,
        "model-m-v3": 2,
    }


def test_a_missing_version_or_tag_is_404_with_its_code(dp):
    run_task(dp, "write.py", "datasets/d")
    body = {"script": "train.py", "output": "models/m"}
    r = dp.post("/api/v1/tasks", json={**body, "input": "datasets/d@7"})
    assert error(r, 404)["code"] == "VERSION_NOT_FOUND"
    assert "no version 7" in r.json()["error"]["message"]
    r = dp.post("/api/v1/tasks", json={**body, "input": "datasets/d@gone"})
    assert error(r, 404)["code"] == "TAG_NOT_FOUND"
    r = dp.post("/api/v1/tasks", json={**body, "input": "datasets/nope@1"})
    assert error(r, 404)["code"] == "DATASET_NOT_FOUND"
    r = dp.post("/api/v1/tasks", json={**body, "input": "datasets/d@0"})
    assert error(r, 400)["code"] == "INVALID_REQUEST"
    r = dp.post("/api/v1/tasks", json={**body, "input": "datasets/d", "output": "models/m@2"})
    assert error(r, 400)["code"] == "INVALID_REQUEST"


def test_write_modes_create_refuses_an_existing_output_and_append_adds_rows(dp):
    run_task(dp, "write.py", "datasets/d", mode="create", params={"rows": 2})
    r = dp.post(
        "/api/v1/tasks", json={"script": "write.py", "output": "datasets/d", "mode": "create"}
    )
    assert error(r, 409)["code"] == "ALREADY_EXISTS"
    appended = run_task(dp, "write.py", "datasets/d", mode="append", params={"rows": 3})
    assert appended["mode"] == "append" and appended["result"] == {"rows": 5, "version": 2}
    replaced = run_task(dp, "write.py", "datasets/d", params={"rows": 1})
    assert replaced["mode"] == "overwrite" and replaced["result"] == {"rows": 1, "version": 3}
    r = dp.post(
        "/api/v1/tasks",
        json={"script": "train.py", "input": "datasets/d", "output": "models/m", "mode": "append"},
    )
    assert error(r, 400)["code"] == "INVALID_REQUEST"
    r = dp.post(
        "/api/v1/tasks", json={"script": "write.py", "output": "datasets/d", "mode": "replace"}
    )
    assert error(r, 400)["code"] == "INVALID_REQUEST"


def test_deleting_a_dataset_a_model_was_trained_on_is_refused_unless_forced(dp):
    run_task(dp, "write.py", "datasets/d")
    run_task(dp, "train.py", "models/m", input="datasets/d")
    err = error(dp.delete("/api/v1/datasets/d"), 409)
    assert err["code"] == "IN_USE" and "model m version 1 (trained on version 1)" in err["message"]
    assert dp.get("/api/v1/datasets/d").status_code == 200
    assert dp.delete("/api/v1/datasets/d", params={"force": "true"}).status_code == 204
    assert error(dp.get("/api/v1/datasets/d"), 404)["code"] == "DATASET_NOT_FOUND"
