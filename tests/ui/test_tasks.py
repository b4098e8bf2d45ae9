"""Tasks: the list of both kinds, the start form, API errors shown verbatim, a task's page."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.slow


def fill_form(page: Any, kind: str, body: dict[str, Any]) -> None:
    form = page.get_by_test_id("task-form")
    form.locator("select[name=kind]").select_option(kind)
    for key in ("name", "input", "script", "params", "output"):
        value = body[key]
        form.locator(f"[name={key}]").fill(value if isinstance(value, str) else _json(value))


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


def test_an_ingestion_task_started_from_the_form_runs_to_its_dataset(
    page: Any, ui: str, lake: dict[str, Any]
) -> None:
    page.goto(f"{ui}#/tasks")
    body = {
        "name": "ui_form_ingest",
        "input": "raw/mnist",
        "script": "pipelines/mnist_clean.py",
        "params": {"limit": 300, "normalize": True},
        "output": "mnist_small",
    }
    fill_form(page, "ingestion", body)
    page.get_by_role("button", name="Start task").click()

    expect(page).to_have_url(re.compile(r"#/tasks/ingestion/[A-Za-z0-9_-]+$"))
    expect(page.locator("h1 .badge")).to_have_attribute("data-status", "completed", timeout=60_000)
    expect(page.get_by_test_id("progress-text")).to_have_text("600 of 600 records · 100 %")
    expect(page.get_by_test_id("progress-bar").locator("i")).to_have_attribute(
        "style", "width:100.0%"
    )
    expect(page.get_by_role("heading", name="Stats")).to_be_visible()

    page.get_by_role("link", name="mnist_small").click()
    expect(page).to_have_url(f"{ui}#/datasets/mnist_small")
    expect(page.locator(".stat", has_text="rows")).to_contain_text("600")


@pytest.mark.parametrize(
    ("kind", "change"),
    [
        ("training", {"name": "bad name!"}),  # refused by validation: INVALID_REQUEST
        ("training", {"input": "no_such_dataset"}),  # DATASET_NOT_FOUND
        ("ingestion", {"script": "pipelines/no_such_script.py"}),
    ],
)
def test_the_api_error_is_shown_verbatim(
    page: Any, ui: str, api: httpx.Client, kind: str, change: dict[str, str]
) -> None:
    body = {
        "name": "ui_refused",
        "input": "raw/mnist" if kind == "ingestion" else "mnist",
        "script": "pipelines/mnist_clean.py" if kind == "ingestion" else "training/mnist_cnn.py",
        "params": {"limit": 10},
        "output": "refused",
        **change,
    }
    answer = api.post(f"/api/v1/{kind}-tasks", json=body)
    assert answer.status_code >= 400, answer.text
    error = answer.json()["error"]

    page.goto(f"{ui}#/tasks")
    fill_form(page, kind, body)
    page.get_by_role("button", name="Start task").click()
    shown = page.get_by_test_id("form-error").get_by_test_id("error")
    expect(shown).to_have_attribute("data-code", error["code"])
    expect(shown.locator(".error-code")).to_have_text(error["code"])
    expect(shown.locator(".error-message")).to_have_text(error["message"])
    expect(page).to_have_url(f"{ui}#/tasks")


def test_params_that_are_not_a_json_object_are_caught_before_sending(page: Any, ui: str) -> None:
    page.goto(f"{ui}#/tasks")
    page.locator("[name=params]").fill("[1, 2]")
    page.get_by_role("button", name="Start task").click()
    expect(page.get_by_test_id("form-error")).to_contain_text("INVALID_JSON")


def test_the_list_shows_both_kinds_and_a_training_task_its_curves_and_log(
    page: Any, ui: str, lake: dict[str, Any], api: httpx.Client
) -> None:
    training = api.get("/api/v1/training-tasks").json()
    task = next(t for t in training if t["name"] == "ui_train")
    page.goto(f"{ui}#/tasks")
    row = page.locator(f'tr[data-id="{task["id"]}"]')
    expect(row).to_contain_text("training")
    expect(row.locator(".badge")).to_have_attribute("data-status", "completed")
    expect(page.locator('tr[data-kind="ingestion"]').first).to_be_visible()

    row.get_by_role("link", name="ui_train").click()
    expect(page).to_have_url(f"{ui}#/tasks/training/{task['id']}")
    expect(page.locator('path[data-series="train_loss"]')).to_have_count(1)
    expect(page.get_by_role("heading", name="Metrics")).to_be_visible()
    expect(page.get_by_role("button", name="Cancel task")).to_be_hidden()
    logs = api.get(f"/api/v1/training-tasks/{task['id']}/logs", params={"tail": 2000}).text
    if logs.strip():
        expect(page.get_by_test_id("logs")).to_contain_text(logs.strip().splitlines()[-1])


def test_a_failed_task_shows_its_error_and_log(page: Any, ui: str, api: httpx.Client) -> None:
    page.goto(f"{ui}#/tasks")
    # A test script that prints a line, then raises ValueError("bad pixels in row 42").
    fill_form(
        page,
        "ingestion",
        {
            "name": "ui_fails",
            "input": "raw/mnist",
            "script": "fixtures/raise_error.py",
            "params": {},
            "output": "never_written",
        },
    )
    page.get_by_role("button", name="Start task").click()

    expect(page.locator("h1 .badge")).to_have_attribute("data-status", "failed", timeout=60_000)
    task_id = page.url.rsplit("/", 1)[1]
    error = api.get(f"/api/v1/ingestion-tasks/{task_id}").json()["error"]
    shown = page.locator(".live").get_by_test_id("error")
    expect(shown.locator(".error-code")).to_have_text(f"{error['reason']}: {error['type']}")
    expect(shown.locator(".error-message")).to_have_text(error["message"])
    assert "bad pixels in row 42" in error["message"]
    expect(page.get_by_test_id("logs")).to_contain_text("about to fail")


def test_a_running_task_streams_its_log_and_is_cancelled_from_its_page(
    page: Any, ui: str, api: httpx.Client, tmp_path: Path
) -> None:
    task = api.post(
        "/api/v1/ingestion-tasks",
        json={
            "name": "ui_sleeps",
            "input": "raw/mnist",
            "script": "fixtures/sleep_forever.py",  # prints "sleeping", then sleeps
            "params": {"pid_file": str(tmp_path / "pid")},
            "output": "never_written",
        },
    ).json()
    page.goto(f"{ui}#/tasks/ingestion/{task['id']}")
    # Streamed while the task runs (logs?follow=true), not fetched once it ended.
    expect(page.get_by_test_id("logs")).to_contain_text("sleeping", timeout=30_000)
    expect(page.locator("h1 .badge")).to_have_attribute("data-status", "running")

    page.get_by_role("button", name="Cancel task").click()
    expect(page.locator("h1 .badge")).to_have_attribute("data-status", "failed", timeout=30_000)
    expect(page.locator(".live").get_by_test_id("error")).to_contain_text("cancelled")
    expect(page.get_by_role("button", name="Cancel task")).to_be_hidden()
