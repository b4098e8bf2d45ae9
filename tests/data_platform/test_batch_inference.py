"""Batch inference through the real Data Platform over the 70k MNIST rows: new columns in a
new Lance version, existing data files untouched, cancel leaves the previous version."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import lance
import numpy as np
import pytest

from tests.data_platform.test_errors import assert_error
from tests.lakekit.mnist_fixture import write_mnist_lance
from tests.support import REPO, Server, dp_env, wait_until

MIN_ACCURACY = 0.85  # an MLP after one short epoch on 6000 rows


def data_files(uri: str) -> dict[str, tuple[int, int]]:
    folder = Path(uri) / "data"
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("batch")
    (root / "data").mkdir()
    (root / "lake" / "datasets").mkdir(parents=True)
    (root / "lake" / "models").mkdir()
    uri = write_mnist_lance(root / "lake" / "datasets" / "mnist.lance", 60000, 10000)
    sys.path.insert(0, str(REPO / "scripts" / "training"))
    try:
        import mnist_mlp
    finally:
        sys.path.pop(0)
    params = {"epochs": 1, "limit": 6000, "seed": 1, "threads": 2}
    mnist_mlp.run(uri, str(root / "lake" / "models" / "mlp.lance"), params)
    return root


@pytest.fixture(scope="module")
def dp(lake: Path) -> Iterator[httpx.Client]:
    server = Server("data_platform", dp_env(lake), "DP_PORT", lake / "dp.log").start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            yield client
    finally:
        server.stop()


def submit(dp: httpx.Client, **params) -> dict:
    body = {"kind": "batch_inference", "input": "models/mlp", "output": "datasets/mnist"}
    r = dp.post("/api/v1/tasks", json={**body, "params": params})
    assert r.status_code == 201, r.text
    return r.json()


def wait_done(dp: httpx.Client, task_id: str, timeout: float = 180) -> dict:
    def done() -> dict | None:
        task = dp.get(f"/api/v1/tasks/{task_id}").json()
        return task if task["status"] in ("completed", "failed") else None

    return wait_until(done, timeout, interval=0.2)


def test_batch_inference_adds_columns_without_rewriting_data_files(dp, lake):
    uri = str(lake / "lake" / "datasets" / "mnist.lance")
    before_files = data_files(uri)
    before = lance.dataset(uri)
    task = submit(dp, batch_size=4096)
    assert task["params"]["model_version"] == 1  # pinned at submit
    assert task["input_version"] == 1 and len(task["script_sha256"]) == 64
    done = wait_done(dp, task["id"])
    assert done["status"] == "completed", done["error"]
    result = done["result"]
    assert result["rows"] == 70000 and result["embedding_dim"] == 128
    assert result["model"] == "mlp" and result["model_version"] == 1
    assert done["output_version"] == before.version + 1 == result["dataset_version"]

    after_files = data_files(uri)
    assert {k: after_files[k] for k in before_files} == before_files  # same names, sizes, mtimes
    new_files = set(after_files) - set(before_files)
    assert new_files and result["bytes_written"] == sum(after_files[f][0] for f in new_files)

    ds = lance.dataset(uri)
    assert ds.schema.names == [*before.schema.names, "prediction", "confidence", "embedding"]
    meta = ds.schema.field("embedding").metadata
    assert meta[b"lakeops:model"] == b"mlp" and meta[b"lakeops:model_version"] == b"1"
    assert meta[b"lakeops:layer"] == b"penultimate"
    assert str(ds.schema.field("embedding").type) == "fixed_size_list<item: float>[128]"
    table = ds.to_table(columns=["label", "prediction", "confidence", "split"])
    right = table["label"].to_numpy() == table["prediction"].to_numpy()
    accuracy = float(np.mean(right))
    assert accuracy >= MIN_ACCURACY
    # On the test split the columns agree with the model's own evaluation at training time.
    test = np.array(table["split"].to_pylist()) == "test"
    model = dp.get("/api/v1/models/mlp").json()
    evaluated = right[test][: model["metrics"]["test_rows"]]  # training's limit cut the split too
    assert float(np.mean(evaluated)) == pytest.approx(model["metrics"]["test_accuracy"], abs=1e-3)
    assert result["accuracy"] == pytest.approx(accuracy)
    confidence = table["confidence"].to_numpy()
    assert ((confidence > 0) & (confidence <= 1)).all()
    # The previous version still reads as it was: no new columns there.
    assert lance.dataset(uri, version=before.version).schema.names == before.schema.names
    points = done["history"]
    assert points and points[-1]["fraction"] == 1.0 and points[-1]["rows"] == 70000


def test_a_filter_fills_only_the_rows_it_selects(dp, lake):
    done = wait_done(dp, submit(dp, filter="split = 'test'", prefix="t_")["id"])
    assert done["status"] == "completed", done["error"]
    assert done["result"]["rows"] == 10000
    ds = lance.dataset(str(lake / "lake" / "datasets" / "mnist.lance"))
    table = ds.to_table(columns=["split", "t_prediction", "t_embedding"])
    filled = table["t_prediction"].is_valid().to_numpy(zero_copy_only=False)
    split = np.array(table["split"].to_pylist())
    assert (filled == (split == "test")).all()
    assert table["t_embedding"].null_count == 60000


def test_a_cancelled_run_leaves_the_previous_version(dp, lake):
    uri = str(lake / "lake" / "datasets" / "mnist.lance")
    before = lance.dataset(uri)
    files = data_files(uri)
    task = submit(dp, batch_size=64, prefix="c_")

    def working() -> bool:
        progress = dp.get(f"/api/v1/tasks/{task['id']}").json()["progress"] or {}
        return progress.get("rows", 0) > 0

    wait_until(working, 60, interval=0.1)
    r = dp.post(f"/api/v1/tasks/{task['id']}/cancel")
    assert r.status_code == 200, r.text
    done = wait_done(dp, task["id"])
    assert done["status"] == "failed" and done["error"]["reason"] == "cancelled"
    ds = lance.dataset(uri)
    assert ds.version == before.version and ds.schema.names == before.schema.names
    assert ds.count_rows() == 70000
    kept = data_files(uri)
    assert {k: kept[k] for k in files} == files


def test_bad_batch_inference_requests(dp):
    base = {"kind": "batch_inference", "input": "models/mlp", "output": "datasets/mnist"}
    r = dp.post("/api/v1/tasks", json={**base, "script": "exit_ok.py"})
    assert "omit 'script'" in assert_error(r, 400, "INVALID_REQUEST")["message"]
    r = dp.post("/api/v1/tasks", json={**base, "input": "datasets/mnist"})
    assert "reads 'models/NAME'" in assert_error(r, 400, "INVALID_REQUEST")["message"]
    r = dp.post("/api/v1/tasks", json={**base, "input": "models/nope"})
    assert "nope" in assert_error(r, 404, "MODEL_NOT_FOUND")["message"]
    r = dp.post("/api/v1/tasks", json={"output": "datasets/x"})
    assert "'script' is required" in assert_error(r, 400, "INVALID_REQUEST")["message"]
    failed = wait_done(dp, submit(dp, filter="no_such_column = 1", prefix="f_")["id"])
    assert failed["status"] == "failed" and "bad filter" in failed["error"]["message"]
    failed = wait_done(dp, submit(dp, input_column="nope", prefix="f_")["id"])
    assert failed["status"] == "failed" and "no column 'nope'" in failed["error"]["message"]
