"""Evidence in the lake of how a task ended, so a restart never removes finished work.

When a task has written its output and is about to be recorded ``completed``, its supervisor
commits a **completion marker** to ``_system/completions.lance`` (a record table of its own,
apart from the task records): the task, the output's version it finished on, and the task's
record. The task record is committed after it. The output itself gets no extra version: its
versions stay the user's writes. A restart then tells the cases apart from the lake alone:

- a marker of this task whose version is still the output's latest: the task finished and
  only its record was lost (a crash, a full disk, a damaged record table) -> completed;
- no such marker: whatever the task committed after ``output_version_before`` is partial and
  rolled back; a dataset is deleted only when every version of it was made after the task
  started (never one that has versions from before the task);
- a marker naming a task the records do not know at all (its records were lost with a
  damaged manifest) -> the task's record is rebuilt from the marker.

Lance is touched here, beside the store, to keep the store (edited by others) small.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import lance

from data_platform.lake_versions import utc
from data_platform.store import Lake
from lakeapi.schemas import Task, TaskStatus, utcnow

log = logging.getLogger(__name__)

COMPACT_EVERY = 50  # marker commits between compactions of the completions table
MARKER_MAX_BYTES = 64 * 1024  # params or a result larger than this are left out of the marker


@dataclass(frozen=True)
class Marker:
    task_id: str
    version: int | None  # the output's version the task finished on (None: no output)
    record: dict[str, Any]

    @property
    def result(self) -> dict[str, Any] | None:
        result = self.record.get("result")
        return result if isinstance(result, dict) else None

    @property
    def completed_at(self) -> datetime | None:
        try:
            return utc(datetime.fromisoformat(str(self.record.get("completed_at"))))
        except ValueError:
            return None


def mark_completed(lake: Lake, uri: str, task: Task, result: dict[str, Any] | None) -> int | None:
    """Commit the completion marker of ``task``, whose output is at ``uri``; the output's
    version it finished on (None when the task left no output)."""
    version = lake.version_of(uri)
    record = task.model_dump(mode="json", exclude={"history", "progress", "queue"})
    record.update(
        status=TaskStatus.COMPLETED.value,
        result=result,
        output_version=version,
        completed_at=utcnow().isoformat(),
    )
    if len(json.dumps(record)) > MARKER_MAX_BYTES:
        record.update(params={}, result=None)
    table = lake.completions
    table.upsert({"id": task.id, "task": task.id, "version": version, "record": record})
    if table.commits_since_compact >= COMPACT_EVERY:
        try:
            table.compact()
        except Exception:  # compaction is housekeeping: the marker is committed already
            log.warning("compacting %s failed", table.uri, exc_info=True)
    return version


def _markers(lake: Lake) -> dict[str, Marker]:
    markers = {}
    for data in lake.completions.load_all():
        try:
            version = data["version"]
            marker = Marker(
                str(data["task"]), None if version is None else int(version), dict(data["record"])
            )
        except (ValueError, KeyError, TypeError):
            log.warning("a completion marker cannot be read: %.200r", data)
            continue
        markers[marker.task_id] = marker
    return markers


def completion(lake: Lake, task: Task) -> Marker | None:
    """The proof that ``task`` finished: its marker, on the output's version that is still
    the latest (a later write means the output moved on after it, so it proves nothing)."""
    marker = _markers(lake).get(task.id)
    if marker is None:
        return None
    return marker if lake.version_of(task.output_path) == marker.version else None


def lost_tasks(lake: Lake, known: set[str]) -> list[Task]:
    """Completed tasks whose records are gone, rebuilt from their markers."""
    found = []
    for marker in _markers(lake).values():
        if marker.task_id in known:
            continue
        try:
            task = Task.model_validate(marker.record)
        except ValueError:
            log.warning("the marker's record of %s is unusable", marker.task_id)
            continue
        log.warning("%s: its record was lost; rebuilt from its completion marker", task.id)
        found.append(task)
    return found


def roll_back(
    lake: Lake, uri: str, version_before: int | None, since: datetime | None
) -> str | None:
    """Undo what a task that did not finish committed at ``uri``; returns what was done.

    With ``version_before`` unknown (None) the output is removed only when every version
    there was made after ``since`` (the task's start): a dataset with versions from before
    the task is never deleted, only reported.
    """
    if version_before is not None or not lake.fs.exists(uri):
        return lake.roll_back(uri, version_before)
    try:
        versions = lance.dataset(uri, storage_options=lake.storage_options or None).versions()
    except (ValueError, OSError):
        versions = []  # nothing readable: no committed version to lose
    first = utc(versions[0].get("timestamp")) if versions else None
    # A task's own versions all come after its start: the record of that start is durable
    # before its process is released (supervisor), so anything older was there before.
    if first is not None and (since is None or first < since):
        return f"kept: it has versions from before the task (first {first.isoformat()})"
    return lake.roll_back(uri, None)
