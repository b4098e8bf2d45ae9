"""The trivial task: a script that does nothing, to measure what running any task costs.

Copied into the bench's scripts root as ``bench/noop.py``; the bare baseline runs this same
file in a fresh interpreter (``python -m bench.noop``).
"""

from __future__ import annotations

from typing import Any


def run(input_path: str, output_path: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"noop": True}


if __name__ == "__main__":
    run("", "", {})
