"""What a person sees: progress in words and as a bar, long errors and narrow windows that
never widen the page, a failed service start, and the units of durations and sizes."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.support import wait_until
from tests.ui.browser import page_overflow

pytestmark = pytest.mark.slow

NARROW = {"width": 700, "height": 900}

# Reports a training-like point, waits for the test, reports a records point, waits again.
PROGRESS_SCRIPT = """
import time
from pathlib import Path

from lakekit.progress import report


def wait_for(path):
    deadline = time.monotonic() + 120
    while not Path(path).exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def run(input_path, output_path, params):
    report(epoch=2, epochs=4, step=60, steps=100, train_loss=0.25, test_accuracy=0.9)
    wait_for(params["next"])
    report(records_done=1500, records_total=4000, split="train")
    wait_for(params["end"])
    return {}
"""

# One word longer than any window, then many short ones: both must wrap inside the card.
LONG_WORD = "no_space_" * 40
LONG_NAME = "ui_long_error_".ljust(64, "x")  # the longest name there is
LONG_ERROR_SCRIPT = f"""
def run(input_path, output_path, params):
    raise ValueError({LONG_WORD!r} + " and then many words" * 30)
"""


def add_script(scripts_root: Path, name: str, text: str) -> str:
    (scripts_root / "ui").mkdir(exist_ok=True)
    (scripts_root / "ui" / name).write_text(textwrap.dedent(text))
    return f"ui/{name}"


def start_task(api: httpx.Client, name: str, script: str, params: dict[str, Any]) -> str:
    answer = api.post(
        "/api/v1/ingestion-tasks",
        json={
            "name": name,
            "input": "raw/mnist",
            "script": script,
            "params": params,
            "output": name,
        },
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def assert_nothing_overflows(page: Any, where: str) -> None:
    over = page_overflow(page)
    assert over["page"] <= 0, f"{where}: the page scrolls sideways by {over['page']} px"
    assert all(x <= 0 for x in over["tables"]), f"{where}: a table runs past its card: {over}"
    assert all(x <= 0 for x in over["cards"]), f"{where}: a card runs past the page: {over}"


def text_fits(locator: Any) -> bool:
    """Neither cut off nor spilling: the element's content fits its box."""
    return bool(
        locator.evaluate(
            "el => el.scrollWidth <= el.clientWidth && el.scrollHeight <= el.clientHeight"
        )
    )


def test_progress_is_a_bar_with_words_in_the_list_and_on_the_task_page(
    page: Any, ui: str, api: httpx.Client, scripts_root: Path, tmp_path: Path
) -> None:
    script = add_script(scripts_root, "progress.py", PROGRESS_SCRIPT)
    go_on, end = tmp_path / "next", tmp_path / "end"
    task_id = start_task(api, "ui_progress", script, {"next": str(go_on), "end": str(end)})
    # One task at a time here (the local default): the next one waits for this one.
    queued = start_task(api, "ui_queued", "fixtures/exit_ok.py", {})
    try:
        page.goto(f"{ui}#/tasks")
        row = page.locator(f'tr[data-id="{task_id}"]')
        # steps are the bar's unit (60 of 100), the epoch its words; no raw keys.
        expect(row.get_by_test_id("progress-text")).to_have_text(
            "epoch 2 of 4 · 60 %", timeout=30_000
        )
        waiting = page.locator(f'tr[data-id="{queued}"]').get_by_test_id("waiting")
        expect(waiting).to_contain_text("waiting to start")
        bar = row.get_by_test_id("progress-bar")
        expect(bar).to_have_attribute("aria-valuenow", "60")
        expect(bar.locator("i")).to_have_attribute("style", "width:60.0%")
        assert text_fits(row.get_by_test_id("progress-text"))
        expect(row.get_by_test_id("progress")).to_have_attribute(
            "title", "epoch 2 of 4 · 60 % · train loss 0.25 · test accuracy 90.00 %"
        )

        row.get_by_role("link", name="ui_progress").click()
        live = page.locator(".live")
        expect(live.get_by_test_id("progress-text")).to_have_text("epoch 2 of 4 · 60 %")
        expect(live.get_by_test_id("progress-detail")).to_have_text(
            "train loss 0.25 · test accuracy 90.00 %"
        )
        go_on.touch()
        # The page polls: the next point replaces the words and moves the bar back.
        expect(live.get_by_test_id("progress-text")).to_have_text(
            "1,500 of 4,000 records · 37 %", timeout=30_000
        )
        expect(live.get_by_test_id("progress-detail")).to_have_text("train split")
        expect(live.get_by_test_id("progress-bar").locator("i")).to_have_attribute(
            "style", "width:37.5%"
        )
        assert text_fits(live.get_by_test_id("progress-text"))
    finally:
        end.touch()
        for started in (queued, task_id):
            api.post(f"/api/v1/ingestion-tasks/{started}/cancel")


def test_a_long_error_wraps_inside_its_card_and_opens_in_full(
    page: Any, ui: str, api: httpx.Client, scripts_root: Path
) -> None:
    script = add_script(scripts_root, "long_error.py", LONG_ERROR_SCRIPT)
    task_id = start_task(api, LONG_NAME, script, {})

    def failed() -> dict[str, Any] | None:
        task = api.get(f"/api/v1/ingestion-tasks/{task_id}").json()
        return task if task["status"] == "failed" else None

    error = wait_until(failed, timeout=60, interval=0.25)["error"]
    assert LONG_WORD in error["message"]

    page.goto(f"{ui}#/tasks")
    shown = page.locator(f'tr[data-error-for="{task_id}"]').get_by_test_id("clip")
    expect(shown).to_contain_text(LONG_WORD[:50])
    # Folded to two lines, the whole text in its title; a click shows all of it.
    full = f"{error['reason']}: {error['type']} — {error['message']}"
    expect(shown).to_have_attribute("title", full)
    folded = shown.bounding_box()
    assert folded and folded["height"] < 60, folded
    assert_nothing_overflows(page, "tasks, a long error folded")
    shown.click()
    expect(shown).to_have_class("clip error-inline open")
    opened = shown.bounding_box()
    assert opened and opened["height"] > 3 * folded["height"], opened
    assert_nothing_overflows(page, "tasks, a long error opened")
    page.set_viewport_size(NARROW)
    assert_nothing_overflows(page, f"tasks, a long error opened, at {NARROW['width']} px")

    page.get_by_role("link", name=LONG_NAME).click()
    expect(page.locator(".live").get_by_test_id("error").locator(".error-message")).to_have_text(
        error["message"]
    )
    assert_nothing_overflows(page, "the task's page")


def test_a_narrow_window_never_scrolls_sideways(
    browser: Any, platform: Any, ui: str, lake: dict[str, Any]
) -> None:
    context = browser.new_context(viewport=NARROW)
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        for hash_, ready in [
            ("#/datasets", f'tr[data-id="{lake["dataset"]}"]'),
            ("#/tasks", "tr[data-kind]"),
            (f"#/datasets/{lake['dataset']}", ".card"),
            ("#/models", f'tr[data-id="{lake["model"]["id"]}"]'),
            (f"#/models/{lake['model']['id']}", "[data-testid=curves]"),
            ("#/services", f'tr[data-id="{lake["service"]["id"]}"]'),
            ("#/pad", "canvas[data-testid=pad]"),
        ]:
            page.goto(f"{ui}{hash_}")
            expect(page.locator(ready).first).to_be_visible()
            assert_nothing_overflows(page, f"{hash_} at {NARROW['width']} px")
    finally:
        context.close()


def test_a_failed_service_start_shows_the_failed_service_and_its_error(
    page: Any, ui: str, lake: dict[str, Any], api: httpx.Client
) -> None:
    page.goto(f"{ui}#/services")
    form = page.get_by_test_id("service-form")
    form.locator("[name=name]").fill("ui_no_gpu")
    form.locator("[name=device]").fill("cuda:99")  # no machine here has a hundredth GPU
    form.get_by_role("button", name="Start service").click()
    try:
        shown = form.get_by_test_id("error")
        expect(shown.locator(".error-code")).to_have_text("SERVICE_UNAVAILABLE", timeout=90_000)
        service = next(
            s for s in api.get("/api/v1/inference-services").json() if s["name"] == "ui_no_gpu"
        )
        assert service["status"] == "failed" and service["error"], service
        expect(shown.locator(".error-message")).to_contain_text("ui_no_gpu")

        # Listed at once, without a reload: failed, with the reason the record keeps.
        row = page.locator(f'tr[data-id="{service["id"]}"]')
        expect(row.locator(".badge")).to_have_attribute("data-status", "failed")
        expect(row).to_contain_text("cuda:99")
        reason = page.locator(f'tr[data-error-for="{service["id"]}"]').get_by_test_id("clip")
        expect(reason).to_have_text(service["error"])
        expect(reason).to_have_attribute("title", service["error"])
        expect(row.get_by_role("button", name="Delete")).to_be_visible()
        expect(row.get_by_role("link", name="Draw")).to_have_count(0)
        assert_nothing_overflows(page, "services with a failed one")
    finally:
        for s in api.get("/api/v1/inference-services").json():
            if s["name"] == "ui_no_gpu":
                api.delete(f"/api/v1/inference-services/{s['id']}")


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (12.34, "12.3 s"),
        (59.96, "1 min 0 s"),
        (179.6, "3 min 0 s"),  # was "2 min 60 s"
        (179.4, "2 min 59 s"),
        (3599.6, "1 h 0 min"),
        (7380, "2 h 3 min"),
    ],
)
def test_durations_are_rounded_once(page: Any, ui: str, seconds: float, shown: str) -> None:
    page.goto(ui)
    got = page.evaluate("async (s) => (await import('/ui/js/dom.js')).fmtSeconds(s)", seconds)
    assert got == shown


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (999, "999 B"),
        (1500, "1.5 kB"),
        (999_700, "1.0 MB"),  # not "1000 kB"
        (1_000_000, "1.0 MB"),
        (47_040_000, "47.0 MB"),
        (250_000_000, "250 MB"),
        (3_200_000_000, "3.2 GB"),
    ],
)
def test_sizes_are_decimal_like_the_clis(page: Any, ui: str, size: int, shown: str) -> None:
    page.goto(ui)
    got = page.evaluate("async (n) => (await import('/ui/js/dom.js')).fmtBytes(n)", size)
    assert got == shown
