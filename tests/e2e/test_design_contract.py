"""Every example of the design (steps 1-7 of 4.2, and 3.2) against the real services.

A client written from the design must find each field of its examples where the design puts
it; the platform's own fields come on top. Each example below is the design's response, as
printed there; the test checks that every key of it (recursively, for objects) is in the real
answer, with a value of the same JSON type. Where a request differs from the design's, the
difference is written beside it (and in docs/design-mapping.md).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from lakestack.demo import load_test_digits
from tests.ai_platform.test_jobs import wait_job
from tests.support import PlatformServers

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# The design's example answers (4.2 steps 1-7, 3.2), values as printed there.
STEP1 = {
    "id": "ingest-001",
    "name": "mnist_ingestion",
    "status": "running",
    "created_at": "2026-02-10T10:00:00Z",
    "output": "mnist_clean",
}
STEP2 = {
    **STEP1,
    "status": "completed",
    "completed_at": "2026-02-10T10:01:30Z",
    "stats": {"total_records": 70000, "train_records": 60000, "test_records": 10000},
}
STEP3 = {
    "id": "mnist_clean",
    "created_at": "2026-02-10T10:01:30Z",
    "storage_path": "lance_storage/datasets/mnist_clean.lance",
    "schema": {"image": "binary", "label": "int64", "split": "string"},
    "stats": {"total_records": 70000, "size_bytes": 52428800},
}
STEP4 = {
    "id": "train-001",
    "name": "mnist_cnn_v1",
    "status": "running",
    "created_at": "2026-02-10T10:05:00Z",
}
STEP5 = {
    **STEP4,
    "status": "completed",
    "completed_at": "2026-02-10T10:12:00Z",
    "output": "mnist_cnn_v1",
    "metrics": {"train_loss": 0.032, "test_accuracy": 0.987},
}
STEP6 = {
    "id": "serve-001",
    "name": "mnist_predictor",
    "status": "running",
    "endpoint": "http://localhost:8080",
    "created_at": "2026-02-10T10:15:00Z",
}
STEP7 = {"prediction": 7, "confidence": 0.983, "probabilities": [0.001] * 10}
DP_SUBMIT = {"id": "task-001", "status": "running", "created_at": "2026-02-10T10:00:00Z"}
DP_STATUS = {
    **DP_SUBMIT,
    "status": "completed",
    "completed_at": "2026-02-10T10:01:30Z",
    "result": {"total_records": 70000},
}
DP_DATASET = {
    "id": "mnist_clean",
    "path": "lance_storage/datasets/mnist_clean.lance",
    "schema": {"image": "binary", "label": "int64", "split": "string"},
    "num_rows": 70000,
    "size_bytes": 52428800,
}
ERROR = {"error": {"code": "DATASET_NOT_FOUND", "message": "Dataset 'mnist_clean' does not exist"}}


def missing_fields(example: Any, answer: Any, where: str = "") -> list[str]:
    """The places where ``answer`` lacks a key of ``example`` or holds another JSON type."""
    if isinstance(example, dict):
        if not isinstance(answer, dict):
            return [f"{where or '.'}: an object expected, got {answer!r:.60}"]
        problems = []
        for key, value in example.items():
            if key not in answer:
                problems.append(f"{where}.{key}: missing")
            else:
                problems += missing_fields(value, answer[key], f"{where}.{key}")
        return problems
    if isinstance(example, list):
        ok = isinstance(answer, list) and len(answer) == len(example)
        return [] if ok else [f"{where}: a list of {len(example)} expected"]
    kinds: dict[type, tuple[type, ...]] = {
        str: (str,),
        bool: (bool,),
        int: (int,),
        float: (float, int),
    }
    expected = kinds[type(example)]
    if not isinstance(answer, expected) or (expected != (bool,) and isinstance(answer, bool)):
        return [f"{where}: {type(example).__name__} expected, got {answer!r:.60}"]
    return []


def assert_design_fields(example: dict[str, Any], answer: Any) -> None:
    assert not missing_fields(example, answer), (missing_fields(example, answer), answer)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformServers]:
    servers = PlatformServers(Path(tmp_path_factory.mktemp("design"))).start()
    yield servers
    servers.stop()


def test_the_designs_examples_hold_field_for_field(platform: PlatformServers):
    with httpx.Client(base_url=platform.url, timeout=120) as api:
        # Step 1. The design's input "/data/raw/mnist/" is a path under the data root here.
        r = api.post(
            "/api/v1/ingestion-tasks",
            json={
                "name": "mnist_ingestion",
                "input": "raw/mnist",
                "script": "pipelines/mnist_clean.py",
                "params": {"normalize": True, "flatten": True},
                "output": "mnist_clean",
            },
        )
        assert r.status_code == 201, r.text
        assert_design_fields(STEP1, r.json())
        # Step 2.
        step2 = wait_job(api, f"/api/v1/ingestion-tasks/{r.json()['id']}", timeout=300)
        assert step2["status"] == "completed", step2
        assert_design_fields(STEP2, step2)
        # Step 3.
        r = api.get("/api/v1/datasets/mnist_clean")
        assert r.status_code == 200
        assert_design_fields(STEP3, r.json())
        assert r.json()["stats"]["total_records"] == 70000
        # Step 4. The design's script "training/mnist_cnn.py"; a short run keeps CI quick.
        r = api.post(
            "/api/v1/training-tasks",
            json={
                "name": "mnist_cnn_v1",
                "input": "mnist_clean",
                "script": "training/mnist_cnn.py",
                "params": {
                    "epochs": 1,
                    "learning_rate": 0.001,
                    "batch_size": 64,
                    "device": "cpu",
                    "limit": 3000,
                },
                "output": "mnist_cnn_v1",
            },
        )
        assert r.status_code == 201, r.text
        assert_design_fields(STEP4, r.json())
        # Step 5.
        step5 = wait_job(api, f"/api/v1/training-tasks/{r.json()['id']}", timeout=600)
        assert step5["status"] == "completed", step5
        assert_design_fields(STEP5, step5)
        # Step 6. Port 8080 as in the design would clash on a shared machine: a free one.
        r = api.post(
            "/api/v1/inference-services",
            json={"name": "mnist_predictor", "model": "mnist_cnn_v1", "device": "cpu", "port": 0},
        )
        assert r.status_code == 201, r.text
        assert_design_fields(STEP6, r.json())
        # Step 7.
        image = load_test_digits(1)[0][0]
        buf = io.BytesIO()
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buf, format="PNG")
        r = api.post(
            f"/api/v1/inference-services/{r.json()['id']}/predict",
            json={"image": base64.b64encode(buf.getvalue()).decode()},
        )
        assert r.status_code == 200, r.text
        assert_design_fields(STEP7, r.json())
        # 4.4: the error envelope.
        r = api.get("/api/v1/datasets/no_such_dataset")
        assert r.status_code == 404
        assert_design_fields(ERROR, r.json())
        assert r.json()["error"]["code"] == "DATASET_NOT_FOUND"

    # 3.2, the Data Platform's own API. Its output is a lake name, not a path.
    with httpx.Client(base_url=platform.dp.url, timeout=60) as dp:
        r = dp.post(
            "/api/v1/tasks",
            json={
                "script": "pipelines/mnist_clean.py",
                "input": "raw/mnist",
                "output": "datasets/mnist_clean_dp",
                "params": {"normalize": True, "flatten": True},
            },
        )
        assert r.status_code == 201, r.text
        assert_design_fields(DP_SUBMIT, r.json())
        status = wait_job(dp, f"/api/v1/tasks/{r.json()['id']}", timeout=300)
        assert status["status"] == "completed", status
        assert_design_fields(DP_STATUS, status)
        r = dp.get("/api/v1/datasets")
        assert r.status_code == 200 and r.json()
        for dataset in r.json():
            assert_design_fields(DP_DATASET, dataset)


def test_the_field_check_itself_finds_what_is_missing():
    answer = {"id": "x", "stats": {"total_records": 3}, "status": 1, "probabilities": [0.5]}
    example = {
        "id": "a",
        "stats": {"total_records": 1, "size_bytes": 2},
        "status": "s",
        "probabilities": [0.1, 0.9],
        "created_at": "t",
    }
    assert sorted(missing_fields(example, answer)) == [
        ".created_at: missing",
        ".probabilities: a list of 2 expected",
        ".stats.size_bytes: missing",
        ".status: str expected, got 1",
    ]
