"""What the platform tells a task's script through its environment, as the helpers use it.

Kept apart from the helpers that use it (and free of heavy imports): ``lakekit.datasets``
writes with the task's write mode, ``lakekit.models`` records the task and script that
saved a model.
"""

from __future__ import annotations

import hashlib
import os
import sys
from typing import Any

TASK_ID_ENV = "LAKEKIT_TASK_ID"  # the platform's task id, in the task's environment
WRITE_MODE_ENV = "LAKEKIT_WRITE_MODE"  # create, overwrite or append: as the task was submitted
_SCRIPT_MODULE = "user_script"  # the name the platform's task runner imports the script as


def write_mode() -> str:
    """The write mode the platform gave this task (``overwrite`` outside a task).

    Raises:
        ValueError: ``LAKEKIT_WRITE_MODE`` is set to something else than the three modes.
    """
    mode = os.environ.get(WRITE_MODE_ENV, "").strip() or "overwrite"
    if mode not in ("create", "overwrite", "append"):
        raise ValueError(f"{WRITE_MODE_ENV}={mode!r}: use create, overwrite or append")
    return mode


def provenance() -> dict[str, Any]:
    """What made this record: the platform's task id and the script with its sha256."""
    found: dict[str, Any] = {}
    if os.environ.get(TASK_ID_ENV):
        found["task_id"] = os.environ[TASK_ID_ENV]
    script = getattr(sys.modules.get(_SCRIPT_MODULE), "__file__", None)
    if script and os.path.isfile(script):
        with open(script, "rb") as fh:
            found["script_sha256"] = hashlib.sha256(fh.read()).hexdigest()
        found["script"] = os.path.abspath(script)
    return found
