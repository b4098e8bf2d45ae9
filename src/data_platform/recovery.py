"""Evidence in the lake of how a task ended, so a restart never removes finished work.

When a task has written its output and is about to be recorded ``completed``, its supervisor
commits a **completion marker** on the output: one Lance config key (``_platform.completed``)
naming the task, the version the marker itself is (Lance carries config forward into later
versions, so the marker proves something only on that exact version) and the task's record.
The record is committed after it. A restart then tells the cases apart from the lake alone:

- the output's latest version is the marker of this task: the task finished and only its
  record was lost (a crash, a full disk, a damaged record table) -> it is recorded completed;
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
from datetime import UTC, datetime
from typing import Any

import lance

from data_platform.store import KINDS, Lake
from lakeapi.schemas import Task, TaskStatus, utcnow

log = logging.getLogger(__name__)

MARKER_KEY = "_platform.completed"
MARKER_MAX_BYTES = 64 * 1024  # params or a result larger than this are left out of the marker


@dataclass(frozen=True)
class Marker:
    task_id: str
    version: int  # the output version the marker is
    record: dict[str, Any]

    @property
    def result(self) -> dict[str, Any] | None:
        result = self.record.get("result")
        return result if isinstance(result, dict) else None

    @property
    def completed_at(self) -> datetime | None:
        try:
            return _utc(datetime.fromisoformat(str(self.record.get("completed_at"))))
        except ValueError:
            return None


def mark_completed(lake: Lake, uri: str, task: Task, result: dict[str, Any] | None) -> int | None:
    """Commit the completion marker on the output at ``uri``; the version it made, or None
    when the task left no output (nothing there to lose, nor to mark)."""
    try:
        ds = lance.dataset(uri, storage_options=lake.storage_options or None)
    except (ValueError, OSError):
        return None
    version = int(ds.version) + 1
    now = utcnow()
    record = task.model_dump(mode="json", exclude={"history", "progress", "queue"})
    record.update(
        status=TaskStatus.COMPLETED.value,
        result=result,
        output_version=version,
        completed_at=now.isoformat(),
    )
    if len(json.dumps(record)) > MARKER_MAX_BYTES:
        record.update(params={}, result=None)
    marker = {"task": task.id, "version": version, "record": record}
    ds.update_config({MARKER_KEY: json.dumps(marker, separators=(",", ":"))})
    made = int(ds.version)
    if made != version:  # nothing else writes an output while its task ends; say if it did
        log.warning("%s: its marker landed on version %d, not %d", task.id, made, version)
    return made


def read_marker(lake: Lake, uri: str) -> tuple[Marker | None, int | None]:
    """The marker the output's latest version carries (None: none, or one carried forward
    from an earlier version), and that latest version (None: no readable output)."""
    try:
        ds = lance.dataset(uri, storage_options=lake.storage_options or None)
        config = ds.config()
    except (ValueError, OSError):
        return None, None
    latest = int(ds.version)
    raw = config.get(MARKER_KEY)
    if not raw:
        return None, latest
    try:
        data = json.loads(raw)
        marker = Marker(str(data["task"]), int(data["version"]), dict(data["record"]))
    except (ValueError, KeyError, TypeError):
        log.warning("%s: its completion marker cannot be read", uri)
        return None, latest
    return (marker if marker.version == latest else None), latest


def completion(lake: Lake, task: Task) -> Marker | None:
    """The proof that ``task`` finished: its marker on its output's latest version."""
    marker, _ = read_marker(lake, task.output_path)
    return marker if marker is not None and marker.task_id == task.id else None


def lost_tasks(lake: Lake, known: set[str]) -> list[Task]:
    """Completed tasks whose records are gone, rebuilt from the outputs' markers."""
    found = []
    for kind in KINDS:
        for name in lake._names(kind):
            marker, _ = read_marker(lake, lake.path_of(kind, name))
            if marker is None or marker.task_id in known:
                continue
            try:
                task = Task.model_validate(marker.record)
            except ValueError:
                log.warning(
                    "%s/%s: the marker's record of %s is unusable", kind, name, marker.task_id
                )
                continue
            log.warning(
                "%s: its record was lost; rebuilt from the completion marker on %s/%s",
                task.id,
                kind,
                name,
            )
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
    first = _utc(versions[0].get("timestamp")) if versions else None
    # A task's own versions all come after its start: the record of that start is durable
    # before its process is released (supervisor), so anything older was there before.
    if first is not None and (since is None or first < since):
        return f"kept: it has versions from before the task (first {first.isoformat()})"
    return lake.roll_back(uri, None)


def _utc(value: Any) -> datetime | None:
    # Lance hands version timestamps over as naive local times (datetime.fromtimestamp).
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return None
