"""``python -m data_platform check|repair``: the operator's look at a lake, and its fix.

``check`` reads only and reports: who holds the lake's lease, damaged or missing manifests of
the task records and of every dataset and model, tasks left unfinished (and whether their
output proves them finished), and finished tasks whose records are gone. ``repair`` takes the
lease (it refuses while a Data Platform runs), sets damaged manifests aside, and runs the same
recovery a start runs (``recovery.py``): nothing it cannot prove partial is removed. Both exit
1 when problems are left, else 0.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import lance

from data_platform import recovery
from data_platform.local_executor import LocalExecutor
from data_platform.manager import TaskManager
from data_platform.settings import DataPlatformSettings
from data_platform.store import KINDS, Lake
from lakeapi.schemas import TaskStatus
from serverkit.lakelock import LakeLock, LakeLocked
from serverkit.recordstore import list_manifests, open_dataset

log = logging.getLogger(__name__)


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)

    def print(self) -> None:
        for line in self.notes:
            print(f"ok: {line}")
        for line in self.fixed:
            print(f"fixed: {line}")
        for line in self.problems:
            print(f"problem: {line}")
        print(f"{len(self.problems)} problem(s)")


def _lease(settings: DataPlatformSettings) -> LakeLock:
    return LakeLock(
        settings.lake_root / "_system",
        "data-platform",
        storage_options=settings.storage_options,
    )


def _manifests(uri: str, options: dict[str, str], what: str, report: Report) -> bool:
    """Whether the latest manifest at ``uri`` reads; reports what does not."""
    manifests = list_manifests(uri, options)
    if not manifests:
        return True
    version, name = manifests[0]
    try:
        lance.dataset(uri, version=version, storage_options=options or None)
    except (ValueError, OSError) as exc:
        report.problems.append(f"{what}: latest manifest {uri}/_versions/{name} unreadable ({exc})")
        return False
    return True


def check(settings: DataPlatformSettings) -> Report:
    """Read the lake and say what is wrong (changes nothing)."""
    report = Report()
    options = settings.storage_options
    holder = _lease(settings).holder()
    if holder and float(holder.get("expires_at", 0)) > 0:
        report.notes.append(
            f"lease: {holder.get('host')}:{holder.get('pid')} port {holder.get('port')} "
            f"since {holder.get('started')}, expires {holder.get('expires')}"
        )
    lake = Lake(settings.lake_root, options)
    records_ok = _manifests(lake.tasks.uri, options, "task records", report)
    for kind in KINDS:
        for name in lake._names(kind):
            _manifests(lake.path_of(kind, name), options, f"{kind}/{name}", report)
    if not records_ok:
        return report
    try:
        tasks = lake.load_tasks()
    except Exception as exc:
        report.problems.append(f"task records cannot be read: {exc}")
        return report
    report.notes.append(f"{len(tasks)} task record(s) read")
    for task in tasks:
        if task.status is TaskStatus.RUNNING:
            if recovery.completion(lake, task) is not None:
                report.problems.append(
                    f"{task.id}: finished (its output is marked) but recorded running"
                )
            else:
                report.problems.append(f"{task.id}: interrupted; its output is to be rolled back")
        elif task.status is TaskStatus.PENDING:
            report.notes.append(f"{task.id}: pending (queued again at start)")
    for task in recovery.lost_tasks(lake, {t.id for t in tasks}):
        report.problems.append(
            f"{task.id}: finished, but its record is lost (rebuilt from {task.output})"
        )
    return report


def repair(settings: DataPlatformSettings) -> Report:
    """Fix what ``check`` finds; refuses while a Data Platform holds the lake."""
    report = Report()
    try:
        lease = _lease(settings).acquire()
    except LakeLocked as exc:
        report.problems.append(f"not repaired: {exc}")
        return report
    try:
        options = settings.storage_options
        lake = Lake(settings.lake_root, options)
        for kind in KINDS:
            for name in lake._names(kind):
                uri = lake.path_of(kind, name)
                before = len(list_manifests(uri, options))
                open_dataset(uri, options)  # sets a torn latest manifest aside
                if len(list_manifests(uri, options)) < before:
                    report.fixed.append(f"{kind}/{name}: damaged manifest set aside")
        found = check(settings).problems
        executor = LocalExecutor(settings.resolved_work_dir, settings.log_max_bytes)
        manager = TaskManager(settings, lake, executor)
        manager._recover()  # the start's recovery, without serving (the queue is not run)
        manager.writer.close()
        report.fixed.extend(found)
    finally:
        lease.release()
    left = check(settings)
    report.problems.extend(left.problems)
    report.notes.extend(left.notes)
    return report
