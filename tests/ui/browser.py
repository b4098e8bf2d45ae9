"""Driving the UI in Debian's headless Chromium, and drawing MNIST digits on its pad."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from tests.support import MNIST_DIR

# Debian's build; Playwright's own browser downloads are not reachable here, and are not needed.
CHROMIUM = Path(shutil.which("chromium") or "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 800}
INK = 128  # an MNIST pixel at least this bright is traced


def launch(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}


def block_network(context: Any) -> list[str]:
    """Abort every request of ``context`` that leaves the loopback; returns their URLs, as
    they are tried, so a test can also check that nothing even tried."""
    tried: list[str] = []

    def route(route: Any) -> None:
        url = route.request.url
        if urlsplit(url).scheme in ("data", "blob") or urlsplit(url).hostname in LOOPBACK:
            route.continue_()
        else:
            tried.append(url)
            route.abort("internetdisconnected")

    context.route("**/*", route)
    return tried


def page_overflow(page: Any) -> dict[str, Any]:
    """How far the page and each table's box run past where they should end (0 when not)."""
    return page.evaluate(
        """() => ({
          page: document.documentElement.scrollWidth - document.documentElement.clientWidth,
          tables: [...document.querySelectorAll(".table-wrap")].map(
            (w) => w.scrollWidth - w.clientWidth),
          cards: [...document.querySelectorAll(".card")].map(
            (c) => Math.round(c.getBoundingClientRect().right
              - document.querySelector("main").getBoundingClientRect().right)),
        })"""
    )


def mnist_test_digit(index: int) -> tuple[np.ndarray, int]:
    """One official MNIST test image (28x28 uint8, white on black) and its label."""
    with gzip.open(MNIST_DIR / "t10k-images-idx3-ubyte.gz") as fh:
        images = np.frombuffer(fh.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(MNIST_DIR / "t10k-labels-idx1-ubyte.gz") as fh:
        labels = np.frombuffer(fh.read(), np.uint8, offset=8)
    return images[index].copy(), int(labels[index])


def ink_runs(image: np.ndarray, threshold: int = INK) -> list[tuple[int, int, int]]:
    """Horizontal runs of ink as (row, first column, last column)."""
    runs = []
    for y, row in enumerate(image >= threshold):
        x = 0
        while x < len(row):
            if row[x]:
                start = x
                while x + 1 < len(row) and row[x + 1]:
                    x += 1
                runs.append((y, start, x))
            x += 1
    return runs


def trace_digit(page: Any, canvas_selector: str, image: np.ndarray) -> int:
    """Draw ``image`` on the pad with the mouse, one stroke per run of ink; returns strokes."""
    box = page.locator(canvas_selector).bounding_box()
    assert box, "the pad is not visible"
    cell = min(box["width"], box["height"]) / image.shape[0]
    runs = ink_runs(image)
    for y, x0, x1 in runs:
        top = box["y"] + (y + 0.5) * cell
        page.mouse.move(box["x"] + (x0 + 0.5) * cell, top)
        page.mouse.down()
        page.mouse.move(box["x"] + (x1 + 0.5) * cell, top, steps=max(1, x1 - x0))
        page.mouse.up()
    return len(runs)


def bar_probabilities(page: Any) -> list[float]:
    """The ten probabilities the pad's bars show, in digit order."""
    bars = page.locator("[data-testid=bars] .bar-row")
    return [float(bars.nth(i).get_attribute("data-prob") or "nan") for i in range(bars.count())]
