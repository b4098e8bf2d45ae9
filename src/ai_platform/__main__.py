"""``python -m ai_platform``: serve the AI Platform with settings from the environment."""

from __future__ import annotations

import logging

from ai_platform.app import create_app
from ai_platform.settings import AIPlatformSettings
from serverkit.http import serve


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # One line per Data Platform call buries what matters (and costs a write per request);
    # httpx's warnings and errors still show.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = AIPlatformSettings()
    serve(create_app(settings), settings.host, settings.port)


if __name__ == "__main__":
    main()
