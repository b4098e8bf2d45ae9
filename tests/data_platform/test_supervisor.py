"""Unit tier, no processes: the supervisor and the manager driven through a fake executor.

The fake implements our own ``Executor``/``Execution`` interface (the real local executor is
proven by the integration tests); the lake and the task records are real Lance files.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lance
import pyarrow as pa
import pytest

from data_platform.execution import (
    MEMORY,
    Execution,
    Executor,
    LogSource,
    Outcome,
    Resources,
    RunSpec,
)
from data_platform.manager import TaskManager
from data_platform.settings import DataPlatformSettings
from data_platform.store import Lake
from data_platform.supervisor import Facts, decide_failure
from lakeapi.errors import ServiceUnavailable
from lakeapi.schemas import FailureReason, Task, TaskCreate, TaskError, TaskStatus
from tests.support import wait_until

KILLED = Outcome(error=TaskError(reason=FailureReason.KILLED, message="killed by signal 15"))


class FakeExecution(Execution):
    """A task that runs until ``finish`` or ``stop``; records how it was stopped."""

    def __init__(self, on_stop: Callable[[FakeExecution], None] | None = None) -> None:
        self.pid = 4242
        self.node = "fake-node"
        self.points: list[dict[str, Any]] = []
        self.rss = 0
        self.stops: list[float] = []
        self.on_stop = on_stop
        self.progress_error: Exception | None = None
        self._outcome: Outcome | None = None
        self._done = threading.Event()

    @property
    def alive(self) -> bool:
        return not self._done.is_set()

    def finish(self, outcome: Outcome) -> None:
        if self._outcome is None:
            self._outcome = outcome
        self._done.set()

    def progress(self) -> list[dict[str, Any]]:
        if self.progress_error is not None:
            raise self.progress_error
        points, self.points = self.points, []
        return points

    def resources(self) -> Resources:
        return Resources(rss_bytes=self.rss)

    def wait(self, timeout: float | None = None) -> Outcome | None:
        return self._outcome if self._done.wait(timeout) else None

    def stop(self, grace: float) -> None:
        self.stops.append(grace)
        if self.on_stop is not None:
            self.on_stop(self)
        self.finish(KILLED)


class NoLog(LogSource):
    async def read(self, offset: int, limit: int) -> tuple[bytes, int]:
        return b"", offset

    async def tail(self, lines: int | None) -> tuple[bytes, int]:
        return b"", 0


class FakeExecutor(Executor):
    limits = frozenset({MEMORY})

    def __init__(self) -> None:
        self.executions: dict[str, FakeExecution] = {}
        self.start_error: Exception | None = None
        self.on_start: Callable[[RunSpec], None] | None = None
        self.recoverable: dict[str, FakeExecution] = {}
        self.recovered: list[str] = []

    def start(self, spec: RunSpec) -> Execution:
        if self.start_error is not None:
            raise self.start_error
        if self.on_start is not None:
            self.on_start(spec)
        execution = self.executions[spec.task_id] = FakeExecution()
        return execution

    def recover(self, task: Task) -> Execution | None:
        self.recovered.append(task.id)
        return self.recoverable.get(task.id)

    def logs(self, task_id: str) -> LogSource:
        return NoLog()


@pytest.fixture
def settings(tmp_path: Path) -> DataPlatformSettings:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "t.py").write_text("def run(i, o, p):\n    return {}\n")
    return DataPlatformSettings(
        lake_root=tmp_path / "lake",
        scripts_root=scripts,
        data_root=tmp_path,
        cancel_grace_seconds=1,
        task_memory_mb=10,
    )


@pytest.fixture
def executor() -> FakeExecutor:
    return FakeExecutor()


@pytest.fixture
def manager(settings: DataPlatformSettings, executor: FakeExecutor) -> Iterator[TaskManager]:
    manager = TaskManager(settings, Lake(settings.lake_root), executor)
    manager.start()
    yield manager
    for execution in executor.executions.values():
        execution.finish(KILLED)
    manager.close()


def submit(manager: TaskManager, output: str = "datasets/out") -> Task:
    return manager.submit(TaskCreate(script="t.py", output=output))


def running(manager: TaskManager, executor: FakeExecutor, task: Task) -> FakeExecution:
    wait_until(
        lambda: manager.get(task.id).status is TaskStatus.RUNNING and task.id in executor.executions
    )
    return executor.executions[task.id]


def ended(manager: TaskManager, task_id: str) -> Task:
    return wait_until(lambda: (t := manager.get(task_id)).status.is_terminal() and t)


def stored(manager: TaskManager, task_id: str) -> Task:
    """The record as a restart would read it."""
    return {t.id: t for t in manager.lake.load_tasks()}[task_id]


def write(uri: str, tag: str) -> int:
    try:
        lance.dataset(uri)
        mode = "overwrite"
    except ValueError:
        mode = "create"
    return lance.write_dataset(pa.table({"tag": [tag]}), uri, mode=mode).version


def tags(uri: str) -> list[str]:
    return lance.dataset(uri).to_table().column("tag").to_pylist()


# -- the one decision ---------------------------------------------------------------------

ERROR = TaskError(reason=FailureReason.EXCEPTION, message="boom")
BREACH = TaskError(reason=FailureReason.TIMEOUT, message="time limit of 1 s exceeded")


@pytest.mark.parametrize(
    ("facts", "reason"),
    [
        (Facts(outcome=Outcome(result={})), None),
        (Facts(outcome=Outcome(result={}), cancel_requested=True), None),  # completion wins
        (Facts(outcome=Outcome(error=ERROR)), FailureReason.EXCEPTION),
        (Facts(outcome=KILLED, cancel_requested=True), FailureReason.CANCELLED),
        (Facts(outcome=KILLED, cancel_requested=True, breach=BREACH), FailureReason.TIMEOUT),
        (Facts(outcome=KILLED, shutting_down=True), FailureReason.INTERRUPTED),
        (Facts(start_error=OSError("no node")), FailureReason.REJECTED),
        (Facts(crash=RuntimeError("save failed")), FailureReason.CRASHED),
        (Facts(), FailureReason.CRASHED),
    ],
)
def test_decide_failure_from_the_facts(facts: Facts, reason: FailureReason | None):
    error = decide_failure(facts)
    assert (error.reason if error else None) == reason


# -- the supervisor through the manager ---------------------------------------------------


def test_a_task_runs_reports_progress_and_completes(manager, executor):
    task = submit(manager)
    execution = running(manager, executor, task)
    assert manager.get(task.id).pid == 4242 and manager.get(task.id).node == "fake-node"
    execution.points = [{"epoch": 1}, {"epoch": 2}]
    wait_until(lambda: manager.get(task.id).progress == {"epoch": 2})
    execution.finish(Outcome(result={"rows": 3}))
    done = ended(manager, task.id)
    assert done.status is TaskStatus.COMPLETED and done.result == {"rows": 3}
    assert [p["epoch"] for p in done.history] == [1, 2]
    assert execution.stops, "the supervisor always stops (reaps) the execution"
    manager.writer.flush()
    assert stored(manager, task.id).status is TaskStatus.COMPLETED


def test_cancel_racing_completion_keeps_the_result(manager, executor):
    """The result lands just as the stop arrives: the task completed, and cancel says so."""
    task = submit(manager)
    execution = running(manager, executor, task)
    execution.on_stop = lambda e: e.finish(Outcome(result={"ok": True}))
    answered = manager.cancel(task.id)
    assert answered.status is TaskStatus.COMPLETED and answered.result == {"ok": True}
    assert stored(manager, task.id).status is TaskStatus.COMPLETED  # durable when answered


def test_cancel_of_a_running_task_is_durable_when_answered(manager, executor):
    task = submit(manager)
    execution = running(manager, executor, task)
    answered = manager.cancel(task.id)
    assert answered.status is TaskStatus.FAILED
    assert answered.error is not None and answered.error.reason is FailureReason.CANCELLED
    assert execution.stops and not execution.alive
    assert stored(manager, task.id).error == answered.error


def test_watch_loop_raising_stops_the_execution_and_rolls_back(manager, executor, monkeypatch):
    """The orphan regression: the supervisor's own code fails (a record save, here) while the
    task runs: the execution is stopped, the output rolled back, the slot freed."""
    uri = manager.lake.path_of("datasets", "out")
    before = write(uri, "old")
    executor.on_start = lambda spec: write(spec.output_uri, "partial")
    task = submit(manager)
    execution = running(manager, executor, task)
    assert tags(uri) == ["partial"]

    def save_failed(*args: Any, **kwargs: Any) -> None:
        raise OSError("lance commit failed")

    monkeypatch.setattr(manager, "progress", save_failed)
    execution.points = [{"step": 1}]
    done = ended(manager, task.id)
    assert done.error is not None and done.error.reason is FailureReason.CRASHED
    assert "lance commit failed" in done.error.message
    assert f"restored version {before}" in done.error.message
    assert execution.stops and not execution.alive
    assert tags(uri) == ["old"]
    monkeypatch.undo()
    executor.on_start = None
    second = submit(manager)  # the slot was freed
    running(manager, executor, second).finish(Outcome(result={}))
    assert ended(manager, second.id).status is TaskStatus.COMPLETED


def test_progress_raising_is_handled_the_same_way(manager, executor):
    task = submit(manager, output="datasets/fresh")
    execution = running(manager, executor, task)
    execution.progress_error = RuntimeError("progress transport broke")
    done = ended(manager, task.id)
    assert done.error is not None and done.error.reason is FailureReason.CRASHED
    assert not execution.alive


def test_executor_failing_to_start_rejects_the_task_and_frees_the_slot(manager, executor):
    executor.start_error = OSError("no node can take it")
    task = submit(manager)
    done = ended(manager, task.id)
    assert done.error is not None and done.error.reason is FailureReason.REJECTED
    assert "no node can take it" in done.error.message
    executor.start_error = None
    second = submit(manager)
    running(manager, executor, second).finish(Outcome(result={}))
    assert ended(manager, second.id).status is TaskStatus.COMPLETED


def test_memory_limit_stops_at_once(manager, executor):
    task = submit(manager)
    execution = running(manager, executor, task)
    execution.rss = 11 * 1024 * 1024  # the limit is 10 MB
    done = ended(manager, task.id)
    assert done.error is not None and done.error.reason is FailureReason.MEMORY
    assert execution.stops[0] == 0  # no grace for a memory breach


def test_a_failed_save_at_submit_is_an_error_and_no_phantom(manager, monkeypatch):
    def full(*records: Any) -> None:
        raise OSError("no space left on device")

    monkeypatch.setattr(manager.lake.tasks, "upsert", full)
    with pytest.raises(ServiceUnavailable, match="no space left"):
        manager.submit(TaskCreate(script="t.py", output="datasets/out", kind="k", name="n"))
    assert manager.list() == []
    monkeypatch.undo()
    # Nothing of it is left: not its name, not a queued entry.
    assert manager.submit(TaskCreate(script="t.py", output="datasets/out", kind="k", name="n"))


# -- restart --------------------------------------------------------------------------------


def left_running(settings: DataPlatformSettings, version_before: int | None) -> Task:
    """The record a Data Platform killed mid-task leaves behind."""
    lake = Lake(settings.lake_root)
    task = Task(
        id="task-left",
        script="t.py",
        input="",
        output="datasets/out",
        input_path="",
        output_path=lake.path_of("datasets", "out"),
        status=TaskStatus.RUNNING,
        output_version_before=version_before,
    )
    lake.save_tasks(task)
    return task


def test_restart_reattaches_a_task_the_executor_still_runs(settings):
    """Reattached: the executor recovers the execution, a supervisor watches it to its end."""
    lake = Lake(settings.lake_root)
    before = write(lake.path_of("datasets", "out"), "old")
    task = left_running(settings, before)
    executor = FakeExecutor()
    execution = executor.recoverable[task.id] = FakeExecution()
    manager = TaskManager(settings, Lake(settings.lake_root), executor)
    manager.start()
    try:
        assert executor.recovered == [task.id]
        assert manager.get(task.id).status is TaskStatus.RUNNING
        queued = submit(manager, output="datasets/other")  # the reattached task holds the slot
        assert manager.get(queued.id).status is TaskStatus.PENDING
        execution.finish(Outcome(result={"resumed": True}))
        assert ended(manager, task.id).result == {"resumed": True}
        wait_until(lambda: queued.id in executor.executions)
        executor.executions[queued.id].finish(Outcome(result={}))
        ended(manager, queued.id)
    finally:
        manager.close()


def test_restart_stops_and_rolls_back_what_it_cannot_reattach(settings):
    """Not reattachable (the executor killed its leftovers): failed, output rolled back."""
    lake = Lake(settings.lake_root)
    uri = lake.path_of("datasets", "out")
    before = write(uri, "old")
    write(uri, "partial")
    task = left_running(settings, before)
    executor = FakeExecutor()
    manager = TaskManager(settings, Lake(settings.lake_root), executor)
    manager.start()
    try:
        assert executor.recovered == [task.id]
        done = manager.get(task.id)
        assert done.error is not None and done.error.reason is FailureReason.INTERRUPTED
        assert "interrupted by restart" in done.error.message
        assert f"restored version {before}" in done.error.message
        assert tags(uri) == ["old"]
        assert stored(manager, task.id).status is TaskStatus.FAILED  # durable before serving
    finally:
        manager.close()
