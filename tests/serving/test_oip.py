"""The Open Inference Protocol v2 on real model server processes, driven by tritonclient (a
third-party client): health, metadata, and infer with binary tensors on and off; MNIST
answers equal to ``/predict``'s, a tabular and a sequence model served by the same code."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.lakekit.mnist_fixture import mnist_arrays
from tests.serving.test_generic_runner import (
    CLASSES,
    FEATURES,
    SequenceNet,
    tabular_rows,
    write_sequence_model,
    write_tabular_model,
)
from tests.support import free_port, wait_until

pytestmark = pytest.mark.slow
DIGITS, LABELS = mnist_arrays("test", 16)


@contextmanager
def model_server(model_path: str, name: str, log_path: Path) -> Iterator[str]:
    """``python -m ai_platform.serving.model_server`` on a free port; yields ``host:port``."""
    port = free_port()
    log = open(log_path, "wb")  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen(
        [sys.executable, "-m", "ai_platform.serving.model_server", "--model-path", model_path,
         "--model-name", name, "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    log.close()
    address = f"127.0.0.1:{port}"
    try:

        def live() -> bool:
            assert proc.poll() is None, log_path.read_text()
            try:
                return httpx.get(f"http://{address}/v2/health/live", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(live, timeout=90, interval=0.2)
        yield address
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture(scope="module")
def mnist(model_path: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("oip") / "mnist.log"
    with model_server(model_path, "mnist_predictor", log) as address:
        yield address


@pytest.fixture(scope="module")
def client(mnist: str) -> Iterator[triton.InferenceServerClient]:
    with triton.InferenceServerClient(url=mnist) as c:
        yield c


def normalised(digits: np.ndarray, spec: dict) -> np.ndarray:
    """What the image codec feeds the network, computed the way it is (float32 throughout)."""
    x = digits.astype(np.float32) * np.float32(spec["scale"])
    x = (x - np.float32(spec["mean"])) / np.float32(spec["std"])
    return x.reshape(len(digits), 1, 28, 28)


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_health_and_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("mnist_predictor")
    assert client.is_model_ready("mnist_predictor", model_version="1")
    assert not client.is_model_ready("mnist_predictor", model_version="7")
    assert not client.is_model_ready("other")
    meta = client.get_model_metadata("mnist_predictor")
    assert meta["name"] == "mnist_predictor" and meta["versions"] == ["1"]
    assert meta["platform"] == "pytorch_torch_export"
    assert meta["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, 1, 28, 28]}]
    assert meta["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}]
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    with pytest.raises(InferenceServerException, match="not served here") as err:
        client.get_model_metadata("other")
    assert err.value.status() == "404"


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_equals_predict(
    mnist: str, client: triton.InferenceServerClient, binary: bool
) -> None:
    spec = httpx.get(f"http://{mnist}/v1/model", timeout=10).json()["input_spec"]
    x = normalised(DIGITS, spec)
    tensor = triton.InferInput("image", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    wanted = [triton.InferRequestedOutput("logits", binary_data=binary)]
    result = client.infer("mnist_predictor", [tensor], outputs=wanted, request_id="r1")
    response = result.get_response()
    assert response["id"] == "r1" and response["model_version"] == "1"
    assert ("binary_data_size" in response["outputs"][0].get("parameters", {})) == binary
    logits = result.as_numpy("logits")
    assert logits.shape == (len(DIGITS), 10) and logits.dtype == np.float32
    raw = [base64.b64encode(d.tobytes()).decode() for d in DIGITS]
    predict = httpx.post(f"http://{mnist}/predict", json={"images": raw}, timeout=30).json()
    answers = predict["predictions"]
    assert [int(i) for i in logits.argmax(axis=1)] == [a["prediction"] for a in answers]
    np.testing.assert_allclose(
        softmax(logits), [a["probabilities"] for a in answers], rtol=1e-5, atol=1e-6
    )
    assert np.mean(logits.argmax(axis=1) == LABELS) > 0.8


def test_all_outputs_in_binary_by_default_and_versions(
    client: triton.InferenceServerClient,
) -> None:
    """No outputs named: tritonclient asks for binary_data_output; a version route answers."""
    x = np.zeros((2, 1, 28, 28), np.float32)
    tensor = triton.InferInput("image", [2, 1, 28, 28], "FP32")
    tensor.set_data_from_numpy(x)
    result = client.infer("mnist_predictor", [tensor], model_version="1")
    assert result.get_output("logits")["parameters"]["binary_data_size"] == 2 * 10 * 4
    assert result.as_numpy("logits").shape == (2, 10)
    with pytest.raises(InferenceServerException, match="no version '3'") as err:
        client.infer("mnist_predictor", [tensor], model_version="3")
    assert err.value.status() == "404"


def test_bad_inputs_are_400_naming_the_input(client: triton.InferenceServerClient) -> None:
    wrong_dtype = triton.InferInput("image", [1, 1, 28, 28], "FP64")
    wrong_dtype.set_data_from_numpy(np.zeros((1, 1, 28, 28), np.float64))
    with pytest.raises(InferenceServerException, match="'image' has datatype FP64") as err:
        client.infer("mnist_predictor", [wrong_dtype])
    assert err.value.status() == "400"
    wrong_shape = triton.InferInput("image", [1, 28, 28], "FP32")
    wrong_shape.set_data_from_numpy(np.zeros((1, 28, 28), np.float32))
    with pytest.raises(InferenceServerException, match=r"expected \[-1, 1, 28, 28\]") as err:
        client.infer("mnist_predictor", [wrong_shape])
    assert err.value.status() == "400"
    unknown = triton.InferInput("pixels", [1, 1, 28, 28], "FP32")
    unknown.set_data_from_numpy(np.zeros((1, 1, 28, 28), np.float32), binary_data=False)
    with pytest.raises(InferenceServerException, match=r"unknown inputs \['pixels'\]"):
        client.infer("mnist_predictor", [unknown], parameters={"custom": 1})


def test_binary_sizes_that_do_not_add_up_are_400(mnist: str) -> None:
    header = b'{"inputs":[{"name":"image","shape":[1,1,28,28],"datatype":"FP32",' \
             b'"parameters":{"binary_data_size":3136}}]}'  # fmt: skip
    url = f"http://{mnist}/v2/models/mnist_predictor/infer"
    headers = {"Inference-Header-Content-Length": str(len(header))}
    short = httpx.post(url, content=header + bytes(100), headers=headers, timeout=10)
    assert short.status_code == 400 and "runs past" in short.json()["error"]
    extra = httpx.post(url, content=header + bytes(3136 + 8), headers=headers, timeout=10)
    assert extra.status_code == 400 and "add up to 3136" in extra.json()["error"]
    bad = httpx.post(url, content=header, headers={"Inference-Header-Content-Length": "x"})
    assert bad.status_code == 400 and "not a length" in bad.json()["error"]
    ok = httpx.post(url, content=header + bytes(3136), headers=headers, timeout=10)
    assert ok.status_code == 200, ok.text
    assert ok.headers["content-type"] == "application/json"  # no binary output asked for
    assert ok.json()["outputs"][0]["shape"] == [1, 10]


def test_tabular_and_sequence_models_via_tritonclient(tmp_path: Path) -> None:
    tabular = write_tabular_model(tmp_path / "wear_mlp.lance")
    sequence, net = write_sequence_model(tmp_path / "steps.lance")
    x, y = tabular_rows(64, seed=3)
    with (
        model_server(tabular, "wear", tmp_path / "tabular.log") as address,
        triton.InferenceServerClient(url=address) as c,
    ):
        assert c.is_model_ready("wear")
        tensor = triton.InferInput("input", [64, FEATURES], "FP32")
        tensor.set_data_from_numpy(x)
        logits = c.infer("wear", [tensor]).as_numpy("output")
        convenience = httpx.post(
            f"http://{address}/predict", json={"inputs": x.tolist()}, timeout=30
        ).json()
        np.testing.assert_allclose(logits, convenience["outputs"]["output"], atol=1e-6)
        labels = [p["prediction"] for p in convenience["predictions"]]
        assert labels == [CLASSES[i] for i in logits.argmax(axis=1)]
        assert np.mean(logits.argmax(axis=1) == y) > 0.9
    _check_sequence(sequence, net, tmp_path)


def _check_sequence(path: str, net: SequenceNet, tmp_path: Path) -> None:
    import torch

    with (
        model_server(path, "steps", tmp_path / "sequence.log") as address,
        triton.InferenceServerClient(url=address) as c,
    ):
        meta = c.get_model_metadata("steps")
        assert [o["shape"] for o in meta["outputs"]] == [[-1, -1, 2], [-1, 4]]
        for steps, binary in ((3, True), (11, False)):
            x = np.random.default_rng(steps).normal(size=(2, steps, 3)).astype(np.float32)
            tensor = triton.InferInput("input", list(x.shape), "FP32")
            tensor.set_data_from_numpy(x, binary_data=binary)
            outputs = [
                triton.InferRequestedOutput("output_1", binary_data=binary),
                triton.InferRequestedOutput("output_0", binary_data=not binary),
            ]
            result = c.infer("steps", [tensor], outputs=outputs)
            assert [o["name"] for o in result.get_response()["outputs"]] == [
                "output_0",
                "output_1",
            ]
            with torch.inference_mode():
                per_step, pooled = net(torch.from_numpy(x))
            np.testing.assert_allclose(result.as_numpy("output_0"), per_step.numpy(), atol=1e-5)
            np.testing.assert_allclose(result.as_numpy("output_1"), pooled.numpy(), atol=1e-5)
