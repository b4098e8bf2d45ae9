"""The drawing pad: a real MNIST digit traced with the mouse, predicted by a served CNN."""

from __future__ import annotations

import math
import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.ui.browser import bar_probabilities, mnist_test_digit, trace_digit

pytestmark = pytest.mark.slow

PAD = "canvas[data-testid=pad]"
# The first test image is a clear 7; a model this accurate reads it right (it does at ~95%).
DIGIT_INDEX = 0
ACCURATE = 0.9


def test_a_traced_mnist_digit_is_predicted(
    page: Any, ui: str, lake: dict[str, Any], api: httpx.Client
) -> None:
    image, label = mnist_test_digit(DIGIT_INDEX)
    page.goto(f"{ui}#/pad?service={lake['service']['id']}")
    page.uncheck("#pad-auto")  # the answer below comes from the button alone
    assert trace_digit(page, PAD, image) > 5

    page.get_by_role("button", name="Predict").click()
    prediction = page.get_by_test_id("prediction")
    expect(prediction).to_have_text(re.compile(r"^[0-9]$"))
    digit = int(prediction.inner_text())
    probs = bar_probabilities(page)
    assert len(probs) == 10
    assert math.isclose(sum(probs), 1.0, abs_tol=1e-3)
    assert max(range(10), key=probs.__getitem__) == digit
    expect(page.get_by_test_id("confidence")).to_have_text(f"{probs[digit] * 100:.2f} %")

    # The page shows exactly what the API answers for the canvas it sent.
    png = page.locator(PAD).evaluate("c => c.toDataURL('image/png').split(',')[1]")
    answer = api.post(
        f"/api/v1/inference-services/{lake['service']['id']}/predict", json={"image": png}
    ).json()
    assert answer["prediction"] == digit
    assert probs == pytest.approx(answer["probabilities"], abs=1e-9)

    if lake["model"]["metrics"]["test_accuracy"] >= ACCURATE:
        assert digit == label, f"drew a {label}, the model read {digit}: {probs}"


def test_a_stroke_predicts_by_itself_and_clear_resets(page: Any, ui: str, lake: dict) -> None:
    page.goto(f"{ui}#/pad")
    page.locator("#pad-service").select_option(lake["service"]["id"])
    expect(page.locator("#pad-auto")).to_be_checked()
    box = page.locator(PAD).bounding_box()
    assert box
    # A "1": one vertical stroke down the middle.
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.15)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.85, steps=12)
    page.mouse.up()
    expect(page.get_by_test_id("prediction")).to_have_text(re.compile(r"^[0-9]$"))
    assert math.isclose(sum(bar_probabilities(page)), 1.0, abs_tol=1e-3)

    page.get_by_role("button", name="Clear").click()
    expect(page.get_by_test_id("prediction")).to_have_count(0)
    assert bar_probabilities(page) == [0.0] * 10
    # A blank pad is not sent: the page says to draw first.
    page.get_by_role("button", name="Predict").click()
    expect(page.get_by_test_id("result")).to_contain_text("draw a digit first")
