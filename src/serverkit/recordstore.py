"""A table of JSON records kept in Lance: the lake's own bookkeeping (tasks, services).

Each record is one row keyed by ``id``; writes are upserts (``merge_insert``), so every change
is one atomic Lance commit and a crash never leaves half a record. Every commit also adds a
Lance version, so ``compact`` folds the small fragments together and drops old versions.

A damaged table still opens: a latest manifest that cannot be read (torn by a crash or a full
disk) is logged by name and moved aside into ``_damaged/``, and the table reads as of the
newest version that can be read; a missing latest manifest (the version hint names a later
one) is logged too. What those versions held is for the caller to reconcile (the Data
Platform rebuilds task records from its outputs' completion markers).

The table is addressed by URI (a local path, ``file://...`` or ``s3://bucket/prefix/x.lance``)
with Lance's storage options; nothing here assumes a local disk.

:class:`RecordWriter` keeps Lance commits off the request path: callers change their records in
memory and hand them to the writer, whose one thread commits them in order, many at a time
(later changes to a record replace earlier ones still waiting), and compacts between commits.
Each change returns a future that resolves once the record is durable, so an API can answer
only after what it promises is on disk without holding any lock across the commit.
"""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import Future
from datetime import timedelta
from typing import Any

import lance
import pyarrow as pa

from serverkit.lakefs import LakeFS

log = logging.getLogger(__name__)

_SCHEMA = pa.schema([("id", pa.string()), ("data", pa.string())])
_U64_MAX = 2**64 - 1
DAMAGED_DIR = "_damaged"


class RecordTableDamaged(RuntimeError):
    """No version of a record table can be read."""


def open_dataset(uri: str, storage_options: dict[str, str] | None = None) -> Any:
    """The Lance dataset at ``uri``, or None when nothing is committed there.

    Raises:
        RecordTableDamaged: manifests exist but none of them can be read.
    """
    try:
        ds = lance.dataset(uri, storage_options=storage_options or None)
    except (ValueError, OSError):
        manifests = list_manifests(uri, storage_options)
        if not manifests:
            return None
        return _fall_back(uri, storage_options, manifests)
    _check_hint(uri, storage_options, int(ds.version))
    return ds


def list_manifests(
    uri: str, storage_options: dict[str, str] | None = None
) -> list[tuple[int, str]]:
    """(version, file name) of every manifest under ``uri``, newest first."""
    lfs = LakeFS(uri, storage_options)
    found = []
    for name in lfs.children(lfs.join("_versions")):
        version = manifest_version(name)
        if version is not None:
            found.append((version, name))
    return sorted(found, reverse=True)


def manifest_version(name: str) -> int | None:
    """The version a manifest file holds: ``N.manifest``, or Lance's newer naming whose
    20-digit stem is ``u64::MAX - N`` (so that the newest sorts first in a listing)."""
    stem, dot, ext = name.partition(".")
    if ext != "manifest" or not dot or not stem.isdigit():
        return None
    number = int(stem)
    return _U64_MAX - number if len(stem) == 20 and number > 2**63 else number


def _fall_back(
    uri: str, storage_options: dict[str, str] | None, manifests: list[tuple[int, str]]
) -> Any:
    damaged: list[str] = []
    for version, name in manifests:
        try:
            lance.dataset(uri, version=version, storage_options=storage_options or None)
        except (ValueError, OSError) as exc:
            log.error(
                "record table %s: manifest %s/_versions/%s is unreadable: %s", uri, uri, name, exc
            )
            damaged.append(name)
            continue
        for bad in damaged:
            quarantine_manifest(uri, storage_options, bad)
        log.error(
            "record table %s: falling back to version %d, the newest readable one; "
            "the damaged manifests were moved to %s/%s/",
            uri,
            version,
            uri,
            DAMAGED_DIR,
        )
        return lance.dataset(uri, storage_options=storage_options or None)
    files = ", ".join(f"{uri}/_versions/{n}" for n in damaged)
    raise RecordTableDamaged(f"record table {uri}: no manifest can be read ({files})")


def quarantine_manifest(uri: str, storage_options: dict[str, str] | None, name: str) -> str:
    """Move one manifest out of ``_versions`` (kept, not deleted); returns where it went."""
    lfs = LakeFS(uri, storage_options)
    lfs.makedirs(lfs.join(DAMAGED_DIR))
    target = lfs.join(DAMAGED_DIR, name)
    # LakeFS has no move yet: its pyarrow file system moves within the lake.
    lfs.fs.move(lfs._path(lfs.join("_versions", name)), lfs._path(target))
    return target


def _check_hint(uri: str, storage_options: dict[str, str] | None, version: int) -> None:
    """Say so when the newest manifest is missing: Lance then reads the one before silently."""
    lfs = LakeFS(uri, storage_options)
    try:
        with lfs.fs.open_input_stream(
            lfs._path(lfs.join("_versions", "latest_version_hint.json"))
        ) as fh:
            hinted = int(json.loads(fh.read()).get("version", 0))
    except (OSError, ValueError, AttributeError):
        return
    if hinted > version:
        log.error(
            "record table %s: the manifest of version %d is missing; reading version %d "
            "(the newest one left); records of the missing versions are reconciled by the caller",
            uri,
            hinted,
            version,
        )


class RecordTable:
    """Records (JSON-serialisable dicts with an ``id``) persisted in one Lance dataset.

    Not thread-safe for writes on its own: one :class:`RecordWriter` (or one caller) writes.
    """

    def __init__(self, uri: str, storage_options: dict[str, str] | None = None) -> None:
        self.uri = str(uri)
        self.storage_options = dict(storage_options or {})
        self._lock = threading.Lock()
        self._ds: Any = None
        self._commits_since_compact = 0

    @property
    def path(self) -> str:
        """The table's URI (kept under its old name for callers that log it)."""
        return self.uri

    def _dataset(self) -> Any:
        if self._ds is None:
            self._ds = open_dataset(self.uri, self.storage_options)
        return self._ds

    def load_all(self) -> list[dict[str, Any]]:
        """Every stored record, in no particular order."""
        with self._lock:
            ds = self._dataset()
            if ds is None:
                return []
            table = ds.to_table(columns=["data"])
        return [json.loads(s) for s in table.column("data").to_pylist()]

    def upsert(self, *records: dict[str, Any]) -> None:
        """Insert or replace records by id, in one commit."""
        if not records:
            return
        batch = pa.table(
            {
                "id": [r["id"] for r in records],
                "data": [json.dumps(r, separators=(",", ":")) for r in records],
            },
            schema=_SCHEMA,
        )
        with self._lock:
            ds = self._dataset()
            if ds is None:
                self._ds = lance.write_dataset(
                    batch, self.uri, mode="create", storage_options=self.storage_options or None
                )
            else:
                (
                    ds.merge_insert("id")
                    .when_matched_update_all()
                    .when_not_matched_insert_all()
                    .execute(batch)
                )
            self._commits_since_compact += 1

    def delete(self, *record_ids: str) -> None:
        """Remove records by id, in one commit."""
        if not record_ids:
            return
        with self._lock:
            ds = self._dataset()
            if ds is not None:
                ds.delete("id IN (" + ", ".join(f"'{_quote(i)}'" for i in record_ids) + ")")
                self._commits_since_compact += 1

    @property
    def commits_since_compact(self) -> int:
        return self._commits_since_compact

    def compact(self, keep_versions_newer_than: timedelta = timedelta(0)) -> dict[str, int]:
        """Merge small fragments and remove old versions; returns what was done."""
        with self._lock:
            ds = self._dataset()
            if ds is None:
                return {"versions_removed": 0}
            ds.optimize.compact_files()
            ds = lance.dataset(self.uri, storage_options=self.storage_options or None)
            stats = ds.cleanup_old_versions(older_than=keep_versions_newer_than)
            self._ds = lance.dataset(self.uri, storage_options=self.storage_options or None)
            self._commits_since_compact = 0
            return {"versions_removed": int(stats.old_versions), "version": self._ds.version}


_DELETE = object()  # a pending delete, in place of a record


class RecordWriter:
    """The one writer of a :class:`RecordTable`: ordered, batched commits on its own thread.

    Args:
        table: where the records go.
        compact_every: compact the table after this many commits (None: never here).
        name: the thread's name, for logs.
    """

    def __init__(
        self, table: RecordTable, compact_every: int | None = None, name: str = "records"
    ) -> None:
        self.table = table
        self.compact_every = compact_every
        self._cond = threading.Condition()
        self._pending: dict[str, Any] = {}  # id -> record or _DELETE, latest change wins
        self._waiters: list[Future[None]] = []
        self._compact_requested = False
        self._busy = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"writer-{name}", daemon=True)
        self._thread.start()

    def put(self, record: dict[str, Any]) -> Future[None]:
        """Persist ``record`` (replacing one with its id); the future resolves once durable
        and raises what the commit raised."""
        return self._enqueue(record["id"], record)

    def delete(self, record_id: str) -> Future[None]:
        """Remove a record; the future resolves once the removal is durable."""
        return self._enqueue(record_id, _DELETE)

    def request_compaction(self) -> None:
        """Compact at the next quiet moment, between commits (never during a read)."""
        with self._cond:
            self._compact_requested = True
            self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything handed over so far is committed; False on timeout."""
        with self._cond:
            return self._cond.wait_for(
                lambda: not self._pending and not self._busy and not self._compact_requested,
                timeout,
            )

    def close(self, timeout: float = 30.0) -> None:
        """Commit what is waiting, then stop the thread."""
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _enqueue(self, record_id: str, change: Any) -> Future[None]:
        future: Future[None] = Future()
        with self._cond:
            if self._closed:
                future.set_exception(RuntimeError("the record writer is closed"))
                return future
            self._pending.pop(record_id, None)  # re-inserted last: the order of changes
            self._pending[record_id] = change
            self._waiters.append(future)
            self._cond.notify_all()
        return future

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(
                    lambda: self._pending or self._compact_requested or self._closed
                )
                if self._closed and not self._pending:
                    return
                pending, self._pending = self._pending, {}
                waiters, self._waiters = self._waiters, []
                compact, self._compact_requested = self._compact_requested, False
                self._busy = True
            error: BaseException | None = None
            try:
                self._commit(pending)
            except BaseException as exc:  # the callers learn of it through their futures
                log.exception("committing %d record(s) to %s failed", len(pending), self.table.uri)
                error = exc
            for future in waiters:
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)
            due = self.compact_every is not None and (
                self.table.commits_since_compact >= self.compact_every
            )
            if compact or due:
                try:
                    self.table.compact()
                except Exception:  # bookkeeping must never take the service down
                    log.exception("compacting %s failed", self.table.uri)
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def _commit(self, pending: dict[str, Any]) -> None:
        upserts = [change for change in pending.values() if change is not _DELETE]
        deletes = [record_id for record_id, change in pending.items() if change is _DELETE]
        self.table.upsert(*upserts)
        self.table.delete(*deletes)


def _quote(value: str) -> str:
    return value.replace("'", "''")
