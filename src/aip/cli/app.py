"""``main``: parse, run one command, and turn what it raised into a message and an exit code."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Sequence

from aip.cli.context import Context, UsageError
from aip.cli.exits import EXIT_INTERRUPTED, EXIT_PIPE_CLOSED, EXIT_USAGE, exit_code_for
from aip.cli.output import Output
from aip.cli.parser import build_parser
from aip.errors import PlatformError, TaskFailedError, TaskTimeoutError


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``aip`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    try:
        return _run(argv)
    except BrokenPipeError:
        # The reader went away (`aip models show m | head`): nobody is left to read a message.
        _quiet_stdout()
        return EXIT_PIPE_CLOSED
    except KeyboardInterrupt:  # Ctrl-C while a command was being set up or torn down
        return EXIT_INTERRUPTED


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        # argparse drops write errors, but a buffered help would fail again at exit: here,
        # while main can still end quietly.
        sys.stdout.flush()
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    out = Output(json_mode=args.json)
    ctx = Context(args, out)
    try:
        return int(args.func(ctx))
    except UsageError as exc:
        out.error("USAGE", str(exc))
        return EXIT_USAGE
    except TaskFailedError as exc:
        hint = "" if exc.reason == "cancelled" else f"log: aip tasks logs {exc.task.id}"
        out.error(exc.code, str(exc), hint)
        return exit_code_for(exc.code)
    except TaskTimeoutError as exc:
        out.error(exc.code, str(exc))
        return exit_code_for(exc.code)
    except PlatformError as exc:
        out.error(exc.code, exc.message)
        return exit_code_for(exc.code)
    except KeyboardInterrupt:
        if out.pipe_closed:  # a log reader thread stopped the wait: see progress._start_pump
            _quiet_stdout()
            return EXIT_PIPE_CLOSED
        out.error("INTERRUPTED", "interrupted")
        return EXIT_INTERRUPTED
    finally:
        ctx.close()


def _quiet_stdout() -> None:
    # What is still buffered would fail again when the interpreter flushes stdout at exit and
    # print "Exception ignored ... BrokenPipeError": send it to /dev/null instead.
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, io.UnsupportedOperation):
        return  # not a real file (a test's capture): nothing will be flushed to a pipe
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)
