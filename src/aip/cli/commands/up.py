"""``aip up``: both services in the foreground."""

from __future__ import annotations

from aip.cli.context import Context


def cmd_up(ctx: Context) -> int:
    from lakestack.launcher import main as launch  # only this command needs the servers

    return launch()
