"""Datasets and inference services pages."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.ui.conftest import ROWS

pytestmark = pytest.mark.slow


def test_datasets_list_and_a_datasets_schema_and_versions(
    page: Any, ui: str, lake: dict[str, Any]
) -> None:
    page.goto(f"{ui}#/datasets")
    row = page.locator(f'tr[data-id="{lake["dataset"]}"]')
    expect(row).to_contain_text(f"{2 * ROWS:,}")  # the limit applies to each split
    row.get_by_role("link", name=lake["dataset"]).click()

    expect(page.get_by_role("heading", name=lake["dataset"], exact=True)).to_be_visible()
    schema = page.locator(".card", has=page.get_by_role("heading", name="Schema"))
    for column, kind in [("id", "int64"), ("split", "string"), ("label", "int64")]:
        expect(schema.locator("tr", has_text=column).first).to_contain_text(kind)
    expect(schema.locator("tr", has_text="image")).to_contain_text("binary")
    versions = page.locator(".card", has=page.get_by_role("heading", name="Versions"))
    expect(versions.locator("tbody tr").first).to_contain_text(f"{2 * ROWS:,}")


def test_the_services_page_lists_the_running_service(
    page: Any, ui: str, lake: dict[str, Any]
) -> None:
    service = lake["service"]
    page.goto(f"{ui}#/services")
    row = page.locator(f'tr[data-id="{service["id"]}"]')
    expect(row.locator(".badge")).to_have_attribute("data-status", "running")
    expect(row).to_contain_text(service["endpoint"])
    row.get_by_role("link", name="Draw").click()
    expect(page).to_have_url(f"{ui}#/pad?service={service['id']}")


def test_a_service_started_from_the_form_serves_and_is_deleted(
    page: Any, ui: str, lake: dict[str, Any], api: httpx.Client
) -> None:
    page.goto(f"{ui}#/services?model={lake['model']['id']}")
    form = page.get_by_test_id("service-form")
    expect(form.locator("[name=model]")).to_have_value(lake["model"]["id"])
    form.locator("[name=name]").fill("ui_svc")
    form.get_by_role("button", name="Start service").click()

    row = page.locator("tr", has_text="ui_svc")
    expect(row.locator(".badge")).to_have_attribute("data-status", "running", timeout=90_000)
    service = next(s for s in api.get("/api/v1/inference-services").json() if s["name"] == "ui_svc")

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Delete").click()
    expect(page.locator(f'tr[data-id="{service["id"]}"]')).to_have_count(0, timeout=30_000)
    assert api.get(f"/api/v1/inference-services/{service['id']}").status_code == 404


def test_a_refused_service_shows_the_api_error(
    page: Any, ui: str, lake: dict[str, Any], api: httpx.Client
) -> None:
    body = {"name": "ui_bad_port", "model": lake["model"]["id"], "device": "cpu", "port": 70000}
    error = api.post("/api/v1/inference-services", json=body).json()["error"]
    page.goto(f"{ui}#/services")
    form = page.get_by_test_id("service-form")
    form.locator("[name=name]").fill(body["name"])
    # A number input would stop 70000 in the browser; the API's own answer is what is tested.
    form.locator("[name=port]").evaluate("el => { el.removeAttribute('max'); }")
    form.locator("[name=port]").fill("70000")
    form.get_by_role("button", name="Start service").click()
    shown = form.get_by_test_id("error")
    expect(shown.locator(".error-code")).to_have_text(error["code"])
    expect(shown.locator(".error-message")).to_have_text(error["message"])
