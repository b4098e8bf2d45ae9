"""The new example scripts run as tasks of a real Data Platform process (its own executor, its
own child processes), and what they save is a servable model record."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lakekit import models
from tests.scripts.test_sequence import sequence_model
from tests.scripts.test_tabular import CSV
from tests.support import Server, dp_env, make_scripts_root, wait_until


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, Path]]:
    root = tmp_path_factory.mktemp("platform")
    raw = root / "data" / "raw" / "tabular"
    raw.mkdir(parents=True)
    shutil.copy(CSV, raw / CSV.name)  # a copy: a link leading out of the data root is refused
    scripts = make_scripts_root(root)
    server = Server("data_platform", dp_env(root, scripts), "DP_PORT", root / "dp.log").start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            yield client, root / "lake"
    finally:
        server.stop()


def run_task(dp: httpx.Client, **body: Any) -> dict[str, Any]:
    r = dp.post("/api/v1/tasks", json=body)
    assert r.status_code == 201, r.text

    def done() -> dict[str, Any] | None:
        task = dp.get(f"/api/v1/tasks/{r.json()['id']}").json()
        return task if task["status"] in ("completed", "failed") else None

    task = wait_until(done, timeout=180, interval=0.2)
    logs = dp.get(f"/api/v1/tasks/{task['id']}/logs", params={"tail": 30}).text
    assert task["status"] == "completed", (task, logs)
    return task


def test_csv_to_lance_to_a_tabular_model(platform: tuple[httpx.Client, Path]) -> None:
    dp, _ = platform
    ingest = run_task(
        dp,
        script="pipelines/csv_clean.py",
        input="raw/tabular/machine_health.csv",
        output="datasets/machine_health",
        kind="ingestion",
    )
    assert ingest["result"]["rows_written"] == 2883
    dataset = dp.get("/api/v1/datasets/machine_health").json()
    assert dataset["num_rows"] == 2883

    train = run_task(
        dp,
        script="training/tabular_mlp.py",
        input="datasets/machine_health",
        output="models/machine_health_mlp",
        params={"epochs": 3, "threads": 1},
        kind="training",
    )
    assert train["result"]["test_accuracy"] > 0.85
    assert [p["epoch"] for p in train["history"]] == [1, 2, 3]
    model = dp.get("/api/v1/models/machine_health_mlp").json()
    assert model["source"]["version"] == dataset["version"]
    assert model["signature"]["inputs"] == [
        {"name": "features", "dtype": "float32", "shape": [-1, 8]}
    ]
    assert model["labels"] == ["faulty", "ok", "worn"]
    assert models.check_model_record(model["path"], load=True) is None


def test_a_sequence_model_trains_as_a_task(platform: tuple[httpx.Client, Path]) -> None:
    dp, lake = platform
    (lake / "datasets").mkdir(parents=True, exist_ok=True)
    sequence_model.make_dataset(str(lake / "datasets" / "waves.lance"), n=400, length=32)
    run_task(
        dp,
        script="training/sequence_model.py",
        input="datasets/waves",
        output="models/waves_model",
        params={"epochs": 2, "threads": 1},
        kind="training",
    )
    model = dp.get("/api/v1/models/waves_model").json()
    assert [o["name"] for o in model["signature"]["outputs"]] == ["logits", "frequency"]
    assert model["signature"]["inputs"][0]["shape"] == [-1, -1]
    assert models.check_model_record(model["path"]) is None
