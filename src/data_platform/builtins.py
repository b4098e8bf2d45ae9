"""The platform's own task kinds: scripts that ship with the platform, not under the scripts
root. A submission of such a kind names no script; the kind chooses it. Everything else about
the task (queue, supervisor, limits, roll back on failure, retries) is that of any task.
"""

from __future__ import annotations

from pathlib import Path

from data_platform.submission import Resolver
from lakeapi.errors import InvalidRequest
from lakeapi.schemas import TaskCreate

BATCH_INFERENCE = "batch_inference"
SCRIPTS = {BATCH_INFERENCE: Path(__file__).resolve().parent / "scripts" / "batch_inference.py"}


def script_of(req: TaskCreate, resolve: Resolver) -> Path:
    """The script a submission runs: the platform's for its own kinds, else the named one.

    Raises:
        InvalidRequest: a script named for a platform kind, or none for another kind.
    """
    builtin = SCRIPTS.get(req.kind)
    if builtin is not None:
        if req.script:
            raise InvalidRequest(f"{req.kind} tasks run the platform's script: omit 'script'")
        if not req.input.startswith("models/") or not req.output.startswith("datasets/"):
            raise InvalidRequest(
                f"a {req.kind} task reads 'models/NAME' and writes 'datasets/NAME'"
            )
        return builtin
    if not req.script:
        raise InvalidRequest("'script' is required: a path under the scripts root")
    return resolve.script(req.script)


def stored_script(path: Path, scripts_root: Path) -> str:
    """How the record names the script: under the scripts root relative, else absolute."""
    return str(path.relative_to(scripts_root)) if path.is_relative_to(scripts_root) else str(path)


def params_of(req: TaskCreate, input_version: int | None) -> dict[str, object]:
    """The params a task runs with: a batch inference is pinned to the model version it was
    submitted against, so a model trained meanwhile does not change what it writes."""
    if req.kind == BATCH_INFERENCE and req.params.get("model_version") is None:
        return {**req.params, "model_version": input_version}
    return req.params
