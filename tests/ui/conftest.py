"""One real platform for the UI tests, with MNIST ingested, a CNN trained and served.

Everything is set up through the REST API (not the UI) so that a UI bug fails the test about it
and not every test at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import PlatformServers, wait_until
from tests.ui.browser import CHROMIUM, VIEWPORT, launch

# Small enough to train in seconds on 2 cores, large enough for a CNN to read a clear digit
# (about 95% test accuracy after 2 epochs; 2 epochs also make every curve a line, not a dot).
ROWS = 4000
EPOCHS = 2
TASK_TIMEOUT = 240.0


def wait_task(api: httpx.Client, kind: str, task_id: str) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        task = api.get(f"/api/v1/{kind}-tasks/{task_id}").json()
        return task if task["status"] in ("completed", "failed") else None

    task = wait_until(finished, timeout=TASK_TIMEOUT, interval=0.25)
    assert task["status"] == "completed", task
    return task


@pytest.fixture(scope="package")
def platform_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ui-platform")


@pytest.fixture(scope="package")
def platform(platform_root: Path) -> Iterator[PlatformServers]:
    servers = PlatformServers(platform_root).start()
    yield servers
    servers.stop()


@pytest.fixture(scope="package")
def scripts_root(platform: PlatformServers, platform_root: Path) -> Path:
    """Where the platform finds scripts: a test may add its own there."""
    return platform_root / "scripts"


@pytest.fixture(scope="package")
def api(platform: PlatformServers) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=platform.url, timeout=120) as client:
        yield client


@pytest.fixture(scope="package")
def lake(api: httpx.Client) -> dict[str, Any]:
    """Ingest, train and serve; the names and the model record the tests look for."""
    task = api.post(
        "/api/v1/ingestion-tasks",
        json={
            "name": "ui_ingest",
            "input": "raw/mnist",
            "script": "pipelines/mnist_clean.py",
            # normalize: the trained model then expects pixels in [0, 1], as serving feeds them.
            "params": {"limit": ROWS, "normalize": True},
            "output": "mnist",
        },
    ).json()
    wait_task(api, "ingestion", task["id"])
    task = api.post(
        "/api/v1/training-tasks",
        json={
            "name": "ui_train",
            "input": "mnist",
            "script": "training/mnist_cnn.py",
            # One torch thread: on 2 busy cores (servers, browser, other tests) two threads
            # were measured 8x slower per epoch than one, from OpenMP threads waiting on each
            # other.
            "params": {"epochs": EPOCHS, "limit": ROWS, "threads": 1},
            "output": "mnist_cnn",
        },
    ).json()
    wait_task(api, "training", task["id"])
    created = api.post("/api/v1/inference-services", json={"name": "cnn_svc", "model": "mnist_cnn"})
    assert created.status_code == 201, created.text
    return {
        "dataset": "mnist",
        "model": api.get("/api/v1/models/mnist_cnn").json(),
        "service": created.json(),
    }


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch(pw)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any, platform: PlatformServers) -> Iterator[Any]:
    """A fresh page (own storage); fails the test on any uncaught JavaScript error."""
    context = browser.new_context(viewport=VIEWPORT, base_url=platform.url)
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


@pytest.fixture
def ui(platform: PlatformServers) -> str:
    return f"{platform.url}/ui/"
