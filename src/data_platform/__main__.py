"""``python -m data_platform``: serve the Data Platform with settings from the environment.

``python -m data_platform check`` reports what is wrong with the lake; ``... repair`` fixes
it (see ``repair.py``); both exit 1 when problems are left.
"""

from __future__ import annotations

import logging
import sys

from data_platform.app import create_app
from data_platform.settings import DataPlatformSettings
from serverkit.http import quiet_request_logs, serve


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = DataPlatformSettings()
    if argv and argv[0] in ("check", "repair"):
        from data_platform import repair

        report = repair.check(settings) if argv[0] == "check" else repair.repair(settings)
        report.print()
        return 1 if report.problems else 0
    if argv:
        print("usage: python -m data_platform [check|repair]", file=sys.stderr)
        return 2
    quiet_request_logs(settings.log_requests)
    serve(create_app(settings), settings.host, settings.port, access_log=settings.log_requests)
    return 0


if __name__ == "__main__":
    sys.exit(main())
