"""The UI's files as the AI Platform serves them (no browser, no other service needed)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ai_platform.app import create_app
from ai_platform.settings import AIPlatformSettings
from ai_platform.ui import STATIC_DIR


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    # Not entered as a context manager: no lifespan, so no Data Platform is needed.
    yield TestClient(create_app(AIPlatformSettings(state_dir=tmp_path)))


def test_ui_redirects_to_its_index_which_browsers_revalidate(client: TestClient) -> None:
    moved = client.get("/ui", follow_redirects=False)
    assert moved.status_code in (301, 302, 307, 308)
    assert moved.headers["location"].endswith("/ui/")
    index = client.get("/ui/")
    assert index.status_code == 200
    assert index.headers["content-type"].startswith("text/html")
    assert index.headers["cache-control"] == "no-cache"
    assert '<script type="module" src="js/main.js">' in index.text


def test_every_module_is_served_as_javascript(client: TestClient) -> None:
    for path in sorted(STATIC_DIR.rglob("*.js")):
        response = client.get(f"/ui/{path.relative_to(STATIC_DIR).as_posix()}")
        assert response.status_code == 200, path
        # Browsers refuse to run a module served with another type.
        assert response.headers["content-type"].startswith("text/javascript"), path


def test_imports_resolve_to_files_and_nothing_loads_from_the_network() -> None:
    for path in STATIC_DIR.rglob("*"):
        if path.suffix not in {".js", ".html", ".css"}:
            continue
        text = path.read_text()
        assert not re.search(r"(src|href)=\"(https?:)?//", text), path
        assert "@import" not in text and "url(http" not in text, path
        for target in re.findall(r'\bfrom "(\.[^"]+)";', text):
            assert (path.parent / target).resolve().is_file(), f"{path}: {target}"


def test_a_missing_file_answers_with_the_error_envelope(client: TestClient) -> None:
    response = client.get("/ui/js/nope.js")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"
