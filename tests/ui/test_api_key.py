"""With an API key on the server, the page sends the key a person enters, and only then works."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.support import PlatformServers, Server
from tests.ui.browser import VIEWPORT

pytestmark = pytest.mark.slow

KEY = "s3cret-key"


@pytest.fixture(scope="module")
def keyed(platform: PlatformServers) -> Iterator[Server]:
    """A second AI Platform that wants a key, over the package's Data Platform (which does not:
    the key the AI Platform forwards to it is then simply not checked)."""
    state = Path(platform.dp.env["DP_LAKE_ROOT"]).parent / "keyed-state"
    env = {"AIP_DATA_PLATFORM_URL": platform.dp.url, "AIP_STATE_DIR": str(state)}
    server = Server("ai_platform", {**env, "AIP_API_KEY": KEY}, "AIP_PORT", state.parent / "k.log")
    yield server.start()
    server.stop()


def test_requests_carry_the_key_entered_in_the_page(browser: Any, keyed: Server) -> None:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    try:  # the page loads without a key (its files hold no secret); its API calls need one
        page.goto(f"{keyed.url}/ui/#/datasets")
        error = page.get_by_test_id("error")
        expect(error).to_have_attribute("data-code", "UNAUTHORIZED")
        expect(error).to_contain_text("set the API key")

        page.get_by_role("button", name="API key").click()
        page.locator("#key-input").fill(KEY)
        with page.expect_request("**/api/v1/datasets") as sent:
            page.get_by_role("button", name="Save").click()
        assert sent.value.headers.get("authorization") == f"Bearer {KEY}"
        expect(page.locator("main h1")).to_have_text("Datasets")
        expect(page.locator("main .card")).to_be_visible()  # the list, or "No datasets yet"
        expect(page.get_by_test_id("error")).to_have_count(0)
        assert page.evaluate("localStorage.getItem('aip.apiKey')") == KEY

        page.reload()  # kept across reloads
        expect(page.locator("main .card")).to_be_visible()
        expect(page.get_by_test_id("error")).to_have_count(0)
        page.get_by_role("button", name="API key").click()
        page.get_by_role("button", name="Forget").click()
        expect(page.get_by_test_id("error")).to_have_attribute("data-code", "UNAUTHORIZED")
    finally:
        context.close()
