"""The process a task runs in: import the user's script and call ``run``.

Invoked as ``python -m data_platform.child TASK_ID SCRIPT INPUT OUTPUT SPEC_FILE``. The spec file
holds the params; the outcome is written as JSON to ``RESULT_FILE`` (from the environment),
never to stdout, which belongs to the user's log; a failure carries its reason as one of
``lakeapi.schemas.FailureReason``'s values. Kept free of heavy imports so that a trivial
task starts fast.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import json
import logging
import os
import sys
import traceback
from types import ModuleType
from typing import Any

from serverkit.procs import die_with_parent

RESULT_ENV = "LAKEKIT_RESULT_FILE"
HOLD_ENV = "LAKEKIT_HOLD"  # "1": wait for "go" on stdin before loading the script


def _wait_for_release() -> bool:
    """Held: the platform commits the running record meanwhile. EOF (the platform died, or
    gave up on the task) means never start: nothing may be written unrecorded."""
    if os.environ.pop(HOLD_ENV, None) != "1":
        return True
    go = sys.stdin.buffer.readline()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)  # the script sees the usual empty stdin
    os.close(devnull)
    return go.strip() == b"go"


class _DaftOnRay(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``DAFT_RUNNER=ray``: ``daft.set_runner_ray(address)`` the moment the script imports
    daft, so the runner is chosen before any Daft work runs. Not eagerly: importing daft and
    joining Ray costs ~6 s on 2 cores, which a task that never uses Daft should not pay."""

    def __init__(self, address: str | None) -> None:
        self.address = address
        self._loader: importlib.abc.Loader | None = None

    def find_spec(
        self, name: str, path: Any = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name != "daft":
            return None
        sys.meta_path.remove(self)  # once; the real finders locate daft
        spec = importlib.util.find_spec("daft")
        if spec is None or spec.loader is None:
            return spec
        self._loader, spec.loader = spec.loader, self
        return spec

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        assert self._loader is not None
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        assert self._loader is not None and module.__spec__ is not None
        module.__loader__ = module.__spec__.loader = self._loader  # daft sees its own loader
        self._loader.exec_module(module)
        module.set_runner_ray(address=self.address)


def _write_outcome(outcome: dict[str, Any]) -> None:
    path = os.environ[RESULT_ENV]
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(outcome, fh)
    os.replace(tmp, path)


def _failure(reason: str, type_name: str, message: str) -> dict[str, Any]:
    return {"ok": False, "reason": reason, "type": type_name, "message": message}


def _load_run(script: str) -> Any:
    spec = importlib.util.spec_from_file_location("user_script", script)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {script}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["user_script"] = module
    spec.loader.exec_module(module)
    run = getattr(module, "run", None)
    if not callable(run):
        raise AttributeError(f"{os.path.basename(script)} defines no run(input, output, params)")
    return run


def main(argv: list[str]) -> int:
    die_with_parent()
    # A script's logging.info lines belong in its task log, like its prints.
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if os.environ.get("DAFT_RUNNER") == "ray":
        sys.meta_path.insert(0, _DaftOnRay(os.environ.get("RAY_ADDRESS")))
    if not _wait_for_release():
        return 3
    _task_id, script, input_path, output_path, spec_file = argv
    with open(spec_file, encoding="utf-8") as fh:
        params = json.load(fh)
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    try:
        run = _load_run(script)
        result = run(input_path, output_path, params)
    except BaseException as exc:
        traceback.print_exc()
        sys.stderr.flush()
        _write_outcome(_failure("exception", type(exc).__name__, str(exc)))
        return 1
    if not isinstance(result, dict):
        message = f"run() returned {type(result).__name__}, expected a dict"
        print(message, file=sys.stderr)
        _write_outcome(
            {"ok": False, "reason": "bad_result", "type": "BadResult", "message": message}
        )
        return 1
    try:
        _write_outcome({"ok": True, "result": result})
    except (TypeError, ValueError) as exc:
        message = f"run() returned a dict that is not JSON-serialisable: {exc}"
        print(message, file=sys.stderr)
        _write_outcome(
            {"ok": False, "reason": "bad_result", "type": "BadResult", "message": message}
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.stdout.flush()
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: a script's leftover threads must not keep the task alive.
    os._exit(code)
