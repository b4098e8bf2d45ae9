"""What every command gets: its arguments, where to write, and a client made on first use."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from aip.cli.exits import EXIT_OK
from aip.cli.output import Output
from aip.client import Client


class UsageError(Exception):
    """Bad arguments argparse could not see (exit 2)."""


class Context:
    """A command's arguments, its :class:`Output`, and the SDK client (made when first used)."""

    def __init__(self, args: argparse.Namespace, out: Output) -> None:
        self.args = args
        self.out = out
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(base_url=self.args.url, api_key=self.args.api_key)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def deleted(self, kind: str, ident: str) -> int:
        """Report a deletion; returns the exit code (0)."""
        if self.out.json_mode:
            self.out.json({"deleted": ident, "kind": kind})
        else:
            self.out.text(f"deleted {kind} {ident}")
        return EXIT_OK

    def logs(self, ident: str, text: str) -> int:
        """Print a log as it is (``{"id", "logs"}`` with --json); returns the exit code (0)."""
        if self.out.json_mode:
            self.out.json({"id": ident, "logs": text})
        else:
            self.out.write(text)
        return EXIT_OK


Command = Callable[[Context], int]
