"""Make the README screenshots: ``python -m tests.ui.screenshots [DIR]`` (default ``docs``).

Starts a platform in a temporary folder, ingests MNIST, trains the CNN for a few epochs (so the
curves have some length), serves it, then saves ``ui.png`` (the drawing pad with a digit drawn
as a person would: smooth strokes, and its prediction) and ``ui-model.png`` (the model's page).
Takes a few minutes on 2 cores.
"""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import expect, sync_playwright

from tests.support import PlatformServers
from tests.ui.browser import VIEWPORT, launch
from tests.ui.conftest import wait_task

ROWS = 12000
EPOCHS = 4


def two() -> list[list[tuple[float, float]]]:
    """A handwritten "2" in unit coordinates: an arc, a diagonal, a base line."""
    arc = [
        (0.5 + 0.19 * math.cos(math.radians(a)), 0.34 + 0.17 * math.sin(math.radians(a)))
        for a in range(200, 380, 12)
    ]
    return [[*arc, (0.6, 0.55), (0.3, 0.8), (0.42, 0.78), (0.72, 0.8)]]


def draw(page: Any, selector: str, strokes: list[list[tuple[float, float]]]) -> None:
    box = page.locator(selector).bounding_box()
    for stroke in strokes:
        x, y = stroke[0]
        page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"])
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"], steps=4)
        page.mouse.up()


def prepare(api: httpx.Client) -> str:
    steps = [
        ("ingestion", "raw/mnist", "pipelines/mnist_clean.py", "mnist_clean"),
        ("training", "mnist_clean", "training/mnist_cnn.py", "mnist_cnn"),
    ]
    params = {
        "ingestion": {"normalize": True},
        "training": {"epochs": EPOCHS, "limit": ROWS, "threads": 1},
    }
    for kind, source, script, output in steps:
        body = {
            "name": f"{output}_{kind}",
            "input": source,
            "script": script,
            "params": params[kind],
            "output": output,
        }
        task = api.post(f"/api/v1/{kind}-tasks", json=body).json()
        print(f"{kind}: {task['id']}", flush=True)
        wait_task(api, kind, task["id"])
    svc = api.post("/api/v1/inference-services", json={"name": "mnist_cnn", "model": "mnist_cnn"})
    svc.raise_for_status()
    return svc.json()["id"]


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        servers = PlatformServers(Path(tmp)).start()
        try:
            with httpx.Client(base_url=servers.url, timeout=600) as api:
                service = prepare(api)
            with sync_playwright() as pw:
                browser = launch(pw)
                page = browser.new_page(viewport=VIEWPORT)
                page.goto(f"{servers.url}/ui/#/pad?service={service}")
                draw(page, "canvas[data-testid=pad]", two())
                expect(page.get_by_test_id("prediction")).to_be_visible()
                page.mouse.move(0, 0)  # no hover effects in the picture
                page.screenshot(path=str(out / "ui.png"))
                page.goto(f"{servers.url}/ui/#/models/mnist_cnn")
                expect(page.get_by_test_id("curves")).to_be_visible()
                page.screenshot(path=str(out / "ui-model.png"))
                browser.close()
        finally:
            servers.stop()
    print(f"wrote {out / 'ui.png'} and {out / 'ui-model.png'}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs"))
