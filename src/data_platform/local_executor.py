"""Level 1: each task is a child process of the Data Platform, with its files beside it.

The child runs in its own session and process group; its stdout and stderr are pumped into one
bounded log file; progress and the result come back through files in the task's scratch
folder; stop is SIGTERM to the group, a grace period, then SIGKILL to the whole tree, found by
an environment marker even where a script forked or ``setsid``'d away. Memory is the resident
size of that tree, read from /proc. All of the Data Platform's process and local-file handling
is here and in ``child.py``; Level 2 (``ray_executor.py``) reuses the same pieces in a worker.

Where things live, under the executor's work dir (``DP_WORK_DIR``)::

    logs/{task}.log     the task's log (``.log.1``: the part before the last rotation)
    work/{task}/        scratch: params.json, progress.jsonl, result.json; removed at the end
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from data_platform.child import HOLD_ENV, RESULT_ENV
from data_platform.execution import (
    MEMORY,
    Execution,
    Executor,
    LogSource,
    Outcome,
    Resources,
    RunSpec,
)
from lakeapi.names import check_name
from lakeapi.schemas import FailureReason, Task, TaskError
from lakekit.progress import ENV_VAR as PROGRESS_ENV
from lakekit.progress import Follower
from serverkit.lakefs import STORAGE_OPTIONS_ENV
from serverkit.procs import (
    PARENT_ENV,
    kill_marked,
    marked_processes,
    scrubbed_env,
    signal_group,
    tree_rss_bytes,
)

TASK_ENV = "LAKEKIT_TASK_ID"
LOG_MAX_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class TaskFiles:
    """Where one task's log and scratch live on the node that runs it."""

    work_dir: Path
    task_id: str

    @property
    def log_path(self) -> Path:
        return self.work_dir / "logs" / f"{check_name(self.task_id, 'task id')}.log"

    @property
    def scratch(self) -> Path:
        return self.work_dir / "work" / check_name(self.task_id, "task id")

    @property
    def progress_path(self) -> Path:
        return self.scratch / "progress.jsonl"

    @property
    def result_path(self) -> Path:
        return self.scratch / "result.json"

    @property
    def params_path(self) -> Path:
        return self.scratch / "params.json"


def child_env(spec: RunSpec, files: TaskFiles) -> dict[str, str]:
    """The environment a task's process gets: ours less our keys, plus how to talk back to
    the platform."""
    env = scrubbed_env({**os.environ, **spec.env})
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "DAFT_RUNNER": spec.daft_runner,
            TASK_ENV: spec.task_id,
            PROGRESS_ENV: str(files.progress_path),
            RESULT_ENV: str(files.result_path),
            STORAGE_OPTIONS_ENV: json.dumps(spec.storage_options),
            PARENT_ENV: str(os.getpid()),
        }
    )
    return env


def child_argv(spec: RunSpec, files: TaskFiles) -> list[str]:
    files.scratch.mkdir(parents=True, exist_ok=True)
    files.params_path.write_text(json.dumps(spec.params), encoding="utf-8")
    return [
        sys.executable,
        "-m",
        "data_platform.child",
        spec.task_id,
        spec.script_path,
        spec.input_uri,
        spec.output_uri,
        str(files.params_path),
    ]


def read_outcome(files: TaskFiles, returncode: int) -> Outcome:
    """The facts of a finished child: its result file (structured) and its exit status."""
    try:
        data = json.loads(files.result_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = None
    if isinstance(data, dict) and data.get("ok") is True:
        return Outcome(result=data.get("result") or {})
    if isinstance(data, dict) and data.get("ok") is False:
        try:
            reason = FailureReason(data.get("reason", FailureReason.EXCEPTION))
        except ValueError:
            reason = FailureReason.EXCEPTION
        return Outcome(
            error=TaskError(
                reason=reason, type=data.get("type"), message=str(data.get("message", ""))
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


class _LogPump(threading.Thread):
    """Copies the child's output into its log; past the cap the file is rotated once
    (``.1`` keeps the previous part) so the log stays bounded and keeps the latest lines."""

    def __init__(self, source: IO[bytes], path: Path, max_bytes: int) -> None:
        super().__init__(daemon=True, name=f"log-{path.stem}")
        self.source, self.path, self.max_bytes = source, path, max_bytes

    def run(self) -> None:
        out = open(self.path, "ab")  # noqa: SIM115 - swapped on rotation
        written = out.tell()
        try:
            while chunk := self.source.read1(65536):  # type: ignore[attr-defined]
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
    """The task's process: own session and process group, output pumped into its log.
    Level 1 runs it from the Data Platform; Level 2 from inside a Ray worker."""

    def __init__(
        self,
        spec: RunSpec,
        files: TaskFiles,
        log_max_bytes: int = LOG_MAX_BYTES,
        cwd: str | None = None,
        held: bool = False,
    ) -> None:
        self.spec = spec
        files.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = child_env(spec, files)
        if held:
            env[HOLD_ENV] = "1"
        self.proc = subprocess.Popen(
            child_argv(spec, files),
            stdin=subprocess.PIPE if held else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,  # own session and process group: killpg reaches its tree
            close_fds=True,
        )
        self.pid = self.proc.pid
        assert self.proc.stdout is not None
        self._pump = _LogPump(self.proc.stdout, files.log_path, log_max_bytes)
        self._reap_lock = threading.Lock()
        self._reaped = False
        self._pump.start()

    def release(self) -> None:
        """Let a held child load its script (see ``child.py``); idempotent."""
        gate, self.proc.stdin = self.proc.stdin, None
        if gate is not None:
            with contextlib.suppress(OSError):  # it died meanwhile: its outcome says so
                gate.write(b"go\n")
                gate.close()

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
            if self.proc.stdin is not None:  # never released: EOF tells it not to start
                with contextlib.suppress(OSError):
                    self.proc.stdin.close()
                self.proc.stdin = None
            # Grandchildren may linger after the child returned; they must not outlive the task.
            signal_group(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            kill_task_processes(self.spec.task_id)
            self._pump.join(timeout=5)
            self._reaped = True


class FileProgress:
    """Progress points from the task's progress file, and the tree's resident memory."""

    def __init__(self, task_id: str, files: TaskFiles) -> None:
        self.task_id = task_id
        self._follower = Follower(files.progress_path)
        self._kept: list[dict[str, Any]] = []

    def progress(self) -> list[dict[str, Any]]:
        points, self._kept = self._kept + self._follower.poll(), []
        return points

    def keep_progress(self) -> None:
        """Read what is left before the scratch goes, so the last points are not lost."""
        self._kept += self._follower.poll()

    def resources(self) -> Resources:
        return Resources(rss_bytes=tree_rss_bytes(TASK_ENV, self.task_id))


class LocalExecution(FileProgress, Execution):
    def __init__(self, spec: RunSpec, files: TaskFiles, log_max_bytes: int) -> None:
        super().__init__(spec.task_id, files)
        self.files = files
        self.child = ChildProcess(spec, files, log_max_bytes, held=True)
        self.pid = self.child.pid
        self.node = socket.gethostname()

    def release(self) -> None:
        self.child.release()

    def wait(self, timeout: float | None = None) -> Outcome | None:
        code = self.child.wait(timeout)
        if code is None:
            return None
        return read_outcome(self.files, code)

    def stop(self, grace: float) -> None:
        self.child.terminate(grace)
        self.keep_progress()
        shutil.rmtree(self.files.scratch, ignore_errors=True)


class FileLog(LogSource):
    """The log file; a read of up to a chunk runs inline (page cache, well under a ms)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def read(self, offset: int, limit: int) -> tuple[bytes, int]:
        return read_from(self.path, offset, limit)

    async def tail(self, lines: int | None) -> tuple[bytes, int]:
        return await asyncio.to_thread(read_log, self.path, lines)  # the whole log can be large


def read_from(path: Path, offset: int, limit: int) -> tuple[bytes, int]:
    """Up to ``limit`` bytes of ``path`` from ``offset`` (0 once the file is shorter)."""
    try:
        if os.stat(path).st_size == offset:  # the common case for a follower: nothing new
            return b"", offset
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return b"", 0
    with fh:
        size = fh.seek(0, 2)
        if size < offset:  # rotated: the new file starts over
            offset = 0
        fh.seek(offset)
        data = fh.read(min(limit, size - offset))
    return data, offset + len(data)


def read_log(path: Path, tail: int | None = None) -> tuple[bytes, int]:
    """The whole log, or its last ``tail`` lines, and the file size they were read at.

    Reads backwards in blocks, so tailing a large log costs only what is returned.
    """
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return b"", 0
    with fh:
        size = fh.seek(0, 2)
        if tail is None:
            fh.seek(0)
            return fh.read(size), size
        if tail == 0:
            return b"", size
        block, data, pos = 65536, b"", size
        while pos > 0 and data.count(b"\n") <= tail:
            step = min(block, pos)
            pos -= step
            fh.seek(pos)
            data = fh.read(step) + data
        lines = data.splitlines(keepends=True)
        return b"".join(lines[-tail:]), size


def task_processes(task_id: str) -> list[int]:
    """PIDs of every live process of a task."""
    return marked_processes(TASK_ENV, task_id)


def kill_task_processes(task_id: str) -> int:
    """SIGKILL every process of a task, wherever it forked or setsid'd to."""
    return kill_marked(TASK_ENV, task_id)


class MachineExecutor(Executor):
    """What Level 1 and Level 2 share: the tasks run on this machine, with their files under
    ``work_dir``, their trees found by the environment marker, /proc for their memory.

    Args:
        work_dir: where logs and scratch live (see the module's docstring).
        log_max_bytes: a task's log is rotated past this size.
    """

    limits = frozenset({MEMORY})

    def __init__(self, work_dir: Path, log_max_bytes: int = LOG_MAX_BYTES) -> None:
        self.work_dir = work_dir.resolve()
        self.log_max_bytes = log_max_bytes

    def files(self, task_id: str) -> TaskFiles:
        return TaskFiles(self.work_dir, task_id)

    def fresh_files(self, task_id: str) -> TaskFiles:
        """The task's files with no scratch left: a stale result would lie about the end."""
        files = self.files(task_id)
        shutil.rmtree(files.scratch, ignore_errors=True)
        return files

    def recover(self, task: Task) -> Execution | None:
        """A process of an earlier Data Platform cannot be waited on: kill what is left."""
        kill_task_processes(task.id)
        self.fresh_files(task.id)
        return None

    def logs(self, task_id: str) -> LogSource:
        return FileLog(self.files(task_id).log_path)


class LocalExecutor(MachineExecutor):
    """Level 1: each task is a child process of the Data Platform."""

    def start(self, spec: RunSpec) -> Execution:
        return LocalExecution(spec, self.fresh_files(spec.task_id), self.log_max_bytes)
