"""Models: the list, and a model's page with a curve per history series, one point per epoch."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.ui.conftest import EPOCHS

pytestmark = pytest.mark.slow

# What the charts treat as a point's position rather than a measure (see chart.js).
AXIS_KEYS = {"epoch", "epochs", "step", "steps", "time", "timestamp"}


def test_the_model_page_plots_every_history_series_per_epoch(
    page: Any, ui: str, lake: dict[str, Any]
) -> None:
    model = lake["model"]
    history = model["history"]
    assert len(history) == EPOCHS
    series = sorted(
        {
            key
            for point in history
            for key, value in point.items()
            if isinstance(value, int | float) and key not in AXIS_KEYS
        }
    )
    assert {"train_loss", "test_loss", "test_accuracy"} <= set(series)

    page.goto(f"{ui}#/models/{model['id']}")
    curves = page.get_by_test_id("curves")
    expect(curves).to_be_visible()
    for key in series:
        path = curves.locator(f'path[data-series="{key}"]')
        expect(path).to_have_attribute("data-points", str(EPOCHS))
        # One "M" then one "L" per further epoch: a line through every epoch's value.
        d = path.get_attribute("d") or ""
        assert d.count("M") == 1 and d.count("L") == EPOCHS - 1, d
        assert curves.locator(f'g[data-series="{key}"] circle').count() == EPOCHS
    # Losses share one chart and accuracy has its own: their scales differ.
    loss = curves.locator('figure[data-chart="Loss"]')
    expect(loss.locator("path[data-series]")).to_have_count(sum("loss" in key for key in series))
    expect(
        curves.locator('figure[data-chart="Accuracy"] path[data-series="test_accuracy"]')
    ).to_have_count(1)

    accuracy = model["metrics"]["test_accuracy"]
    expect(page.locator(".stat", has_text="test accuracy")).to_contain_text(
        f"{accuracy * 100:.2f} %"
    )
    expect(page.locator("table.kv", has_text="learning_rate")).to_be_visible()


def test_the_models_list_links_to_each_model(page: Any, ui: str, lake: dict[str, Any]) -> None:
    model = lake["model"]
    page.goto(f"{ui}#/models")
    row = page.locator(f'tr[data-id="{model["id"]}"]')
    expect(row).to_contain_text(f"{model['metrics']['test_accuracy'] * 100:.2f} %")
    expect(row).to_contain_text(f"{lake['dataset']} v")
    row.get_by_role("link", name=model["id"]).click()
    expect(page).to_have_url(f"{ui}#/models/{model['id']}")
    expect(page.get_by_test_id("curves")).to_be_visible()
