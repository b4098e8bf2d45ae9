"""Every error of the Data Platform answers the envelope with the right code."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from data_platform.app import create_app
from data_platform.settings import DataPlatformSettings


def assert_error(r, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


def test_unknown_ids_are_404_with_their_codes(dp):
    assert_error(dp.get("/api/v1/datasets/nope"), 404, "DATASET_NOT_FOUND")
    assert_error(dp.delete("/api/v1/datasets/nope"), 404, "DATASET_NOT_FOUND")
    assert_error(dp.get("/api/v1/models/nope"), 404, "MODEL_NOT_FOUND")
    assert_error(dp.delete("/api/v1/models/nope"), 404, "MODEL_NOT_FOUND")
    assert_error(dp.get("/api/v1/tasks/nope"), 404, "TASK_NOT_FOUND")
    assert_error(dp.post("/api/v1/tasks/nope/cancel"), 404, "TASK_NOT_FOUND")
    assert_error(dp.get("/api/v1/tasks/nope/logs"), 404, "TASK_NOT_FOUND")


def test_unknown_route_404_and_wrong_method_405(dp):
    assert_error(dp.get("/api/v1/nothing"), 404, "NOT_FOUND")
    assert_error(dp.put("/api/v1/tasks"), 405, "METHOD_NOT_ALLOWED")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"script": "exit_ok.py"},
        {"script": 5, "output": "datasets/x"},
        {"script": "exit_ok.py", "output": "datasets/x", "params": "no"},
        {"script": "exit_ok.py", "output": "datasets/x", "surprise": 1},
        {"script": "exit_ok.py", "output": "elsewhere/x"},
        {"script": "exit_ok.py", "output": "datasets/../x"},
        {"script": "exit_ok.py", "output": "datasets/a.b"},
        {"script": "exit_ok.py", "output": "datasets/x", "input": "../../etc"},
        {"script": "exit_ok.py", "output": "datasets/x", "input": "/etc"},
        {"script": "exit_ok.py", "output": "datasets/x", "input": "missing/dir"},
        {"script": "exit_ok.py", "output": "datasets/x", "id": "has/slash"},
    ],
)
def test_invalid_submissions_are_400_not_422(dp, body):
    assert_error(dp.post("/api/v1/tasks", json=body), 400, "INVALID_REQUEST")


def test_malformed_json_is_400(dp):
    r = dp.post("/api/v1/tasks", content=b"{bad", headers={"content-type": "application/json"})
    assert_error(r, 400, "INVALID_REQUEST")


def test_input_dataset_that_does_not_exist_is_404(dp):
    r = dp.post(
        "/api/v1/tasks",
        json={"script": "exit_ok.py", "input": "datasets/ghost", "output": "models/m"},
    )
    assert_error(r, 404, "DATASET_NOT_FOUND")


def test_bad_ids_in_paths_are_400(dp):
    assert_error(dp.get("/api/v1/datasets/a.b"), 400, "INVALID_REQUEST")
    assert_error(dp.get("/api/v1/models/.hidden"), 400, "INVALID_REQUEST")
    # An encoded slash becomes a path with more segments: no such route, still the envelope.
    assert_error(dp.get("/api/v1/datasets/..%2f..%2fetc"), 404, "NOT_FOUND")


def test_duplicate_task_id_is_409(dp):
    body = {"script": "exit_ok.py", "output": "datasets/x", "id": "mine-1"}
    assert dp.post("/api/v1/tasks", json=body).status_code == 201
    assert_error(dp.post("/api/v1/tasks", json=body), 409, "TASK_ALREADY_EXISTS")


def test_unexpected_exception_is_500_without_traceback(tmp_path):
    app = create_app(DataPlatformSettings(lake_root=tmp_path / "lake"))

    def boom() -> None:
        raise RuntimeError("secret internals")

    app.add_api_route("/boom", boom)  # a route that fails the way a bug would
    with TestClient(app, raise_server_exceptions=False) as client:
        error = assert_error(client.get("/boom"), 500, "INTERNAL_ERROR")
    assert "secret" not in error["message"] and "Traceback" not in error["message"]


def test_an_input_outside_the_data_root_says_what_the_root_is_and_how_to_set_it(dp, dp_root):
    r = dp.post(
        "/api/v1/tasks",
        json={"script": "exit_ok.py", "input": "/data/raw/mnist/", "output": "datasets/x"},
    )
    message = assert_error(r, 400, "INVALID_REQUEST")["message"]
    assert str((dp_root / "data").resolve()) in message and "DP_DATA_ROOT" in message
