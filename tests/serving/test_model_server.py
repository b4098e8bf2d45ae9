"""The model server: routes in-process (TestClient), and once as a real process."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from ai_platform.serving import model_server
from ai_platform.serving.model_server import MAX_BATCH, create_model_app
from lakeapi.errors import InvalidRequest, ModelNotFound
from tests.lakekit.mnist_fixture import mnist_arrays
from tests.support import free_port, wait_until

DIGITS, LABELS = mnist_arrays("test", 20)
RAW = [base64.b64encode(d.tobytes()).decode() for d in DIGITS]


def png(index: int) -> str:
    buf = io.BytesIO()
    Image.fromarray(255 - DIGITS[index]).resize((56, 56)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


@pytest.fixture(scope="module")
def client(model_path: str) -> Iterator[TestClient]:
    with TestClient(create_model_app(model_path), raise_server_exceptions=False) as c:
        yield c


def assert_error(response: httpx.Response, status: int, code: str, text: str = "") -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert text in error["message"]


def test_health_and_metadata(client: TestClient) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["model"] == "mnist_mlp_v1"
    meta = client.get("/v1/model").json()
    assert meta["labels"] == [str(i) for i in range(10)]
    assert meta["input_spec"]["shape"] == [1, 28, 28]
    assert meta["architecture"].startswith("mnist_mlp")
    assert meta["metrics"]["test_accuracy"] > 0.85
    assert meta["version"] == 1 and meta["weights_bytes"] > 0 and "weights" not in meta
    stats = client.get("/v1/stats").json()
    assert set(stats) == {"requests", "images", "forward_passes"}


def test_predict_one(client: TestClient) -> None:
    r = client.post("/predict", json={"image": RAW[0]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"prediction", "confidence", "probabilities"}
    assert body["prediction"] == LABELS[0]
    assert client.post("/predict", json={"image": png(0)}).json()["prediction"] == LABELS[0]


def test_predict_batch_keeps_order(client: TestClient) -> None:
    r = client.post("/predict", json={"images": RAW})
    assert r.status_code == 200, r.text
    predictions = r.json()["predictions"]
    assert len(predictions) == len(RAW)
    assert sum(p["prediction"] == y for p, y in zip(predictions, LABELS, strict=True)) >= 17
    mixed = client.post("/predict", json={"images": [png(1), RAW[1]]}).json()["predictions"]
    assert mixed[0]["prediction"] == mixed[1]["prediction"] == predictions[1]["prediction"]


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({}, "exactly one"),
        ({"image": RAW[0], "images": [RAW[1]]}, "exactly one"),
        ({"images": []}, "empty"),
        ({"image": "%%%"}, "base64"),
        ({"image": ""}, "empty"),
        ({"image": base64.b64encode(b"x" * 100).decode()}, "neither"),
        ({"images": [RAW[0], "%%%"]}, "images[1]"),
        ({"image": 7}, "image"),
        ({"images": "not a list"}, "images"),
    ],
)
def test_bad_requests_use_the_envelope(client: TestClient, body: dict, text: str) -> None:
    assert_error(client.post("/predict", json=body), 400, "INVALID_REQUEST", text)


def test_batch_size_is_bounded(client: TestClient) -> None:
    r = client.post("/predict", json={"images": [RAW[0]] * (MAX_BATCH + 1)})
    assert_error(r, 400, "INVALID_REQUEST", f"at most {MAX_BATCH}")


def test_not_json_and_unknown_routes(client: TestClient) -> None:
    r = client.post("/predict", content=b"{not json", headers={"content-type": "application/json"})
    assert_error(r, 400, "INVALID_REQUEST")
    assert_error(client.get("/nope"), 404, "NOT_FOUND")
    assert_error(client.get("/predict"), 405, "METHOD_NOT_ALLOWED")


def test_bad_model_path_fails_at_creation(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound):
        create_model_app(str(tmp_path / "nope.lance"))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x").write_text("x")
    with pytest.raises(InvalidRequest):
        create_model_app(str(tmp_path / "junk"))
    with pytest.raises(SystemExit, match="MODEL_NOT_FOUND"):
        model_server.main(["--model-path", str(tmp_path / "nope.lance")])


@pytest.mark.slow
def test_real_process(model_path: str, tmp_path: Path) -> None:
    """``python -m ai_platform.serving.model_server`` serves a model whose class it never saw."""
    port = free_port()
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ai_platform.serving.model_server",
            "--model-path",
            model_path,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--device",
            "cpu",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            return httpx.get(f"{url}/health", timeout=1).status_code == 200

        wait_until(healthy, timeout=90, interval=0.2)
        r = httpx.post(f"{url}/predict", json={"images": RAW[:4]}, timeout=10)
        assert r.status_code == 200, r.text
        assert len(r.json()["predictions"]) == 4
        assert_error(httpx.post(f"{url}/predict", json={}, timeout=10), 400, "INVALID_REQUEST")

        # 20 clients at once: each gets its own digit's answer; passes are shared.
        def one(i: int) -> int:
            answer = httpx.post(f"{url}/predict", json={"image": RAW[i]}, timeout=30)
            return answer.json()["prediction"]

        alone = [one(i) for i in range(len(RAW))]
        before = httpx.get(f"{url}/v1/stats", timeout=5).json()
        with ThreadPoolExecutor(len(RAW)) as pool:
            together = list(pool.map(one, range(len(RAW))))
        after = httpx.get(f"{url}/v1/stats", timeout=5).json()
        assert together == alone
        assert after["requests"] - before["requests"] == len(RAW)
        assert after["images"] - before["images"] == len(RAW)
        assert after["forward_passes"] - before["forward_passes"] <= len(RAW)
    finally:
        proc.terminate()
        proc.wait(30)
    # uvicorn shuts down cleanly, then re-raises SIGTERM.
    assert proc.returncode in (0, -15), (tmp_path / "server.log").read_text()
    assert "Application shutdown complete" in (tmp_path / "server.log").read_text()


def test_body_limit(model_path: str) -> None:
    """Bodies over the limit are refused with 413, with or without Content-Length."""
    limit = 2 * len(RAW[0])
    with TestClient(create_model_app(model_path, max_body_bytes=limit)) as c:
        assert c.post("/predict", json={"image": RAW[0]}).status_code == 200
        over = json.dumps({"images": RAW[:2]}).encode()
        assert len(over) > limit
        typed = {"content-type": "application/json"}
        assert_error(c.post("/predict", content=over, headers=typed), 413, "PAYLOAD_TOO_LARGE")
        half = len(over) // 2
        chunked = c.post("/predict", content=iter([over[:half], over[half:]]), headers=typed)
        assert_error(chunked, 413, "PAYLOAD_TOO_LARGE")
        small = json.dumps({"image": RAW[0]}).encode()
        streamed = c.post("/predict", content=iter([small[:100], small[100:]]), headers=typed)
        assert streamed.status_code == 200, streamed.text


def test_oip_routes_refuse_in_oips_shape_and_v1_routes_in_the_envelope(model_path: str) -> None:
    """tritonclient reads ``{"error": "..."}``; the Guard's own 401/413/415 on ``/v2`` say so."""
    app = create_model_app(model_path, api_key="k", max_body_bytes=64)
    infer = "/v2/models/mnist_mlp_v1/infer"
    key = {"authorization": "Bearer k", "content-type": "application/json"}
    with TestClient(app) as c:
        refused = {
            401: c.post(infer, json={}),
            413: c.post(infer, content=b"x" * 65, headers=key),
            415: c.post(infer, content=b"{}", headers={**key, "content-type": "text/plain"}),
        }
        for status, r in refused.items():
            assert r.status_code == status, r.text
            assert set(r.json()) == {"error"} and isinstance(r.json()["error"], str)
        assert "API key" in refused[401].json()["error"]
        assert "larger than 64 bytes" in refused[413].json()["error"]
        assert "text/plain" in refused[415].json()["error"]
        assert c.get("/v2/health/live").status_code == 200  # open, as before
        r = c.post("/predict", json={"image": RAW[0]})
        assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHORIZED"
        bare = c.post("/predict", content=b"{}", headers={"authorization": "Bearer k"})
        assert bare.status_code == 415 and bare.json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
