"""Progress reporting for user scripts.

A script calls ``report(epoch=1, loss=0.12)`` whenever it likes; the platform that runs it reads
the reports and shows the latest one, and the whole history, on the task. Outside the platform
(a script run by hand, a test) ``report`` does nothing, so the ``run(input, output, params)``
contract is unchanged and scripts that never report still work.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

ENV_VAR = "LAKEKIT_PROGRESS_FILE"


def report(**values: Any) -> None:
    """Record one progress point, e.g. ``report(epoch=2, step=300, loss=0.05)``.

    Values must be JSON-serialisable (numbers, strings, lists, dicts).
    """
    path = os.environ.get(ENV_VAR)
    if not path:
        return
    line = json.dumps({"time": time.time(), **values}, default=float)
    # One write per line on an O_APPEND file: the reader never sees half a line from us.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def _parse(lines: list[str]) -> list[dict[str, Any]]:
    points = []
    for line in lines:
        try:
            point = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(point, dict):
            points.append(point)
    return points


class Follower:
    """Reads the progress points appended to a file since the last ``poll``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path
        self.offset = 0

    def poll(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return []
        complete = data[: data.rfind(b"\n") + 1]  # a line still being written waits
        self.offset += len(complete)
        return _parse(complete.decode("utf-8", errors="replace").splitlines())
