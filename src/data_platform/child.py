"""The process a task runs in: import the user's script and call ``run``.

Invoked as ``python -m data_platform.child TASK_ID SCRIPT INPUT OUTPUT SPEC_FILE``. The spec file
holds the params; the outcome is written as JSON to ``RESULT_FILE`` (from the environment),
never to stdout, which belongs to the user's log. Kept free of heavy imports so that a trivial
task starts fast.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import traceback
from typing import Any

from lakekit.procs import die_with_parent

RESULT_ENV = "LAKEKIT_RESULT_FILE"


def _write_outcome(outcome: dict[str, Any]) -> None:
    path = os.environ[RESULT_ENV]
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(outcome, fh)
    os.replace(tmp, path)


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
        _write_outcome({"ok": False, "type": type(exc).__name__, "message": str(exc)})
        return 1
    if not isinstance(result, dict):
        message = f"run() returned {type(result).__name__}, expected a dict"
        print(message, file=sys.stderr)
        _write_outcome({"ok": False, "type": "BadResult", "message": message})
        return 1
    try:
        _write_outcome({"ok": True, "result": result})
    except (TypeError, ValueError) as exc:
        message = f"run() returned a dict that is not JSON-serialisable: {exc}"
        print(message, file=sys.stderr)
        _write_outcome({"ok": False, "type": "BadResult", "message": message})
        return 1
    return 0


if __name__ == "__main__":
    sys.stdout.flush()
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: a script's leftover threads must not keep the task alive.
    os._exit(code)
