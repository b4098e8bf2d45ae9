"""The orphan regression with a real process: the supervisor's own code fails while the task
runs (a record save raising), and still the process is gone and the output rolled back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lance
import pyarrow as pa
import pytest

from data_platform.local_executor import LocalExecutor, task_processes
from data_platform.manager import TaskManager
from data_platform.settings import DataPlatformSettings
from data_platform.store import Lake
from lakeapi.schemas import FailureReason, TaskCreate
from tests.support import FIXTURE_SCRIPTS, pid_alive, wait_until


def test_a_failing_save_in_the_watch_loop_leaves_no_process_and_no_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    settings = DataPlatformSettings(
        lake_root=tmp_path / "lake", scripts_root=FIXTURE_SCRIPTS, cancel_grace_seconds=1
    )
    lake = Lake(settings.lake_root)
    uri = lake.path_of("datasets", "out")
    before = lance.write_dataset(pa.table({"tag": ["old"]}), uri).version
    manager = TaskManager(settings, lake, LocalExecutor(settings.resolved_work_dir))

    def save_failed(*args: Any, **kwargs: Any) -> None:
        raise OSError("lance commit failed")

    # The first progress point arrives after the script committed its overwrite.
    monkeypatch.setattr(manager, "progress", save_failed)
    manager.start()
    try:
        pid_file = tmp_path / "pid"
        task = manager.submit(
            TaskCreate(
                script="write_then_report.py",
                output="datasets/out",
                params={"pid_file": str(pid_file)},
            )
        )
        done = wait_until(lambda: (t := manager.get(task.id)).status.is_terminal() and t, 30)
        assert done.error is not None and done.error.reason is FailureReason.CRASHED
        assert "lance commit failed" in done.error.message
        assert f"restored version {before}" in done.error.message
        assert not pid_alive(int(pid_file.read_text()))
        assert task_processes(task.id) == []
        assert lance.dataset(uri).to_table().column("tag").to_pylist() == ["old"]
    finally:
        manager.close()
