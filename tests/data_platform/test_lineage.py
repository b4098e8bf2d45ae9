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


# One Data Platform serves the module: a server start and each task's torch import cost
# seconds on 2 busy cores. A test that changes a model or a script builds its own chain
# (its own names), so the shared one stays as the read-only tests expect it.


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lineage")
    (root / "data").mkdir()
    return root


@pytest.fixture(scope="module")
def scripts(root: Path) -> Path:
    folder = root / "scripts"
    folder.mkdir()
    (folder / "ingest.py").write_text(textwrap.dedent(INGEST))
    (folder / "train.py").write_text(textwrap.dedent(TRAIN))
    return folder


@pytest.fixture(scope="module")
def raw(root: Path) -> Path:
    folder = root / "data" / "raw"
    folder.mkdir()
    (folder / "a.csv").write_text("x,label\n1.0,0\n2.0,1\n")
    (folder / "b.csv").write_text("x,label\n3.0,0\n6.0,1\n")
    return folder


@pytest.fixture(scope="module")
def dp(root: Path, scripts: Path) -> Iterator[httpx.Client]:
    server = Server("data_platform", dp_env(root, scripts), "DP_PORT", root / "dp.log")
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


def ingest(dp: httpx.Client, dataset: str, mode: str = "create") -> dict:
    """The raw files into ``datasets/DATASET`` (``mode``: Lance's write mode)."""
    return run_task(
        dp,
        kind="ingestion",
        script="ingest.py",
        input="raw",
        output=f"datasets/{dataset}",
        params={"mode": mode},
    )


def chain(
    dp: httpx.Client, dataset: str, model: str, script: str = "train.py"
) -> tuple[dict, dict]:
    """Raw files -> ingestion -> ``datasets/DATASET`` -> training -> ``models/MODEL``."""
    ingest_task = ingest(dp, dataset)
    train = run_task(
        dp,
        kind="training",
        script=script,
        input=f"datasets/{dataset}",
        output=f"models/{model}",
        params={"seed": 3, "scale": 2.0},
    )
    return ingest_task, train


@pytest.fixture(scope="module")
def trained(dp: httpx.Client, raw: Path) -> tuple[dict, dict]:
    return chain(dp, "points", "m")


def wait_reproduction(dp: httpx.Client, model: str, task_id: str) -> dict:
    def finished() -> dict | None:
        got = dp.get(f"/api/v1/models/{model}/reproductions/{task_id}").json()
        return got if got["task"]["status"] in ("completed", "failed") else None

    done = wait_until(finished, 90, interval=0.1)
    assert done["task"]["status"] == "completed", done["task"]["error"]
    return done


def test_lineage_goes_from_the_model_version_to_the_raw_files(dp, trained, scripts, raw):
    first, train = trained
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
    assert producer["id"] == first["id"] and producer["script"] == "ingest.py"
    assert producer["script_sha256"] == sha256(scripts / "ingest.py")
    assert producer["input_checksums"] == {
        "a.csv": sha256(raw / "a.csv"),
        "b.csv": sha256(raw / "b.csv"),
    }
    assert lin["missing"] == []


def test_lineage_follows_every_writer_of_the_dataset_version(dp, trained):
    first, _ = trained
    append = ingest(dp, "points", "append")
    run_task(dp, kind="training", script="train.py", input="datasets/points", output="models/m2")
    lin = dp.get("/api/v1/models/m2/lineage").json()
    assert lin["dataset_version"] == 2
    assert [p["id"] for p in lin["producers"]] == [append["id"], first["id"]]
    # The first model still points at the version it was trained on.
    assert [p["id"] for p in dp.get("/api/v1/models/m/lineage").json()["producers"]] == [
        first["id"]
    ]


def test_lineage_of_an_unknown_model_is_404(dp):
    assert_error(dp.get("/api/v1/models/nope/lineage"), 404, "MODEL_NOT_FOUND")


def test_reproduce_retrains_into_a_new_version_and_compares_metrics(dp, raw):
    chain(dp, "points_r", "m_r")
    r = dp.post("/api/v1/models/m_r/reproduce", json={})
    assert r.status_code == 201, r.text
    rep = r.json()
    assert rep["original_version"] == 1 and rep["dataset_version"] == 1
    assert rep["script_changed"] is False and rep["original_metrics"]["mean"] == 6.0
    task = rep["task"]
    assert task["script"] == "train.py" and task["params"] == {"seed": 3, "scale": 2.0}
    done = wait_reproduction(dp, "m_r", task["id"])
    assert done["new_version"] == 2 and done["original_version"] == 1
    assert done["new_metrics"]["mean"] == done["original_metrics"]["mean"] == 6.0
    assert done["differences"] == {"mean": 0.0, "rows": 0.0}
    assert dp.get("/api/v1/models/m_r").json()["version"] == 2


def test_reproduce_refuses_a_changed_script_unless_asked(dp, raw, scripts):
    (scripts / "train_s.py").write_text(textwrap.dedent(TRAIN))
    chain(dp, "points_s", "m_s", script="train_s.py")
    with open(scripts / "train_s.py", "a") as fh:
        fh.write("\n# edited after training\n")
    r = dp.post("/api/v1/models/m_s/reproduce", json={})
    assert "changed" in assert_error(r, 409, "SCRIPT_CHANGED")["message"]
    r = dp.post("/api/v1/models/m_s/reproduce", json={"use_current_script": True})
    assert r.status_code == 201, r.text
    assert r.json()["script_changed"] is True
    assert r.json()["task"]["script_sha256"] == sha256(scripts / "train_s.py")
    wait_reproduction(dp, "m_s", r.json()["task"]["id"])  # no task left running


def test_reproduce_reads_the_exact_dataset_version_then_409_once_it_is_gone(dp, raw):
    chain(dp, "points_o", "m_o")
    overwrite = ingest(dp, "points_o", "overwrite")
    ingest(dp, "points_o", "append")
    # The latest version now holds the rows twice; version 1 still holds them once.
    assert overwrite["output_version"] == 2
    assert dp.get("/api/v1/datasets/points_o").json()["num_rows"] == 8
    r = dp.post("/api/v1/models/m_o/reproduce", json={})
    assert r.status_code == 201, r.text
    assert r.json()["task"]["input"] == "datasets/points_o@1"
    assert r.json()["dataset_version"] == 1
    done = wait_reproduction(dp, "m_o", r.json()["task"]["id"])
    assert done["task"]["input_version"] == 1
    assert done["new_metrics"]["rows"] == done["original_metrics"]["rows"] == 4
    assert done["differences"] == {"mean": 0.0, "rows": 0.0}
    # Once that version is gone (here the dataset is deleted), reproducing is refused.
    assert dp.delete("/api/v1/datasets/points_o", params={"force": "true"}).status_code == 204
    r = dp.post("/api/v1/models/m_o/reproduce", json={})
    message = assert_error(r, 409, "DATASET_CHANGED")["message"]
    assert "version 1" in message and "no longer exists" in message


def test_reproduce_errors(dp, trained):
    assert_error(dp.post("/api/v1/models/nope/reproduce", json={}), 404, "MODEL_NOT_FOUND")
    assert_error(dp.post("/api/v1/models/m/reproduce", json={"bogus": 1}), 400, "INVALID_REQUEST")
    r = dp.get("/api/v1/models/m/reproductions/task-nope")
    assert_error(r, 404, "TASK_NOT_FOUND")
