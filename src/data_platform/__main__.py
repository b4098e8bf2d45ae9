"""``python -m data_platform``: serve the Data Platform with settings from the environment."""

from __future__ import annotations

import logging

from data_platform.app import create_app
from data_platform.settings import DataPlatformSettings
from serverkit.http import quiet_request_logs, serve


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = DataPlatformSettings()
    quiet_request_logs(settings.log_requests)
    serve(create_app(settings), settings.host, settings.port, access_log=settings.log_requests)


if __name__ == "__main__":
    main()
