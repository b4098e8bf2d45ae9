"""The pad's nearest training digits (search) and a model's lineage chain, in a real browser."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.ui.browser import mnist_test_digit, trace_digit
from tests.ui.conftest import wait_task

pytestmark = pytest.mark.slow

PAD = "canvas[data-testid=pad]"


@pytest.fixture(scope="module")
def embedded(api: httpx.Client, lake: dict[str, Any], platform: Any) -> dict[str, Any]:
    """The served model's embeddings written into its training dataset."""
    r = api.post(
        "/api/v1/batch-inference-tasks",
        json={"model": lake["model"]["id"], "dataset": lake["dataset"]},
    )
    assert r.status_code == 201, r.text
    task = wait_task(api, "batch-inference", r.json()["id"])
    # The first embedding query imports torch and loads the model in the Data Platform, which
    # on 2 busy cores can outlast the AI Platform's upstream timeout: made here, without one.
    image, _ = mnist_test_digit(0)
    warm = httpx.post(
        f"{platform.dp.url}/api/v1/datasets/{lake['dataset']}/search",
        json={"input": image.reshape(-1).tolist(), "model": lake["model"]["id"]},
        timeout=600,
    )
    assert warm.status_code == 200, warm.text
    return task


def test_the_pad_shows_the_nearest_training_digits_beside_the_prediction(
    page: Any, ui: str, lake: dict[str, Any], embedded: dict[str, Any]
) -> None:
    image, _ = mnist_test_digit(0)
    page.goto(f"{ui}#/pad?service={lake['service']['id']}")
    page.uncheck("#pad-auto")
    trace_digit(page, PAD, image)
    page.get_by_role("button", name="Predict").click()
    digit = int(page.get_by_test_id("prediction").inner_text())
    neighbours = page.get_by_test_id("neighbour")
    expect(neighbours).to_have_count(8, timeout=60_000)
    labels = [int(n.get_attribute("data-label")) for n in neighbours.all()]
    assert Counter(labels).most_common(1)[0][0] == digit
    # Each neighbour is drawn from its stored pixels: a 28x28 canvas.
    assert neighbours.first.locator("canvas").evaluate("c => [c.width, c.height]") == [28, 28]
    page.get_by_role("button", name="Clear").click()
    expect(neighbours).to_have_count(0)


def test_a_model_page_shows_its_lineage_as_a_chain(page: Any, ui: str, lake: dict) -> None:
    page.goto(f"{ui}#/models/{lake['model']['id']}")
    steps = page.get_by_test_id("lineage-step")
    expect(steps.first).to_be_visible()
    kinds = [s.get_attribute("data-kind") for s in steps.all()]
    assert kinds[:3] == ["model", "training", "dataset"] and "ingestion" in kinds
    chain = page.get_by_test_id("lineage")
    expect(chain).to_contain_text("training/mnist_cnn.py")
    expect(chain).to_contain_text("pipelines/mnist_clean.py")
    expect(chain).to_contain_text("sha256")
