"""The Open Inference Protocol v2 through the platform route, with the API key set, driven by
tritonclient (a third-party client) in its headers; checks before serving, failed services
replaced, and the AI Platform's ``/metrics``."""

from __future__ import annotations

import base64
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import lance
import numpy as np
import pyarrow as pa
import pytest
import torch
import tritonclient.http as triton
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.utils import InferenceServerException

from serverkit.metrics import UNMATCHED
from tests.data_platform.test_errors import assert_error
from tests.lakekit.mnist_fixture import mnist_arrays
from tests.serving.small_model import MODEL, train_mlp
from tests.serving.test_oip import normalised, softmax
from tests.support import PlatformServers, pid_alive, wait_until

pytestmark = pytest.mark.slow
KEY = "oip-key"


def auth() -> dict[str, str]:
    """A fresh dict each call: tritonclient adds its own headers to the one it is given."""
    return {"Authorization": f"Bearer {KEY}"}


SERVICES = "/api/v1/inference-services"
NAME = "digits"
DIGITS, LABELS = mnist_arrays("test", 16)


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformServers]:
    """Both services with the API key set and a trained model in the lake."""
    root = tmp_path_factory.mktemp("oip-route")
    train_mlp(root / "lake")
    servers = PlatformServers(root, DP_API_KEY=KEY, AIP_API_KEY=KEY).start()
    yield servers
    servers.stop()


@pytest.fixture(scope="module")
def api(keyed: PlatformServers) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=keyed.url, headers=auth(), timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def service(api: httpx.Client) -> dict:
    r = api.post(SERVICES, json={"name": NAME, "model": MODEL})
    assert r.status_code == 201, r.text
    return r.json()


def triton_client(keyed: PlatformServers, service: str) -> triton.InferenceServerClient:
    base = keyed.url.removeprefix("http://")
    return triton.InferenceServerClient(url=f"{base}{SERVICES}/{service}")


@pytest.fixture(scope="module")
def client(keyed: PlatformServers, service: dict) -> Iterator[triton.InferenceServerClient]:
    with triton_client(keyed, NAME) as c:
        yield c


def test_health_and_metadata_through_the_route(client, keyed, service) -> None:
    assert client.is_server_live(headers=auth()) and client.is_server_ready(headers=auth())
    assert client.is_model_ready(NAME, headers=auth())
    assert not client.is_model_ready("other", headers=auth())
    meta = client.get_model_metadata(NAME, headers=auth())
    # The model server's OIP name is the service's name.
    assert meta["name"] == NAME and meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, 1, 28, 28]}]
    with triton_client(keyed, service["id"]) as by_id:
        assert by_id.get_model_metadata(NAME, headers=auth()) == meta
    with pytest.raises(InferenceServerException, match="not served here") as err:
        client.get_model_metadata("other", headers=auth())
    assert err.value.status() == "404"


def test_oip_needs_the_api_key(keyed, client, service) -> None:
    assert not client.is_server_live()  # tritonclient: False on any status but 200
    r = httpx.get(f"{keyed.url}{SERVICES}/{NAME}/v2/health/live")
    # The platform's OIP route refuses in OIP's own error shape, as the model server does.
    assert r.status_code == 401 and r.json() == {"error": "missing or wrong API key"}


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_through_the_route_equals_predict(api, client, binary) -> None:
    spec = api.get(f"/api/v1/models/{MODEL}").json()["input_spec"]
    x = normalised(DIGITS, spec)
    tensor = triton.InferInput("image", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    wanted = [triton.InferRequestedOutput("logits", binary_data=binary)]
    result = client.infer(NAME, [tensor], outputs=wanted, request_id="r7", headers=auth())
    response = result.get_response()
    assert response["id"] == "r7" and response["model_name"] == NAME
    # Inference-Header-Content-Length came back through the platform with the binary tail.
    assert ("binary_data_size" in response["outputs"][0].get("parameters", {})) == binary
    logits = result.as_numpy("logits")
    assert logits.shape == (len(DIGITS), 10) and logits.dtype == np.float32
    raw = [base64.b64encode(d.tobytes()).decode() for d in DIGITS]
    r = api.post(f"{SERVICES}/{NAME}/predict", json={"images": raw})
    assert r.status_code == 200, r.text
    answers = r.json()["predictions"]
    assert [int(i) for i in logits.argmax(axis=1)] == [a["prediction"] for a in answers]
    np.testing.assert_allclose(
        softmax(logits), [a["probabilities"] for a in answers], rtol=1e-5, atol=1e-6
    )
    assert np.mean(logits.argmax(axis=1) == LABELS) > 0.8


def test_model_server_errors_come_back_unchanged(api, client) -> None:
    wrong = triton.InferInput("image", [1, 28, 28], "FP32")
    wrong.set_data_from_numpy(np.zeros((1, 28, 28), np.float32))
    with pytest.raises(InferenceServerException, match=r"expected \[-1, 1, 28, 28\]") as err:
        client.infer(NAME, [wrong], headers=auth())
    assert err.value.status() == "400"
    r = api.get(f"{SERVICES}/{NAME}/v2/nowhere")
    assert r.status_code == 404 and r.json() == {"error": "no route GET /v2/nowhere"}


def test_a_missing_or_stopped_service_answers_in_oip_shape(api) -> None:
    r = api.get(f"{SERVICES}/ghost/v2/health/ready")
    assert r.status_code == 404 and "'ghost' does not exist" in r.json()["error"]
    created = api.post(SERVICES, json={"name": "brief", "model": MODEL})
    assert created.status_code == 201, created.text
    os.kill(created.json()["pid"], signal.SIGKILL)
    wait_until(lambda: not pid_alive(created.json()["pid"]))
    r = api.post(f"{SERVICES}/brief/v2/models/brief/infer", json={"inputs": []})
    assert r.status_code == 503 and set(r.json()) == {"error"}
    assert "brief" in r.json()["error"]


def test_a_failed_service_is_replaced_by_a_create_of_its_name(api, keyed) -> None:
    first = api.post(SERVICES, json={"name": "again", "model": MODEL}).json()
    os.kill(first["pid"], signal.SIGKILL)
    failed = wait_until(
        lambda: (s := api.get(f"{SERVICES}/again").json())["status"] == "failed" and s
    )
    # The cause only: uvicorn's lines stay in the log, reachable by the logs route.
    assert failed["error"] == "model server killed by signal SIGKILL"
    assert "Uvicorn running" in api.get(f"{SERVICES}/again/logs").text
    old_log = Path(keyed.aip.env["AIP_STATE_DIR"], "logs", f"{first['id']}.log")
    assert old_log.exists()

    second = api.post(SERVICES, json={"name": "again", "model": MODEL})
    assert second.status_code == 201, second.text
    assert second.json()["id"] != first["id"] and second.json()["status"] == "running"
    assert_error(api.get(f"{SERVICES}/{first['id']}"), 404, "SERVICE_NOT_FOUND")
    assert not old_log.exists()
    # A running service still holds its name.
    assert_error(api.post(SERVICES, json={"name": "again", "model": MODEL}), 409,
                 "SERVICE_ALREADY_EXISTS")  # fmt: skip
    assert api.delete(f"{SERVICES}/again").status_code == 204


def test_create_refuses_a_model_that_is_no_model_record(api, keyed) -> None:
    """What a training script leaves that wrote a table, not a model: refused, nothing runs."""
    lake = Path(keyed.dp.env["DP_LAKE_ROOT"])
    lance.write_dataset(pa.table({"x": [1, 2]}), str(lake / "models" / "not_a_model.lance"))
    before = {s["id"] for s in api.get(SERVICES).json()}
    error = assert_error(
        api.post(SERVICES, json={"name": "junk", "model": "not_a_model"}), 400, "INVALID_REQUEST"
    )
    assert error["message"].startswith("model 'not_a_model' cannot be served: ")
    assert {s["id"] for s in api.get(SERVICES).json()} == before
    assert_error(api.get(f"{SERVICES}/junk"), 404, "SERVICE_NOT_FOUND")


def test_metrics_are_scraped_and_parsed(api, keyed, service) -> None:
    assert_error(httpx.get(f"{keyed.url}/metrics"), 401, "UNAUTHORIZED")
    api.get(f"{SERVICES}/{NAME}/v2/health/live")
    r = api.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    by_status = {
        s.labels["status"]: s.value for s in families["ai_platform_inference_services"].samples
    }
    running = sum(s["status"] == "running" for s in api.get(SERVICES).json())
    assert by_status["running"] == running >= 1
    requests = {
        (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
        for s in families["ai_platform_http_requests"].samples
        if s.name == "ai_platform_http_requests_total"
    }
    assert requests[("GET", f"{SERVICES}/{{service}}/v2/{{path}}", "200")] >= 1
    assert requests[("GET", UNMATCHED, "401")] >= 1  # Guard answered: no route matched
    latency = families["ai_platform_http_request_duration_seconds"]
    assert any(s.name.endswith("_count") and s.value >= 1 for s in latency.samples)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_service_that_cannot_load_keeps_the_cause_only(api) -> None:
    r = api.post(SERVICES, json={"name": "no-gpu", "model": MODEL, "device": "cuda"})
    assert_error(r, 503, "SERVICE_UNAVAILABLE")
    failed = api.get(f"{SERVICES}/no-gpu").json()
    assert failed["status"] == "failed"
    why, _, cause = failed["error"].partition(": ")
    assert why == "model server exited with code 1" and cause, failed["error"]
    assert "\n" not in cause and " | " not in cause and "uvicorn" not in cause.lower()
    assert cause in api.get(f"{SERVICES}/no-gpu/logs").text
    # A retry on the CPU replaces the failed record.
    r = api.post(SERVICES, json={"name": "no-gpu", "model": MODEL})
    assert r.status_code == 201, r.text
    assert r.json()["id"] != failed["id"]
    assert api.delete(f"{SERVICES}/no-gpu").status_code == 204
