"""Executors run one task's script in its own process; the manager never sees how.

``LocalExecutor`` (Level 1) starts a child process in its own session and process group, pipes
its stdout and stderr into one bounded log file, and stops it with SIGTERM, a grace period,
then SIGKILL to the whole tree. ``RayExecutor`` (Level 2, ``ray_executor.py``) runs the same
``ChildProcess`` inside a Ray task.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from data_platform.child import RESULT_ENV
from lakeapi.schemas import FailureReason, TaskError
from lakekit.progress import ENV_VAR as PROGRESS_ENV
from serverkit.procs import PARENT_ENV, kill_marked, marked_processes, signal_group

TASK_ENV = "LAKEKIT_TASK_ID"


@dataclass(frozen=True)
class RunSpec:
    """Everything an executor needs to run one task."""

    task_id: str
    script_path: Path
    input_path: str
    output_path: str
    params: dict[str, Any]
    log_path: Path
    work_dir: Path  # private scratch: params, result, progress
    daft_runner: str = "native"
    log_max_bytes: int = 50 * 1024 * 1024
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None  # None: the Data Platform's

    @property
    def progress_path(self) -> Path:
        return self.work_dir / "progress.jsonl"

    @property
    def result_path(self) -> Path:
        return self.work_dir / "result.json"


@dataclass(frozen=True)
class Outcome:
    result: dict[str, Any] | None = None
    error: TaskError | None = None


class Execution(ABC):
    """One running task."""

    pid: int | None = None

    @abstractmethod
    def wait(self, timeout: float | None = None) -> Outcome | None:
        """Block until the task ends (its outcome) or ``timeout`` passes (None)."""

    @abstractmethod
    def stop(self, grace: float) -> None:
        """SIGTERM, up to ``grace`` seconds, then SIGKILL; returns once the tree is gone."""


class Executor(ABC):
    # How many tasks run at once unless DP_MAX_CONCURRENT_TASKS says otherwise.
    default_concurrency: int = 1

    @abstractmethod
    def start(self, spec: RunSpec) -> Execution: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the runtime (a Ray cluster the executor started)."""


def child_env(spec: RunSpec) -> dict[str, str]:
    """The environment a task's process gets: ours, plus how to talk back to the platform."""
    env = dict(os.environ)
    env.update(spec.env)
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "DAFT_RUNNER": spec.daft_runner,
            TASK_ENV: spec.task_id,
            PROGRESS_ENV: str(spec.progress_path),
            RESULT_ENV: str(spec.result_path),
            PARENT_ENV: str(os.getpid()),
        }
    )
    return env


def child_argv(spec: RunSpec) -> list[str]:
    spec.work_dir.mkdir(parents=True, exist_ok=True)
    params_file = spec.work_dir / "params.json"
    params_file.write_text(json.dumps(spec.params), encoding="utf-8")
    return [
        sys.executable,
        "-m",
        "data_platform.child",
        spec.task_id,
        str(spec.script_path),
        spec.input_path,
        spec.output_path,
        str(params_file),
    ]


def read_outcome(spec: RunSpec, returncode: int, *, stopped: bool = False) -> Outcome:
    """Turn a finished child's result file and exit status into an outcome."""
    try:
        data = json.loads(spec.result_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = None
    if isinstance(data, dict) and data.get("ok") is True:
        return Outcome(result=data.get("result") or {})
    if stopped:
        return Outcome(error=TaskError(reason=FailureReason.CANCELLED, message="cancelled"))
    if isinstance(data, dict) and data.get("ok") is False:
        reason = FailureReason.BAD_RESULT if data.get("type") == "BadResult" else None
        return Outcome(
            error=TaskError(
                reason=reason or FailureReason.EXCEPTION,
                type=data.get("type"),
                message=str(data.get("message", "")),
            )
        )
    if returncode < 0:
        name = signal.Signals(-returncode).name if -returncode in signal.valid_signals() else ""
        return Outcome(
            error=TaskError(
                reason=FailureReason.KILLED,
                type=name or None,
                message=f"process killed by signal {-returncode} {name}".strip(),
            )
        )
    return Outcome(
        error=TaskError(
            reason=FailureReason.CRASHED,
            message=f"process exited with code {returncode} without a result",
        )
    )


# -- the local executor -------------------------------------------------------------------


class _LogPump(threading.Thread):
    """Copies the child's output into its log; past the cap the file is rotated once
    (``.1`` keeps the previous part) so the log stays bounded and keeps the latest lines."""

    def __init__(self, source: BinaryIO, path: Path, max_bytes: int) -> None:
        super().__init__(daemon=True, name=f"log-{path.stem}")
        self.source, self.path, self.max_bytes = source, path, max_bytes

    def run(self) -> None:
        out = open(self.path, "ab")  # noqa: SIM115 - swapped on rotation
        written = out.tell()
        try:
            while chunk := self.source.read1(65536):
                if written + len(chunk) > self.max_bytes:
                    out.close()
                    os.replace(self.path, self.path.with_suffix(".log.1"))
                    out = open(self.path, "ab")  # noqa: SIM115
                    marker = b"[log rotated: earlier output moved to the .log.1 file]\n"
                    out.write(marker)
                    written = len(marker)
                out.write(chunk)
                out.flush()
                written += len(chunk)
        finally:
            out.close()
            self.source.close()


class ChildProcess:
    """The task's process, started here: own session and process group, output pumped into
    its log. Level 1 runs it from the Data Platform; Level 2 from inside a Ray worker."""

    def __init__(self, spec: RunSpec) -> None:
        self.spec = spec
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            child_argv(spec),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=child_env(spec),
            cwd=spec.cwd,
            start_new_session=True,  # own session and process group: killpg reaches its tree
            close_fds=True,
        )
        self.pid = self.proc.pid
        assert self.proc.stdout is not None
        self._pump = _LogPump(self.proc.stdout, spec.log_path, spec.log_max_bytes)
        self._reap_lock = threading.Lock()
        self._reaped = False
        self._pump.start()

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit code once the process has ended (and nothing of its tree is left)."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self.reap()
        return code

    def terminate(self, grace: float) -> None:
        """SIGTERM to the group, up to ``grace`` seconds, then SIGKILL to the whole tree."""
        if self.proc.poll() is None:
            signal_group(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(grace)
        self.reap()

    def reap(self) -> None:
        """Kill what is left of the task's tree and finish its log, once; a second caller (a
        cancel racing the end) waits for the first to finish."""
        with self._reap_lock:
            if self._reaped:
                return
            # Grandchildren may linger after the child returned; they must not outlive the task.
            signal_group(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            kill_task_processes(self.spec.task_id)
            self._pump.join(timeout=5)
            self._reaped = True


class LocalExecution(Execution):
    def __init__(self, spec: RunSpec) -> None:
        self.spec = spec
        self._stopped = False
        self.child = ChildProcess(spec)
        self.pid = self.child.pid

    def wait(self, timeout: float | None = None) -> Outcome | None:
        code = self.child.wait(timeout)
        if code is None:
            return None
        return read_outcome(self.spec, code, stopped=self._stopped)

    def stop(self, grace: float) -> None:
        self._stopped = True
        self.child.terminate(grace)


def task_processes(task_id: str) -> list[int]:
    """PIDs of every live process of a task."""
    return marked_processes(TASK_ENV, task_id)


def kill_task_processes(task_id: str) -> int:
    """SIGKILL every process of a task, wherever it forked or setsid'd to."""
    return kill_marked(TASK_ENV, task_id)


class LocalExecutor(Executor):
    """Level 1: each task is a child process of the Data Platform."""

    def start(self, spec: RunSpec) -> Execution:
        return LocalExecution(spec)
