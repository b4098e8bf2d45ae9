"""One real platform for the SDK and CLI tests, and one model trained and served through it.

Starting both services costs ~10-15 s on 2 cores, and training and serving a model ~30 s, so
``tests/sdk`` and ``tests/cli`` share them: they run one after the other (``reorder``), the
servers start with the first test that needs them and stop after the last of these tests
(``after_test``). When the session will run a serving test, the model is ingested, trained and
served in a background thread from the start, overlapping the other tests instead of adding to
them.
"""

from __future__ import annotations

import gzip
import importlib.util
import threading

import numpy as np
import pytest

from aip import Client, ServiceNotFound
from tests.support import MNIST_DIR, REPO, PlatformServers

# Tasks run one at a time by default; a test's sleeping task must not hold up the others.
CONCURRENT_TASKS = "4"
# An MLP on 2000 digits, one epoch. ``normalize`` stores the pixel scale (1/255) in the dataset,
# the scale serving applies too.
INGEST_PARAMS = {"limit": 2000, "normalize": True}
TRAIN_PARAMS = {"epochs": 1, "limit": 2000, "threads": 1}
DATASET = "shared_mnist"
MODEL = "shared_mlp"
SERVICE = "shared_digits"
SERVED_FIXTURE = "served"  # tests that request this fixture need the model


MY_DIRS = (REPO / "tests" / "sdk", REPO / "tests" / "cli")


class _Shared:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.servers: PlatformServers | None = None
        self.preparing: threading.Thread | None = None
        self.failure: BaseException | None = None


_state = _Shared()


def model_server_missing() -> str | None:
    """Why serving cannot be tested here, or None."""
    if importlib.util.find_spec("ai_platform.serving.model_server") is None:
        return "ai_platform.serving.model_server is not there yet"
    return None


def is_mine(item: pytest.Item) -> bool:
    return any(item.path.is_relative_to(d) for d in MY_DIRS)


def needs_model(item: pytest.Item) -> bool:
    return SERVED_FIXTURE in getattr(item, "fixturenames", ())


def reorder(items: list[pytest.Item]) -> None:
    """Run the SDK and CLI tests one after the other, serving tests last; others keep order.

    Contiguous, the shared servers live only while these tests run (see ``after_test``);
    serving tests last leave the most time for the model to be trained in the background.
    Idempotent, as both directories' conftests call it.
    """
    mine = [item for item in items if is_mine(item)]
    if not mine:
        return
    first = items.index(mine[0])
    others = [item for item in items if not is_mine(item)]
    mine = [i for i in mine if not needs_model(i)] + [i for i in mine if needs_model(i)]
    items[:] = others[:first] + mine + others[first:]


def get(factory: pytest.TempPathFactory, session: pytest.Session) -> PlatformServers:
    """The shared servers, started if they are not running."""
    with _state.lock:
        if _state.servers is None:
            root = factory.mktemp("aip_platform")
            servers = PlatformServers(root, DP_MAX_CONCURRENT_TASKS=CONCURRENT_TASKS).start()
            _state.servers = servers
            if any(needs_model(item) for item in session.items) and not model_server_missing():
                _state.preparing = threading.Thread(
                    target=_prepare, args=(servers.url,), name="prepare-model", daemon=True
                )
                _state.preparing.start()
        return _state.servers


def _prepare(url: str) -> None:
    try:
        with Client(url) as client:
            client.ingestion.submit(
                name=DATASET,
                input="raw/mnist",
                script="pipelines/mnist_clean.py",
                output=DATASET,
                params=INGEST_PARAMS,
            ).wait(timeout=300, poll=0.2)
            client.training.submit(
                name=MODEL,
                input=DATASET,
                script="training/mnist_mlp.py",
                output=MODEL,
                params=TRAIN_PARAMS,
            ).wait(timeout=300, poll=0.2)
            client.services.create(SERVICE, MODEL)
    except BaseException as exc:  # reported by served(), in the test that needs the model
        _state.failure = exc


def served() -> tuple[str, str]:
    """(model name, service name) of the model trained and served through the platform."""
    reason = model_server_missing()
    if reason:
        pytest.skip(reason)
    thread = _state.preparing
    assert thread is not None, "the platform fixture did not start preparing the model"
    thread.join(600)
    if _state.failure is not None:
        pytest.fail(f"training or serving the shared model failed: {_state.failure!r}")
    return MODEL, SERVICE


def after_test(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the servers after the last of these tests, not at the end of the whole session."""
    if nextitem is None or not is_mine(nextitem):
        stop()


def stop() -> None:
    """Stop the servers if they run; deleting the shared service is checked on the way."""
    with _state.lock:
        servers, thread, failure = _state.servers, _state.preparing, _state.failure
        _state.servers = _state.preparing = _state.failure = None
        if servers is None:
            return
        try:
            if thread is not None and not thread.is_alive() and failure is None:
                with Client(servers.url) as client:
                    client.services.delete(SERVICE)
                    with pytest.raises(ServiceNotFound):
                        client.services.get(SERVICE)
        finally:
            servers.stop()


def mnist_digits(count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``count`` official MNIST test images (28x28 uint8) and their labels."""
    with gzip.open(MNIST_DIR / "t10k-images-idx3-ubyte.gz") as fh:
        images = np.frombuffer(fh.read(), np.uint8, offset=16).reshape(-1, 28, 28)[:count]
    with gzip.open(MNIST_DIR / "t10k-labels-idx1-ubyte.gz") as fh:
        labels = np.frombuffer(fh.read(), np.uint8, offset=8)[:count]
    return images, labels
