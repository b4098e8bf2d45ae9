"""Where a command writes: tables and text for people, JSON with ``--json``; units and times.

Data goes to stdout, remarks and errors to stderr. Sizes are decimal everywhere (the web UI
uses the same rule): 1 kB = 1,000 bytes, 1 MB = 1,000,000 bytes, 1 GB = 10^9 bytes.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Console, JustifyMethod
from rich.table import Table
from rich.text import Text


class _Console(Console):
    def on_broken_pipe(self) -> None:
        # rich's own answer re-points fd 1 and exits 1 from wherever it wrote; main decides.
        raise BrokenPipeError


class Output:
    """What a command prints through.

    Attributes:
        json_mode: ``--json`` was given.
        pipe_closed: a write found its reader gone (``| head``); the command should end quietly.
    """

    def __init__(self, json_mode: bool) -> None:
        self.json_mode = json_mode
        self.pipe_closed = False
        # Piped output gets a wide console so tables are not squeezed to 80 columns.
        width = None if sys.stdout.isatty() else _piped_width()
        self.console = _Console(highlight=False, emoji=False, width=width)
        self.err = _Console(stderr=True, highlight=False, emoji=False, width=width)

    def write(self, text: str) -> None:
        """Raw text on stdout, flushed (a log as the server sent it)."""
        sys.stdout.write(text)
        sys.stdout.flush()

    def json(self, data: Any) -> None:
        # Not through rich: it would wrap long strings.
        self.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")

    def json_line(self, data: Any) -> None:
        """One compact JSON document per line (a stream a consumer can parse as it reads)."""
        self.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")

    def print(self, *items: Any, **kwargs: Any) -> None:
        if self.console.is_terminal:
            self.console.print(*items, **kwargs)
            return
        # Piped: plain text, so drop the padding rich puts after the last column of a table.
        with self.console.capture() as captured:
            self.console.print(*items, **kwargs)
        lines = captured.get().splitlines()
        self.write("".join(line.rstrip() + "\n" for line in lines))

    def text(self, value: str) -> None:
        """Print data (a log, a message) as it is: no markup, no wrapping."""
        self.print(Text(value), soft_wrap=True)

    def table(self, columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str = "") -> None:
        """Print a table; cells are data (``Text``), never rich markup."""
        table = Table(
            box=box.SIMPLE_HEAD,
            show_edge=False,
            pad_edge=False,
            header_style="bold",
            title=title or None,
            title_justify="left",
            title_style="bold",
        )
        cells = [[v if isinstance(v, Text) else Text(cell(v)) for v in row] for row in rows]
        for i, column in enumerate(columns):
            justify: JustifyMethod = "right" if column in NUMERIC_COLUMNS else "left"
            if column in WHOLE_COLUMNS:
                # Ids and times are copied and compared: never wrapped; the other columns give.
                width = max([len(column), *(row[i].cell_len for row in cells)])
                table.add_column(column, justify=justify, no_wrap=True, min_width=width)
            else:
                table.add_column(column, justify=justify, overflow="fold", min_width=len(column))
        for row in cells:
            table.add_row(*row)
        self.print(table)

    def fields(self, pairs: Iterable[tuple[str, Any]]) -> None:
        """``key  value`` lines; empty values are left out."""
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column(overflow="fold")
        for key, value in pairs:
            if value is None or value == "" or value == {}:
                continue
            grid.add_row(key, value if isinstance(value, Text) else Text(cell(value)))
        self.print(grid)

    def error(self, code: str, message: str, hint: str = "") -> None:
        if self.json_mode:
            body = {"error": {"code": code, "message": message}}
            sys.stderr.write(json.dumps(body) + "\n")
            return
        line = Text.assemble(("error: ", "bold red"), message, (f" [{code}]", "dim"))
        self.err.print(line, soft_wrap=True)
        if hint:
            self.err.print(Text(hint, style="dim"), soft_wrap=True)

    def note(self, message: str) -> None:
        """A remark for people, on stderr so it never mixes with data."""
        if not self.json_mode:
            self.err.print(Text(message, style="dim"), soft_wrap=True)


def history_table(out: Output, history: list[dict[str, Any]], title: str, last: int = 10) -> None:
    """The last ``last`` points of a history, one column per key."""
    if not history:
        return
    shown = history[-last:]
    columns: list[str] = []
    for point in shown:
        columns += [k for k in point if k != "time" and k not in columns]
    if len(history) > len(shown):
        title += f" (last {len(shown)} of {len(history)})"
    rows = [[point.get(c) for c in columns] for point in shown]
    out.table([c.upper() for c in columns], rows, title=title)


def _piped_width() -> int:
    try:
        return max(40, int(os.environ.get("COLUMNS", "")))
    except ValueError:
        return 160


WHOLE_COLUMNS = {"ID", "NAME", "STATUS", "CREATED", "UPDATED", "TIMESTAMP", "DIGIT", "CONFIDENCE"}
NUMERIC_COLUMNS = {"ROWS", "SIZE", "VERSION", "WEIGHTS", "ACCURACY", "CONFIDENCE", "DIGIT", "PORT"}


def cell(value: Any) -> str:
    """A value as a table cell: ``-`` for None, thousands separators, 4 significant digits."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, datetime):
        return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


SIZE_UNITS = ("kB", "MB", "GB", "TB")


def size(n: int | None) -> str:
    """Bytes in decimal units: ``999 B``, ``1.5 kB``, ``12.3 MB`` (1 MB = 1,000,000 bytes)."""
    if n is None:
        return "-"
    if abs(n) < 1000:
        return f"{n} B"
    value = float(n)
    for unit in SIZE_UNITS:
        value /= 1000
        # 999,960 bytes is "1.0 MB", not "1000.0 kB".
        if abs(round(value, 1)) < 1000 or unit == SIZE_UNITS[-1]:
            break
    return f"{value:.1f} {unit}"


def seconds(value: float | None) -> str:
    """A duration: ``4.2 s`` under a minute, else ``2m59s``."""
    if value is None:
        return "-"
    if round(value, 1) < 60:  # 59.96 s is "1m00s", not "60.0 s"
        return f"{value:.1f} s"
    minutes, secs = divmod(round(value), 60)
    return f"{minutes}m{secs:02d}s"


STATUS_STYLE = {
    "pending": "yellow",
    "starting": "yellow",
    "running": "cyan",
    "completed": "green",
    "failed": "red",
}


def status(value: str, reason: str | None = None) -> Text:
    """A status, coloured, with the failure reason when there is one: ``failed (cancelled)``."""
    label = f"{value} ({reason})" if reason else value
    return Text(label, style=STATUS_STYLE.get(value, ""))
