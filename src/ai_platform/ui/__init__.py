"""The web UI: a static single-page app under ``/ui`` that calls the platform's own REST API.

Plain HTML, CSS and JavaScript modules with no build step and no server-side state: the browser
fetches ``/api/v1/...`` like any other client, so the UI shows exactly what the API answers
(errors included, from their ``{"error": {"code", "message"}}`` envelope) and needs nothing from
the server but these files.

Layout of ``static/``: ``index.html`` (header, tabs, API-key box), ``app.css``, and ES modules
under ``js/``: ``main.js`` (hash router), ``api.js`` (fetch, the key, the error envelope),
``dom.js`` (element and formatting helpers), ``chart.js`` (SVG line charts) and one module per
page in ``js/pages/``. Nothing is loaded from the network.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent / "static"
PREFIX = "/ui"


class _UIFiles(StaticFiles):
    """Static files that browsers revalidate on every load.

    ``no-cache`` still lets them use their copy (304 on a matching ETag), but never a stale one:
    after an upgrade of the server, a page reload runs the new JavaScript at once.
    """

    def file_response(
        self, full_path: str | os.PathLike[str], *args: Any, **kwargs: Any
    ) -> Response:
        response = super().file_response(full_path, *args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response


def mount(app: FastAPI) -> None:
    """Serve the UI at ``/ui/`` (``/ui`` redirects there, so relative module paths resolve)."""
    app.mount(PREFIX, _UIFiles(directory=STATIC_DIR, html=True), name="ui")
