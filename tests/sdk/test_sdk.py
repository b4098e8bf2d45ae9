"""The SDK against real services: tasks, handles, errors, datasets; serving on a real model."""

from __future__ import annotations

import ast
import base64
import io
import json
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

import aip
from aip import (
    Client,
    Conflict,
    Dataset,
    DatasetNotFound,
    InvalidRequest,
    ModelNotFound,
    NotFound,
    PlatformError,
    PlatformUnreachable,
    PortInUse,
    Prediction,
    ServiceAlreadyExists,
    ServiceNotFound,
    Task,
    TaskAlreadyFinished,
    TaskAlreadyRunning,
    TaskCancelledError,
    TaskFailedError,
    TaskHandle,
    TaskNotFound,
    TaskTimeoutError,
    Unauthorized,
    UpstreamUnavailable,
    encode_image,
)
from tests.sdk import shared
from tests.support import free_port, wait_until


def submit(client: Client, name: str, script: str, output: str = "out", **params) -> TaskHandle:
    return client.ingestion.submit(
        name=name, input="raw/mnist", script=script, output=output, params=params
    )


def sleeper(client: Client, tmp_path: Path, name: str) -> TaskHandle:
    """A running task that never ends by itself; returns once its script runs."""
    pid_file = tmp_path / f"{name}.pid"
    handle = submit(client, name, "fixtures/sleep_forever.py", pid_file=str(pid_file))
    wait_until(pid_file.exists, timeout=30)
    return handle


# -- tasks ---------------------------------------------------------------------------------


def test_submit_and_wait_returns_the_completed_record(client: Client):
    handle = submit(client, "sdk_ok", "fixtures/exit_ok.py", "sdk_ok", color="blue")
    assert handle.id.startswith("ingest-") and handle.kind == "ingestion"
    assert handle.record.status in ("pending", "running")

    task = handle.wait(timeout=60, poll=0.1)

    assert isinstance(task, Task) and task.status == "completed" and task.finished
    assert task.stats is not None and task.stats["ok"] is True and task.result == task.stats
    assert task.params == {"color": "blue"} and task.error is None
    assert task.completed_at is not None and task.duration is not None and task.duration >= 0
    assert task.raw["id"] == handle.id and task.raw["status"] == "completed"  # .raw is the JSON
    assert handle.status() == "completed"
    assert "hello from exit_ok" in handle.logs()
    assert client.ingestion.get(handle.id).record.status == "completed"
    assert handle.id in [t.id for t in client.ingestion.list(status="completed")]
    assert handle.id not in [t.id for t in client.ingestion.list(status="failed")]


def test_progress_and_on_progress(client: Client):
    seen: list[Task] = []
    handle = submit(client, "sdk_progress", "fixtures/report_progress.py", epochs=3)

    task = handle.wait(timeout=60, poll=0.1, on_progress=seen.append)

    assert seen and seen[-1].status == "completed"  # called at least with the final record
    assert [p["epoch"] for p in task.history] == [1, 2, 3]
    point = handle.progress()
    assert point is not None and point["epoch"] == 3 and point["accuracy"] == pytest.approx(0.8)
    assert "time" in point


def test_failed_task_raises_task_failed_error_with_the_message(client: Client):
    handle = submit(client, "sdk_fail", "fixtures/raise_error.py")

    with pytest.raises(TaskFailedError) as info:
        handle.wait(timeout=60, poll=0.1)

    exc = info.value
    assert not isinstance(exc, TaskCancelledError)
    assert exc.reason == "exception" and exc.error is not None and exc.error.type == "ValueError"
    assert "bad pixels in row 42" in exc.message and "bad pixels in row 42" in str(exc)
    assert exc.task.status == "failed" and exc.task.id == handle.id
    assert "Traceback" in handle.logs() and "about to fail" in handle.logs(tail=100)


def test_timeout_conflict_and_cancel(client: Client, tmp_path: Path):
    handle = sleeper(client, tmp_path, "sdk_sleep")
    try:
        # Waiting less than the task takes: TaskTimeoutError, and the task runs on.
        with pytest.raises(TaskTimeoutError) as timeout:
            handle.wait(timeout=0.3, poll=0.1)
        assert isinstance(timeout.value, TimeoutError)
        assert timeout.value.task.status == "running" and handle.status() == "running"

        # Same name while it runs: the server's 409, as the lakekit class with its code.
        with pytest.raises(TaskAlreadyRunning) as conflict:
            submit(client, "sdk_sleep", "fixtures/exit_ok.py")
        assert conflict.value.code == "TASK_ALREADY_RUNNING"
        assert isinstance(conflict.value, Conflict)
    finally:
        cancelled = handle.cancel()
    assert cancelled.status == "failed" and cancelled.cancelled
    assert cancelled.error is not None and cancelled.error.reason == "cancelled"

    # Cancel again: the server says 409 TASK_ALREADY_FINISHED; the SDK returns the record.
    again = handle.cancel()
    assert again.status == "failed" and again.cancelled
    assert client.ingestion.cancel(handle.id).cancelled
    # For callers that must tell "stopped it" from "it had ended" (the CLI exits 4).
    with pytest.raises(TaskAlreadyFinished) as ended:
        handle.cancel(finished_ok=False)
    assert ended.value.code == "TASK_ALREADY_FINISHED" and handle.record.cancelled

    with pytest.raises(TaskCancelledError) as info:
        handle.wait(timeout=10)
    assert isinstance(info.value, TaskFailedError) and info.value.reason == "cancelled"


def test_follow_logs_streams_until_the_task_ends(client: Client, tmp_path: Path):
    handle = sleeper(client, tmp_path, "sdk_follow")
    received = ""
    with handle.follow_logs() as stream:
        for chunk in stream:
            received += chunk
            if "sleeping" in received:
                handle.cancel()  # the stream then ends by itself
    assert "sleeping" in received


def test_follow_logs_can_be_closed_from_another_thread(client: Client, tmp_path: Path):
    handle = sleeper(client, tmp_path, "sdk_close")
    try:
        stream = handle.follow_logs()
        chunks: list[str] = []
        reader = threading.Thread(target=lambda: chunks.extend(stream))
        reader.start()
        wait_until(lambda: "sleeping" in "".join(chunks), timeout=10)
        # The reader is now blocked waiting for more output from a task that prints nothing.
        stream.close()
        reader.join(5)
        assert not reader.is_alive()
        assert handle.status() == "running"

        # Closed in the reading thread, between two reads: the iteration just ends.
        again = handle.follow_logs(tail=1)
        assert "sleeping" in next(again)
        again.close()
        assert list(again) == []
    finally:
        handle.cancel()


def test_errors_carry_the_server_codes(client: Client):
    with pytest.raises(DatasetNotFound) as missing:
        client.training.submit(
            name="sdk_ghost", input="ghost", script="training/mnist_mlp.py", output="m"
        )
    assert missing.value.code == "DATASET_NOT_FOUND" and isinstance(missing.value, NotFound)
    assert missing.value.status == 404

    for call, code in (
        (lambda: client.datasets.get("ghost"), "DATASET_NOT_FOUND"),
        (lambda: client.datasets.versions("ghost"), "DATASET_NOT_FOUND"),
        (lambda: client.datasets.delete("ghost"), "DATASET_NOT_FOUND"),
        (lambda: client.models.get("ghost"), "MODEL_NOT_FOUND"),
        (lambda: client.models.delete("ghost"), "MODEL_NOT_FOUND"),
        (lambda: client.task("train-000000000000"), "TASK_NOT_FOUND"),
        (lambda: client.task("nonsense"), "TASK_NOT_FOUND"),
        (lambda: client.ingestion.get("train-000000000000"), "TASK_NOT_FOUND"),
        (lambda: client.services.get("ghost"), "SERVICE_NOT_FOUND"),
        (lambda: client.services.create("sdk_ghost", "ghost"), "MODEL_NOT_FOUND"),
        (lambda: client.datasets.get("bad.name"), "INVALID_REQUEST"),
        (lambda: submit(client, "bad name", "fixtures/exit_ok.py"), "INVALID_REQUEST"),
        (lambda: client.list_tasks(kind="other"), "INVALID_REQUEST"),
    ):
        with pytest.raises(PlatformError) as info:
            call()
        assert info.value.code == code, (code, info.value)
    with pytest.raises(TaskNotFound):
        client.task("ingest-000000000000")
    with pytest.raises(ModelNotFound):
        client.models.get("ghost")
    with pytest.raises(ServiceNotFound):
        client.services.delete("ghost")
    with pytest.raises(InvalidRequest):
        client.ingestion.list(status="sleeping")


def test_unreachable_platform_is_a_clear_error():
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url) as client, pytest.raises(PlatformUnreachable) as info:
        client.datasets.list()
    assert info.value.code == "UPSTREAM_UNAVAILABLE" and info.value.url == url
    assert isinstance(info.value, UpstreamUnavailable) and url in info.value.message


def test_datasets_and_training_on_them(client: Client):
    submit(client, "sdk_rows", "fixtures/write_rows.py", "sdk_rows", rows=4).wait(60, 0.1)

    dataset = client.datasets.get("sdk_rows")
    assert isinstance(dataset, Dataset)
    assert dataset.num_rows == 4 and dataset.schema_ == {"x": "int64", "tag": "string"}
    assert dataset.raw["schema"] == dataset.schema_ and dataset.version >= 1
    assert "sdk_rows" in [d.id for d in client.datasets.list()]
    assert [v.version for v in client.datasets.versions("sdk_rows")][-1] == dataset.version

    task = client.training.submit(
        name="sdk_fit",
        input="sdk_rows",
        script="fixtures/train_tiny.py",
        output="sdk_m",
        params={"epochs": 2},
    ).wait(timeout=60, poll=0.1)
    assert task.id.startswith("train-") and task.kind == "training"
    assert task.metrics == {"epochs": 2} and task.result == task.metrics and task.stats is None
    assert task.input == "sdk_rows"
    assert client.task(task.id).record.id == task.id
    kinds = {t.kind for t in client.list_tasks()}
    assert kinds == {"ingestion", "training"}
    assert all(t.kind == "training" for t in client.list_tasks(kind="training"))

    client.datasets.delete("sdk_rows")
    with pytest.raises(DatasetNotFound):
        client.datasets.get("sdk_rows")


# -- without a server ----------------------------------------------------------------------


def test_env_defaults_and_the_api_key(monkeypatch: pytest.MonkeyPatch):
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if request.headers.get("authorization") != "Bearer s3cret":
            return httpx.Response(
                401, json={"error": {"code": "UNAUTHORIZED", "message": "missing or wrong key"}}
            )
        return httpx.Response(200, json=[])

    monkeypatch.setenv("AIP_URL", "http://aip.example:9000/")
    monkeypatch.setenv("AIP_API_KEY", "s3cret")
    with Client(transport=httpx.MockTransport(handler)) as client:
        assert client.base_url == "http://aip.example:9000"
        assert client.datasets.list() == []
    assert str(sent[0].url) == "http://aip.example:9000/api/v1/datasets"

    with (
        Client(api_key="wrong", transport=httpx.MockTransport(handler)) as client,
        pytest.raises(Unauthorized) as info,
    ):
        client.models.list()
    assert info.value.code == "UNAUTHORIZED"

    monkeypatch.delenv("AIP_URL")
    assert Client().base_url == "http://127.0.0.1:8000"


def sdk_imports() -> dict[str, set[str]]:
    """Which ``aip`` modules each module of the package imports (package ``__init__``s aside)."""
    root = Path(aip.__file__).parent
    graph: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        if path.name == "__init__.py":
            continue
        module = ".".join(("aip", *path.relative_to(root).with_suffix("").parts))
        tree = ast.parse(path.read_text())
        graph[module] = {
            node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("aip.")
        }
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    def visit(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        for dep in graph.get(module, ()):
            cycle = visit(dep, [*path, module])
            if cycle:
                return cycle
        return None

    for module in graph:
        cycle = visit(module, [])
        if cycle:
            return cycle
    return None


def test_the_handles_need_only_the_public_transport():
    # No import cycle among the SDK's modules (type-checking imports count too), and the
    # handles work from the transport and their path, never from the client.
    graph = sdk_imports()
    assert "aip.client" not in graph["aip.handles"] and "aip.transport" in graph["aip.handles"]
    assert find_cycle(graph) is None, find_cycle(graph)

    service = {"id": "serve-1", "name": "d", "model": "m", "port": 1, "endpoint": "http://x:1"}
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        return httpx.Response(200, json={**service, "status": "running"})

    with Client("http://x", transport=httpx.MockTransport(handler)) as client:
        handle = client.services.get("serve-1")
        assert handle.refresh().status == "running"
        assert client.http.json("GET", "/health")["id"] == "serve-1"  # calls the SDK lacks
    assert seen == [
        "GET /api/v1/inference-services/serve-1",
        "GET /api/v1/inference-services/serve-1",
        "GET /health",
    ]


def test_a_body_without_the_envelope_is_still_a_platform_error():
    transport = httpx.MockTransport(lambda r: httpx.Response(502, text="Bad Gateway"))
    with Client("http://x", transport=transport) as client, pytest.raises(PlatformError) as info:
        client.datasets.list()
    assert "502" in info.value.message


def test_encode_image_takes_bytes_paths_arrays_and_pil_images(tmp_path: Path):
    digit = np.arange(784, dtype=np.uint8).reshape(28, 28)
    assert base64.b64decode(encode_image(digit)) == digit.tobytes()  # raw pixels, no PNG
    assert base64.b64decode(encode_image(digit[None])) == digit.tobytes()  # (1, 28, 28)
    assert base64.b64decode(encode_image(b"\x89PNG...")) == b"\x89PNG..."

    big = np.zeros((56, 40), dtype=np.uint8)
    png = base64.b64decode(encode_image(big))
    assert png.startswith(b"\x89PNG") and Image.open(io.BytesIO(png)).size == (40, 56)
    rgb = Image.new("RGB", (30, 20), "white")
    assert Image.open(io.BytesIO(base64.b64decode(encode_image(rgb)))).size == (30, 20)

    path = tmp_path / "digit.png"
    rgb.save(path)
    assert base64.b64decode(encode_image(path)) == path.read_bytes()
    assert encode_image(str(path)) == encode_image(path)

    with pytest.raises(ValueError, match="uint8"):
        encode_image(digit.astype(np.float32))
    with pytest.raises(ValueError, match="shape"):
        encode_image(np.zeros((2, 3, 4, 5), dtype=np.uint8))
    with pytest.raises(TypeError):
        encode_image(12)
    with pytest.raises(FileNotFoundError):
        encode_image(tmp_path / "missing.png")


def test_predict_sends_base64_and_reads_predictions():
    bodies: list[dict] = []
    answer = {"prediction": 3, "confidence": 0.9, "probabilities": [0.01] * 10}
    service = {
        "id": "serve-1",
        "name": "digits",
        "model": "m",
        "port": 1,
        "status": "running",
        "endpoint": "http://127.0.0.1:1",
    }

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json=service)
        body = json.loads(request.content)
        bodies.append(body)
        if "images" in body:
            return httpx.Response(200, json={"predictions": [answer] * len(body["images"])})
        return httpx.Response(200, json=answer)

    with Client("http://x", transport=httpx.MockTransport(handler)) as client:
        handle = client.services.get("serve-1")
        digit = np.zeros((28, 28), dtype=np.uint8)
        single = handle.predict(digit)
        batch = handle.predict_batch([digit, b"\x89PNG"])
        assert handle.predict_batch([]) == []
    assert isinstance(single, Prediction) and single.prediction == 3 and single.raw == answer
    assert [p.prediction for p in batch] == [3, 3]
    assert bodies[0] == {"image": base64.b64encode(bytes(784)).decode()}
    assert len(bodies[1]["images"]) == 2 and len(bodies) == 2


# -- serving -------------------------------------------------------------------------------


@pytest.mark.slow
def test_predict_with_a_model_trained_and_served_through_the_platform(
    client: Client, served: tuple[str, str]
):
    model, name = served  # created with client.services.create; deleted at session end
    record = client.models.get(model)
    assert record.metrics["test_accuracy"] > 0.5 and len(record.history) == 1
    assert record.source["name"] == shared.DATASET and record.weights_bytes > 0

    service = client.services.get(name)  # by name; the id works too
    assert service.id.startswith("serve-") and client.services.get(service.id).name == name
    assert service.record.status == "running" and service.status() == "running"
    assert service.record.model == model and service.record.model_version == record.version
    assert service.id in [s.id for s in client.services.list()]

    digits, labels = shared.mnist_digits(50)
    batch = service.predict_batch(list(digits))
    accuracy = np.mean([p.prediction == label for p, label in zip(batch, labels, strict=True)])
    assert accuracy > 0.5, accuracy
    for p in batch:
        assert 0 <= p.prediction <= 9 and len(p.probabilities) == 10
        assert sum(p.probabilities) == pytest.approx(1, abs=1e-4)

    # One digit, every way a caller may hold it: raw array, PNG bytes, a path, a PIL image.
    first = batch[0]
    assert service.predict(digits[0]).prediction == first.prediction
    image = Image.fromarray(255 - digits[0]).resize((112, 112))  # dark on light, larger
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    assert service.predict(buf.getvalue()).prediction == first.prediction
    assert service.predict(image).prediction == first.prediction
    with pytest.raises(InvalidRequest):
        service.predict(b"not an image")
    assert isinstance(service.logs(tail_bytes=1000), str)

    # Conflicts are answered before any model server starts.
    with pytest.raises(ServiceAlreadyExists):
        client.services.create(name, model)
    with pytest.raises(PortInUse) as taken:
        client.services.create("sdk_other", model, port=service.record.port)
    assert taken.value.code == "PORT_IN_USE"
