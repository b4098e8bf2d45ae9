"""``aip``: the AI Platform from a shell, over the SDK (``aip.Client``) only.

Every command takes ``--url``, ``--api-key`` and ``--json`` (before or after the command name).
Human output is tables (rich); ``--json`` prints the server's JSON on stdout instead, and errors
as ``{"error": {"code", "message"}}`` on stderr. Exit codes come from one table,
:data:`EXIT_BY_CODE`, and are listed in ``aip --help``.

The package, by role: :mod:`~aip.cli.parser` (the argument tree), :mod:`~aip.cli.commands`
(one module per resource), :mod:`~aip.cli.output` (tables, JSON, units),
:mod:`~aip.cli.progress` (progress bars and lines), :mod:`~aip.cli.exits` (exit codes),
:mod:`~aip.cli.app` (``main``).
"""

from aip.cli.app import main
from aip.cli.commands.tasks import parse_params
from aip.cli.exits import EXIT_BY_CODE, exit_code_for
from aip.cli.parser import build_parser
from aip.cli.progress import describe_progress

__all__ = [
    "EXIT_BY_CODE",
    "build_parser",
    "describe_progress",
    "exit_code_for",
    "main",
    "parse_params",
]
