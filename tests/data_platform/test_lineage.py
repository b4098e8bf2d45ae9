"""Lineage and reproduce through the real Data Platform: raw files -> ingestion -> dataset
version -> training -> model version, and a retraining from the same inputs."""

from __future__ import annotations

import hashlib
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.data_platform.test_errors import assert_error
from tests.support import Server, dp_env, wait_until

INGEST = """
import csv
from pathlib import Path

import lance
import pyarrow as pa


def run(input_path, output_path, params):
    rows = []
    for file in sorted(Path(input_path).glob("*.csv")):
        with open(file) as fh:
            rows += [(float(r["x"]), int(r["label"])) for r in csv.DictReader(fh)]
    table = pa.table({"x": [r[0] for r in rows], "label": [r[1] for r in rows]})
    lance.write_dataset(table, output_path, mode=params.get("mode", "create"))
    return {"rows": len(rows)}
"""

TRAIN = """
import torch

from lakekit import datasets
from lakekit.models import save_model


def run(input_path, output_path, params):
    ds = datasets.open_dataset(input_path)
    x = ds.to_table(columns=["x"])["x"].to_numpy()
    torch.manual_seed(int(params.get("seed", 0)))
    network = torch.nn.Linear(2, 2)
    metrics = {"mean": float(x.mean()) * params.get("scale", 1.0), "rows": int(len(x))}
    save_model(output_path, network, torch.zeros(2, 2), params=params, metrics=metrics,
               source=ds)
    return metrics
"""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def scripts(tmp_path: Path) -> Path:
    root = tmp_path / "scripts"
    root.mkdir()
    (root / "ingest.py").write_text(textwrap.dedent(INGEST))
    (root / "train.py").write_text(textwrap.dedent(TRAIN))
    return root


@pytest.fixture
def raw(dp_root: Path) -> Path:
    folder = dp_root / "data" / "raw"
    folder.mkdir()
    (folder / "a.csv").write_text("x,label\n1.0,0\n2.0,1\n")
    (folder / "b.csv").write_text("x,label\n3.0,0\n6.0,1\n")
    return folder


@pytest.fixture
def dp(dp_root: Path, scripts: Path) -> Iterator[httpx.Client]:
    server = Server("data_platform", dp_env(dp_root, scripts), "DP_PORT", dp_root / "dp.log")
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            yield client
    finally:
        server.stop()


def run_task(dp: httpx.Client, **body) -> dict:
    r = dp.post("/api/v1/tasks", json=body)
    assert r.status_code == 201, r.text

    def done() -> dict | None:
        task = dp.get(f"/api/v1/tasks/{r.json()['id']}").json()
        return task if task["status"] in ("completed", "failed") else None

    task = wait_until(done, 90, interval=0.1)
    assert task["status"] == "completed", task["error"]
    return task


@pytest.fixture
def trained(dp: httpx.Client, raw: Path) -> tuple[dict, dict]:
    ingest = run_task(
        dp, kind="ingestion", script="ingest.py", input="raw", output="datasets/points"
    )
    train = run_task(
        dp,
        kind="training",
        script="train.py",
        input="datasets/points",
        output="models/m",
        params={"seed": 3, "scale": 2.0},
    )
    return ingest, train


def test_lineage_goes_from_the_model_version_to_the_raw_files(dp, trained, scripts, raw):
    ingest, train = trained
    r = dp.get("/api/v1/models/m/lineage")
    assert r.status_code == 200, r.text
    lin = r.json()
    assert lin["model"] == "m" and lin["model_version"] == 1
    assert lin["metrics"]["mean"] == 6.0
    assert lin["training"]["id"] == train["id"]
    assert lin["training"]["script"] == "train.py"
    assert lin["training"]["script_sha256"] == sha256(scripts / "train.py")
    assert lin["training"]["params"] == {"seed": 3, "scale": 2.0}
    assert lin["training"]["input_version"] == 1
    assert lin["dataset"] == "points" and lin["dataset_version"] == 1
    (producer,) = lin["producers"]
    assert producer["id"] == ingest["id"] and producer["script"] == "ingest.py"
    assert producer["script_sha256"] == sha256(scripts / "ingest.py")
    assert producer["input_checksums"] == {
        "a.csv": sha256(raw / "a.csv"),
        "b.csv": sha256(raw / "b.csv"),
    }
    assert lin["missing"] == []


def test_lineage_follows_every_writer_of_the_dataset_version(dp, trained):
    ingest, _ = trained
    append = run_task(
        dp,
        kind="ingestion",
        script="ingest.py",
        input="raw",
        output="datasets/points",
        params={"mode": "append"},
    )
    run_task(dp, kind="training", script="train.py", input="datasets/points", output="models/m2")
    lin = dp.get("/api/v1/models/m2/lineage").json()
    assert lin["dataset_version"] == 2
    assert [p["id"] for p in lin["producers"]] == [append["id"], ingest["id"]]
    # The first model still points at the version it was trained on.
    assert [p["id"] for p in dp.get("/api/v1/models/m/lineage").json()["producers"]] == [
        ingest["id"]
    ]


def test_lineage_of_an_unknown_model_is_404(dp):
    assert_error(dp.get("/api/v1/models/nope/lineage"), 404, "MODEL_NOT_FOUND")


def test_reproduce_retrains_into_a_new_version_and_compares_metrics(dp, trained):
    r = dp.post("/api/v1/models/m/reproduce", json={})
    assert r.status_code == 201, r.text
    rep = r.json()
    assert rep["original_version"] == 1 and rep["dataset_version"] == 1
    assert rep["script_changed"] is False and rep["original_metrics"]["mean"] == 6.0
    task = rep["task"]
    assert task["script"] == "train.py" and task["params"] == {"seed": 3, "scale": 2.0}

    def finished() -> dict | None:
        got = dp.get(f"/api/v1/models/m/reproductions/{task['id']}").json()
        return got if got["task"]["status"] in ("completed", "failed") else None

    done = wait_until(finished, 90, interval=0.1)
    assert done["task"]["status"] == "completed", done["task"]["error"]
    assert done["new_version"] == 2 and done["original_version"] == 1
    assert done["new_metrics"]["mean"] == done["original_metrics"]["mean"] == 6.0
    assert done["differences"] == {"mean": 0.0, "rows": 0.0}
    assert dp.get("/api/v1/models/m").json()["version"] == 2


def test_reproduce_refuses_a_changed_script_unless_asked(dp, trained, scripts):
    with open(scripts / "train.py", "a") as fh:
        fh.write("\n# edited after training\n")
    r = dp.post("/api/v1/models/m/reproduce", json={})
    assert "changed" in assert_error(r, 409, "SCRIPT_CHANGED")["message"]
    r = dp.post("/api/v1/models/m/reproduce", json={"use_current_script": True})
    assert r.status_code == 201, r.text
    assert r.json()["script_changed"] is True
    assert r.json()["task"]["script_sha256"] == sha256(scripts / "train.py")


def test_reproduce_needs_the_exact_dataset_version(dp, trained):
    run_task(
        dp,
        kind="ingestion",
        script="ingest.py",
        input="raw",
        output="datasets/points",
        params={"mode": "append"},
    )
    r = dp.post("/api/v1/models/m/reproduce", json={})
    if r.status_code == 201:  # the lake names versions as inputs (datasets/NAME@1)
        assert r.json()["task"]["input"] == "datasets/points@1"
    else:
        assert "version 1" in assert_error(r, 409, "DATASET_CHANGED")["message"]


def test_reproduce_errors(dp, trained):
    assert_error(dp.post("/api/v1/models/nope/reproduce", json={}), 404, "MODEL_NOT_FOUND")
    assert_error(dp.post("/api/v1/models/m/reproduce", json={"bogus": 1}), 400, "INVALID_REQUEST")
    r = dp.get("/api/v1/models/m/reproductions/task-nope")
    assert_error(r, 404, "TASK_NOT_FOUND")
