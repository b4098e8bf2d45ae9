"""A user's CSV to predictions through the platform, with no serving code for its shape.

Real services on free ports: ingestion of ``raw/tabular/machine_health.csv`` with
``pipelines/csv_clean.py``, training with ``training/tabular_mlp.py``, a service for the model,
predictions via the Open Inference Protocol (tritonclient, through the platform route) and via
the JSON convenience on ``/predict``; then a model of a third shape (``sequence_model.py``:
one variable-length input, two outputs) served and queried by the same code.
"""

from __future__ import annotations

import csv
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton

from tests.ai_platform.test_jobs import wait_job
from tests.support import REPO, PlatformServers

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
SERVICES = "/api/v1/inference-services"
CSV = REPO / "data" / "raw" / "tabular" / "machine_health.csv"
FEATURES = [
    "temperature_c", "vibration_mm_s", "pressure_kpa", "rpm",
    "current_a", "voltage_v", "humidity_pct", "age_days",
]  # fmt: skip


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformServers]:
    root = tmp_path_factory.mktemp("tabular")
    shutil.copytree(CSV.parent, root / "data" / "raw" / "tabular")
    servers = PlatformServers(root).start()
    yield servers
    servers.stop()


@pytest.fixture(scope="module")
def api(platform: PlatformServers) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=platform.url, timeout=120) as client:
        yield client


def run_task(api: httpx.Client, kind: str, body: dict) -> dict:
    r = api.post(f"/api/v1/{kind}-tasks", json=body)
    assert r.status_code == 201, r.text
    task = wait_job(api, f"/api/v1/{kind}-tasks/{r.json()['id']}", timeout=600)
    assert task["status"] == "completed", task["error"]
    return task


def serve(api: httpx.Client, name: str, model: str) -> dict:
    r = api.post(SERVICES, json={"name": name, "model": model})
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "running"
    return r.json()


@pytest.fixture(scope="module")
def tabular(api: httpx.Client) -> dict:
    """Ingest the CSV, train the MLP on it, serve the model."""
    ingest = run_task(
        api,
        "ingestion",
        {
            "name": "machine_health_ingestion",
            "input": "raw/tabular/machine_health.csv",
            "script": "pipelines/csv_clean.py",
            "output": "machine_health",
        },
    )
    assert ingest["stats"]["rows_written"] == 2883 and ingest["stats"]["rows_dropped"] == 117
    run_task(
        api,
        "training",
        {
            "name": "machine_health_mlp",
            "input": "machine_health",
            "script": "training/tabular_mlp.py",
            "params": {"epochs": 10, "threads": 1},
            "output": "machine_health_mlp",
        },
    )
    return serve(api, "pumps", "machine_health_mlp")


def csv_rows(count: int) -> tuple[np.ndarray, list[str]]:
    """The first complete, cleanly labelled rows of the CSV, as a user would send them."""
    features, labels = [], []
    with CSV.open() as fh:
        for row in csv.DictReader(fh):
            if all(row[f] for f in FEATURES) and row["status"] in ("ok", "worn", "faulty"):
                features.append([float(row[f]) for f in FEATURES])
                labels.append(row["status"])
            if len(labels) == count:
                break
    return np.asarray(features, np.float32), labels


def oip(platform: PlatformServers, service: str) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url=f"{platform.url[7:]}{SERVICES}/{service}")


def test_the_tabular_model_answers_via_oip_and_json_alike(api, platform, tabular):
    # The record's labels, as the model server reads them (the class ids' order).
    labels = httpx.get(f"{tabular['endpoint']}/v1/model", timeout=10).json()["labels"]
    assert sorted(labels) == ["faulty", "ok", "worn"]
    x, truth = csv_rows(200)
    with oip(platform, "pumps") as client:
        assert client.is_model_ready("pumps")
        meta = client.get_model_metadata("pumps")
        assert meta["inputs"] == [
            {"name": "features", "datatype": "FP32", "shape": [-1, len(FEATURES)]}
        ]
        tensor = triton.InferInput("features", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        logits = client.infer("pumps", [tensor]).as_numpy("logits")
    assert logits.shape == (len(x), 3)
    r = api.post(f"{SERVICES}/pumps/predict", json={"inputs": x.tolist()})
    assert r.status_code == 200, r.text
    answer = r.json()
    np.testing.assert_allclose(logits, answer["outputs"]["logits"], atol=1e-5)
    predicted = [p["prediction"] for p in answer["predictions"]]
    assert predicted == [labels[i] for i in logits.argmax(axis=1)]
    assert np.mean([p == t for p, t in zip(predicted, truth, strict=True)]) > 0.8
    # Named inputs, one row: the same answer.
    one = api.post(f"{SERVICES}/pumps/predict", json={"inputs": {"features": [x[0].tolist()]}})
    assert one.status_code == 200 and one.json()["predictions"][0]["prediction"] == predicted[0]


def test_a_third_shape_is_served_by_the_same_code(api, platform, tabular):
    """A sequence model (variable length in, two outputs): no serving code of its own."""
    sys.path.insert(0, str(REPO / "scripts" / "training"))
    try:
        import sequence_model
    finally:
        sys.path.pop(0)
    lake = Path(platform.dp.env["DP_LAKE_ROOT"])
    sequence_model.make_dataset(str(lake / "datasets" / "waves.lance"), n=600)
    run_task(
        api,
        "training",
        {
            "name": "waves_train",
            "input": "waves",
            "script": "training/sequence_model.py",
            "params": {"epochs": 3, "threads": 1},
            "output": "waves_model",
        },
    )
    serve(api, "waves", "waves_model")
    x, _, _ = sequence_model.waves(4, 40, seed=5)
    with oip(platform, "waves") as client:
        meta = client.get_model_metadata("waves")
        assert [i["shape"] for i in meta["inputs"]] == [[-1, -1]]
        assert {o["name"] for o in meta["outputs"]} == {"logits", "frequency"}
        tensor = triton.InferInput("series", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x.astype(np.float32), binary_data=False)
        result = client.infer("waves", [tensor])
        logits, frequency = result.as_numpy("logits"), result.as_numpy("frequency")
    assert logits.shape == (4, 3) and frequency.shape == (4,)
    r = api.post(f"{SERVICES}/waves/predict", json={"inputs": {"series": x.tolist()}})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(logits, r.json()["outputs"]["logits"], atol=1e-5)
    np.testing.assert_allclose(frequency, r.json()["outputs"]["frequency"], atol=1e-5)
    for service in ("waves", "pumps"):
        assert api.delete(f"{SERVICES}/{service}").status_code == 204
