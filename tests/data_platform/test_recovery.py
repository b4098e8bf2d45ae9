"""Recovery from evidence in the lake (unit tier: a fake executor, real Lance files).

A running record whose output carries the task's completion marker completed; a marker naming
a task the records lost rebuilds it; a dataset with versions from before a task is never
deleted, even when the task's record does not say what to roll back to.
"""

from __future__ import annotations

import lance
import pyarrow as pa

from data_platform import recovery
from data_platform.manager import TaskManager
from data_platform.store import Lake
from lakeapi.schemas import Task, TaskStatus
from tests.data_platform.test_supervisor import (
    FakeExecutor,
    left_running,
    stored,
    tags,
    write,
)
from tests.data_platform.test_supervisor import settings as settings  # the fixture


def restart(settings) -> TaskManager:
    manager = TaskManager(settings, Lake(settings.lake_root), FakeExecutor())
    manager.start()
    return manager


def test_a_marked_output_means_completed_though_the_record_says_running(settings):
    lake = Lake(settings.lake_root)
    uri = lake.path_of("datasets", "out")
    before = write(uri, "old")
    task = left_running(settings, before)
    write(uri, "new")
    marked = recovery.mark_completed(lake, uri, task, {"rows": 1})
    manager = restart(settings)
    try:
        done = manager.get(task.id)
        assert done.status is TaskStatus.COMPLETED and done.result == {"rows": 1}
        assert done.output_version == marked == lance.dataset(uri).version
        assert tags(uri) == ["new"]
        assert stored(manager, task.id).status is TaskStatus.COMPLETED
    finally:
        manager.close()


def test_a_marker_carried_forward_to_a_later_write_proves_nothing(settings):
    """Lance keeps config in later versions: a write after the marker is not "finished"."""
    lake = Lake(settings.lake_root)
    uri = lake.path_of("datasets", "out")
    task = left_running(settings, write(uri, "old"))
    write(uri, "new")
    recovery.mark_completed(lake, uri, task, {})
    write(uri, "partial")  # same config, later version
    assert recovery.completion(lake, task) is None


def test_a_lost_record_is_rebuilt_from_its_marker(settings):
    lake = Lake(settings.lake_root)
    uri = lake.path_of("datasets", "out")
    write(uri, "done")
    ghost = Task(
        id="task-ghost",
        script="t.py",
        input="",
        output="datasets/out",
        input_path="",
        output_path=uri,
        status=TaskStatus.RUNNING,
    )
    recovery.mark_completed(lake, uri, ghost, {"n": 2})  # its records never reached the disk
    manager = restart(settings)
    try:
        rebuilt = manager.get("task-ghost")
        assert rebuilt.status is TaskStatus.COMPLETED and rebuilt.result == {"n": 2}
        assert stored(manager, "task-ghost").status is TaskStatus.COMPLETED
    finally:
        manager.close()


def test_a_dataset_with_versions_from_before_the_task_is_never_deleted(settings):
    lake = Lake(settings.lake_root)
    uri = lake.path_of("datasets", "out")
    lance.write_dataset(pa.table({"tag": ["old"]}), uri)
    task = left_running(settings, None)  # the record does not say what was there before
    task = task.model_copy(update={"started_at": task.created_at})
    lake.save_tasks(task)
    write(uri, "new")
    manager = restart(settings)
    try:
        failed = manager.get(task.id)
        assert failed.status is TaskStatus.FAILED
        assert "kept: it has versions from before the task" in failed.error.message
        assert lance.dataset(uri).count_rows() == 1  # still there
    finally:
        manager.close()
