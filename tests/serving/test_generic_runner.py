"""The generic runner: a tabular classifier and a multi-output sequence model served by the same
code as MNIST, through ``/predict``'s JSON convenience and OIP, checked against signatures."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import lance
import numpy as np
import pyarrow as pa
import pytest
import torch
from fastapi.testclient import TestClient

from ai_platform.serving.model_server import create_model_app
from ai_platform.serving.predictor import Runner, TensorSpec, signature_of
from ai_platform.serving.protocol import infer_type
from ai_platform.serving.protocol.v2_datamodels import InferenceRequest
from lakeapi.errors import InvalidRequest
from lakekit import modelrec
from tests.lakekit.mnist_fixture import mnist_arrays

FEATURES, CLASSES = 8, ("low", "mid", "high")
SEQ_FEATURES = 3


def tabular_rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of 8 features whose class is which third of the line their weighted sum is in."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, FEATURES)).astype(np.float32)
    score = x @ np.linspace(-1, 1, FEATURES, dtype=np.float32)
    return x, np.digitize(score, [-0.6, 0.6]).astype(np.int64)


def write_tabular_model(path: Path) -> str:
    """An 8-feature MLP classifier, trained a few hundred steps, saved as a user would."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(FEATURES, 32), torch.nn.ReLU(), torch.nn.Linear(32, len(CLASSES))
    )
    x, y = tabular_rows(2000, seed=1)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.02)
    for _ in range(300):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(xt), yt).backward()
        optimizer.step()
    modelrec.write_model(
        path,
        module=net,
        example_input=xt[:4],
        input_spec={"shape": [FEATURES], "dtype": "float32"},
        params={"steps": 300},
        metrics={},
        history=[],
        source={"path": "rows.csv", "name": "rows", "version": 1},
        labels=list(CLASSES),
        architecture="mlp 8-32-3",
    )
    return str(path)


class SequenceNet(torch.nn.Module):
    """(N, T, 3) in; a score per step (N, T, 2) and a pooled vector (N, 4) out."""

    def __init__(self) -> None:
        super().__init__()
        self.step = torch.nn.Linear(SEQ_FEATURES, 2)
        self.pool = torch.nn.Linear(SEQ_FEATURES, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.step(x), self.pool(x.mean(dim=1))


def write_sequence_model(path: Path) -> tuple[str, SequenceNet]:
    """A record of a model with a variable dimension and two outputs, written column by column
    (``write_model`` exports one output and a dynamic batch only): the layout of record_version
    2, whose ``signature`` names what a version-1 reader would learn from the network itself."""
    torch.manual_seed(0)
    net = SequenceNet().eval()
    example = torch.randn(2, 5, SEQ_FEATURES)
    batch, steps = torch.export.Dim("batch", min=1), torch.export.Dim("steps", min=1)
    program = torch.export.export(net, (example,), dynamic_shapes=({0: batch, 1: steps},))
    buf = io.BytesIO()
    torch.export.save(program, buf)
    weights = buf.getvalue()
    signature = {
        "inputs": [{"name": "input", "dtype": "float32", "shape": [-1, -1, SEQ_FEATURES]}],
        "outputs": [
            {"name": "output_0", "dtype": "float32", "shape": [-1, -1, 2]},
            {"name": "output_1", "dtype": "float32", "shape": [-1, 4]},
        ],
    }
    record = {
        "name": modelrec.model_name(path),
        "architecture": "sequence: per-step linear and mean-pooled linear",
        "format": modelrec.FORMAT,
        "weights": weights,
        "weights_bytes": len(weights),
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
        "num_parameters": sum(p.numel() for p in net.parameters()),
        "input_spec": json.dumps({"shape": [-1, SEQ_FEATURES], "dtype": "float32"}),
        "signature": json.dumps(signature),
        "preprocessing": "null",
        "labels": [],
        "params": "{}",
        "metrics": "{}",
        "history": "[]",
        "source": "{}",
        "framework": "{}",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "record_version": 2,
    }
    fields = list(modelrec.SCHEMA)
    for name in ("signature", "preprocessing"):
        if name not in modelrec.SCHEMA.names:
            fields.append(pa.field(name, pa.string()))
    schema = pa.schema(fields, metadata=modelrec.SCHEMA.metadata)
    lance.write_dataset(pa.Table.from_pylist([record], schema=schema), str(path))
    return str(path), net


@pytest.fixture(scope="session")
def tabular_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    return write_tabular_model(tmp_path_factory.mktemp("tabular") / "wear_mlp.lance")


@pytest.fixture(scope="session")
def sequence(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, SequenceNet]:
    return write_sequence_model(tmp_path_factory.mktemp("sequence") / "steps_v1.lance")


@pytest.fixture(scope="module")
def tabular(tabular_path: str) -> Iterator[TestClient]:
    with TestClient(create_model_app(tabular_path), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def seq_client(sequence: tuple[str, SequenceNet]) -> Iterator[TestClient]:
    app = create_model_app(sequence[0], model_name="steps")
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def oip_json(name: str, array: np.ndarray, datatype: str = "FP32") -> dict:
    return {"name": name, "shape": list(array.shape), "datatype": datatype,
            "data": array.ravel().tolist()}  # fmt: skip


def assert_envelope(response: httpx.Response, text: str) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "INVALID_REQUEST" and text in error["message"], error


def assert_oip_error(response: httpx.Response, status: int, text: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str), body
    assert text in body["error"], body


def test_signatures_of_version_1_records(model_path: str, tabular_path: str) -> None:
    image = signature_of(modelrec.read_model_info(model_path))
    assert image.inputs == (TensorSpec("image", "float32", (-1, 1, 28, 28)),)
    assert image.outputs == (TensorSpec("logits", "float32", (-1, 10)),)
    assert image.is_image and image.is_classifier
    table = signature_of(modelrec.read_model_info(tabular_path))
    assert table.inputs == (TensorSpec("input", "float32", (-1, FEATURES)),)
    assert table.outputs == (TensorSpec("output", "float32", (-1, 3)),)
    assert table.labels == CLASSES and not table.is_image and table.is_classifier


def test_a_declared_signature_is_read_and_a_bad_one_refused() -> None:
    info = {
        "name": "m",
        "labels": [],
        "signature": {
            "inputs": [{"name": "tokens", "dtype": "int64", "shape": [-1, -1]}],
            "outputs": [{"name": "scores", "dtype": "float32", "shape": [-1, 5]}],
        },
    }
    sig = signature_of(info)
    assert sig.inputs == (TensorSpec("tokens", "int64", (-1, -1)),)
    assert not sig.is_classifier and not sig.is_image
    info["signature"]["inputs"][0]["shape"] = [4, -1]  # type: ignore[index]
    with pytest.raises(InvalidRequest, match="must start with -1"):
        signature_of(info)
    info["signature"]["inputs"] = []  # type: ignore[index]
    with pytest.raises(InvalidRequest, match="needs inputs and outputs"):
        signature_of(info)


def test_tabular_json_convenience_answers_outputs_and_labels(tabular: TestClient) -> None:
    x, y = tabular_rows(200, seed=2)
    r = tabular.post("/predict", json={"inputs": x.tolist()})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["labels"] == list(CLASSES)
    logits = np.array(body["outputs"]["output"])
    assert logits.shape == (200, 3)
    predicted = [p["prediction"] for p in body["predictions"]]
    assert np.mean(np.array(predicted) == np.array(CLASSES)[y]) > 0.9
    first = body["predictions"][0]
    assert abs(sum(first["probabilities"]) - 1) < 1e-5
    assert first["confidence"] == max(first["probabilities"])
    named = tabular.post("/predict", json={"inputs": {"input": x[:3].tolist()}}).json()
    for alone, batched in zip(named["predictions"], body["predictions"][:3], strict=True):
        assert alone["prediction"] == batched["prediction"]  # batch size changes only rounding
        np.testing.assert_allclose(alone["probabilities"], batched["probabilities"], atol=1e-5)
    # The same rows through OIP: the same logits.
    oip = tabular.post("/v2/models/wear_mlp/infer", json={"inputs": [oip_json("input", x)]})
    assert oip.status_code == 200, oip.text
    (out,) = oip.json()["outputs"]
    assert out["name"] == "output" and out["datatype"] == "FP32" and out["shape"] == [200, 3]
    np.testing.assert_allclose(np.reshape(out["data"], (200, 3)), logits, atol=1e-6)


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"inputs": [[1.0] * 7]}, "input 'input' has shape [1, 7], expected [-1, 8]"),
        ({"inputs": [1.0] * 8}, "expected [-1, 8]"),
        ({"inputs": [[1.0] * 8, [1.0] * 7]}, "input 'input' is not a regular array"),
        ({"inputs": [["a"] * 8]}, "input 'input' holds str"),
        ({"inputs": {"features": [[1.0] * 8]}}, "unknown inputs ['features']"),
        ({"inputs": {}}, "input 'input' is missing"),
        ({"inputs": []}, "input 'input' has shape [0]"),
        ({"image": "AAAA"}, '"image"/"images" are for image models'),
        ({"inputs": [[1.0] * 8], "image": "AAAA"}, "exactly one"),
    ],
)
def test_bad_tabular_inputs_are_400_naming_the_input(
    tabular: TestClient, body: dict, text: str
) -> None:
    assert_envelope(tabular.post("/predict", json=body), text)


def test_oip_bad_inputs_name_the_input_and_its_expected_shape(tabular: TestClient) -> None:
    url = "/v2/models/wear_mlp/infer"
    x = np.zeros((2, FEATURES), np.float32)
    wrong_dtype = {"inputs": [oip_json("input", x.astype(np.float64), "FP64")]}
    assert_oip_error(
        tabular.post(url, json=wrong_dtype),
        400,
        "input 'input' has datatype FP64, expected FP32 of shape [-1, 8]",
    )
    wrong_shape = {"inputs": [oip_json("input", np.zeros((2, 3), np.float32))]}
    assert_oip_error(
        tabular.post(url, json=wrong_shape), 400, "input 'input' has shape [2, 3], expected [-1, 8]"
    )
    short = {"inputs": [{**oip_json("input", x), "shape": [3, FEATURES]}]}
    assert_oip_error(tabular.post(url, json=short), 400, "holds 24 elements, data has 16")
    unknown = {"inputs": [oip_json("input", x)], "outputs": [{"name": "nope"}]}
    assert_oip_error(tabular.post(url, json=unknown), 400, "unknown outputs ['nope']")
    assert_oip_error(tabular.post(url, json={"inputs": []}), 400, "no inputs")
    assert_oip_error(tabular.post(url, content=b"{not json"), 400, "inference request")
    bytes_input = {"inputs": [{"name": "input", "shape": [1], "datatype": "BYTES", "data": ["a"]}]}
    assert_oip_error(tabular.post(url, json=bytes_input), 400, "datatype 'BYTES' is not one of")
    assert_oip_error(tabular.post("/v2/models/other/infer", json=wrong_shape), 404, "'other'")
    assert_oip_error(tabular.get("/v2/models/wear_mlp/versions/9"), 404, "no version '9'")
    assert_oip_error(tabular.get("/v2/models/wear_mlp/stats"), 404, "no route GET /v2/models")
    assert_oip_error(tabular.get("/v2/models/wear_mlp/infer"), 404, "no route GET")


def test_unknown_parameters_are_ignored(tabular: TestClient) -> None:
    x = np.ones((1, FEATURES), np.float32)
    body = {
        "id": "req-7",
        "parameters": {"priority": 3, "whatever": {"nested": True}},
        "inputs": [{**oip_json("input", x), "parameters": {"foo": "bar"}}],
        "outputs": [{"name": "output", "parameters": {"classification": 2}}],
        "extra_field": 1,
    }
    r = tabular.post("/v2/models/wear_mlp/versions/1/infer", json=body)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["id"] == "req-7" and answer["model_name"] == "wear_mlp"
    assert answer["model_version"] == "1" and answer["outputs"][0]["shape"] == [1, 3]


def test_a_third_shape_is_served_by_the_same_code(
    seq_client: TestClient, sequence: tuple[str, SequenceNet]
) -> None:
    """Two outputs and a variable dimension: learnt from the network, served, and checked."""
    _, net = sequence
    meta = seq_client.get("/v2/models/steps").json()
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, -1, 3]}]
    assert meta["outputs"] == [
        {"name": "output_0", "datatype": "FP32", "shape": [-1, -1, 2]},
        {"name": "output_1", "datatype": "FP32", "shape": [-1, 4]},
    ]
    for steps in (1, 4, 9):
        x = np.random.default_rng(steps).normal(size=(3, steps, 3)).astype(np.float32)
        with torch.inference_mode():
            per_step, pooled = net(torch.from_numpy(x))
        r = seq_client.post("/v2/models/steps/infer", json={"inputs": [oip_json("input", x)]})
        assert r.status_code == 200, r.text
        got = {o["name"]: np.reshape(o["data"], o["shape"]) for o in r.json()["outputs"]}
        np.testing.assert_allclose(got["output_0"], per_step.numpy(), atol=1e-5)
        np.testing.assert_allclose(got["output_1"], pooled.numpy(), atol=1e-5)
        conv = seq_client.post("/predict", json={"inputs": x.tolist()}).json()
        assert set(conv) == {"outputs"}  # no labels: no predictions
        np.testing.assert_allclose(conv["outputs"]["output_1"], pooled.numpy(), atol=1e-5)
    bad = {"inputs": [oip_json("input", np.zeros((1, 4, 2), np.float32))]}
    assert_oip_error(
        seq_client.post("/v2/models/steps/infer", json=bad),
        400,
        "input 'input' has shape [1, 4, 2], expected [-1, -1, 3]",
    )


def test_rows_of_different_lengths_share_a_pass_in_groups(
    sequence: tuple[str, SequenceNet],
) -> None:
    path, net = sequence
    runner = Runner(path)
    rng = np.random.default_rng(0)
    rows = [(rng.normal(size=(t, 3)).astype(np.float32),) for t in (2, 2, 5, 5, 5, 2)]
    answers = runner.forward(rows)
    assert len(answers) == len(rows)
    for (x,), (per_step, pooled) in zip(rows, answers, strict=True):
        with torch.inference_mode():
            want_step, want_pool = net(torch.from_numpy(x[None]))
        np.testing.assert_allclose(per_step, want_step[0].numpy(), atol=1e-5)
        np.testing.assert_allclose(pooled, want_pool[0].numpy(), atol=1e-5)
    assert runner.load_seconds > 0


def test_v1_model_metadata_shows_the_signature(tabular: TestClient) -> None:
    meta = tabular.get("/v1/model").json()
    assert meta["signature"]["inputs"] == [
        {"name": "input", "dtype": "float32", "shape": [-1, FEATURES]}
    ]
    assert meta["labels"] == list(CLASSES)
    assert tabular.get("/v2/models/wear_mlp/ready").json() == {"name": "wear_mlp", "ready": True}


def test_every_route_shares_one_batcher(model_path: str) -> None:
    """An OIP request, an image request and a JSON one that arrive together share a pass."""
    app = create_model_app(model_path)
    plane = app.state.dataplane
    digits, _ = mnist_arrays("test", 3)
    spec = plane.runner.info["input_spec"]
    x = (digits.astype(np.float32) * np.float32(spec["scale"]) - np.float32(spec["mean"])) / (
        np.float32(spec["std"])
    )
    x = x.reshape(3, 1, 28, 28)
    body = json.dumps({"inputs": [oip_json("image", x)]}).encode()

    async def together() -> tuple:
        return await asyncio.gather(
            plane.infer("mnist_mlp_v1", None, body, None),
            plane.predict_images(list(digits)),
            plane.predict_json(x.tolist()),
        )

    before = plane.batcher.passes
    (oip_body, _), images, convenience = asyncio.run(together())
    assert plane.batcher.passes - before == 1 and plane.batcher.images >= 9
    logits = np.reshape(json.loads(oip_body)["outputs"][0]["data"], (3, 10))
    np.testing.assert_allclose(logits, convenience["outputs"]["logits"], atol=1e-6)
    assert [int(i) for i in logits.argmax(axis=1)] == [a["prediction"] for a in images]
    assert [p["prediction"] for p in convenience["predictions"]] == [
        str(a["prediction"]) for a in images
    ]
    plane.batcher.close()


def test_integer_inputs_keep_their_dtype(tmp_path: Path) -> None:
    """A token model (int64 in): ints are taken, floats refused rather than truncated."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.EmbeddingBag(50, 4), torch.nn.Linear(4, 2))
    path = tmp_path / "tokens.lance"
    modelrec.write_model(
        path,
        module=net,
        example_input=torch.randint(0, 50, (4, 6)),
        input_spec={"shape": [6], "dtype": "int64"},
        params={},
        metrics={},
        history=[],
        source={},
        labels=["no", "yes"],
        architecture="embedding bag",
    )
    tokens = np.arange(12, dtype=np.int64).reshape(2, 6)
    with torch.inference_mode():
        want = net(torch.from_numpy(tokens)).numpy()
    with TestClient(create_model_app(str(path)), raise_server_exceptions=False) as c:
        meta = c.get("/v2/models/tokens").json()
        assert meta["inputs"] == [{"name": "input", "datatype": "INT64", "shape": [-1, 6]}]
        header = json.dumps(
            {
                "inputs": [
                    {"name": "input", "shape": [2, 6], "datatype": "INT64",
                     "parameters": {"binary_data_size": tokens.nbytes}}
                ],
                "parameters": {"binary_data_output": True},
            }
        ).encode()  # fmt: skip
        r = c.post(
            "/v2/models/tokens/infer",
            content=header + tokens.astype("<i8").tobytes(),
            headers={"Inference-Header-Content-Length": str(len(header))},
        )
        assert r.status_code == 200, r.text
        length = int(r.headers["inference-header-content-length"])
        out = json.loads(r.content[:length])["outputs"][0]
        assert out["parameters"]["binary_data_size"] == 2 * 2 * 4
        got = np.frombuffer(r.content[length:], "<f4").reshape(out["shape"])
        np.testing.assert_allclose(got, want, atol=1e-6)
        conv = c.post("/predict", json={"inputs": tokens.tolist()}).json()
        np.testing.assert_allclose(conv["outputs"]["output"], want, atol=1e-6)
        assert_envelope(
            c.post("/predict", json={"inputs": [[0.5] * 6]}),
            "input 'input' holds float64 values, expected int64",
        )
        fp32 = {"inputs": [oip_json("input", tokens.astype(np.float32))]}
        assert_oip_error(
            c.post("/v2/models/tokens/infer", json=fp32), 400, "datatype FP32, expected INT64"
        )


def test_bfloat16_tensors_round_trip_as_oip_bits() -> None:
    values = np.array([1.0, -2.5, 3.140625], np.float32)
    body, length = infer_type.encode_response({}, [("y", "bfloat16", values)], {"y": True})
    assert length is not None
    raw = body[length:]
    assert raw == torch.tensor(values).to(torch.bfloat16).view(torch.int16).numpy().tobytes()
    request = InferenceRequest.model_validate(
        {"inputs": [{"name": "y", "shape": [3], "datatype": "BF16",
                     "parameters": {"binary_data_size": len(raw)}}]}
    )  # fmt: skip
    np.testing.assert_array_equal(infer_type.input_arrays(request, raw)["y"], values)
