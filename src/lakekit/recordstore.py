"""A table of JSON records kept in Lance: the lake's own bookkeeping (tasks, services).

Each record is one row keyed by ``id``; writes are upserts (``merge_insert``), so every change
is one atomic Lance commit and a crash never leaves half a record. Every commit also adds a
Lance version, so ``compact`` folds the small fragments together and drops old versions.
"""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import lance
import pyarrow as pa

_SCHEMA = pa.schema([("id", pa.string()), ("data", pa.string())])


class RecordTable:
    """Records (JSON-serialisable dicts with an ``id``) persisted in one Lance dataset."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._ds: lance.LanceDataset | None = None
        self._commits_since_compact = 0

    def _dataset(self) -> lance.LanceDataset | None:
        if self._ds is None and Path(self.path, "_versions").is_dir():
            self._ds = lance.dataset(self.path)
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
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                self._ds = lance.write_dataset(batch, self.path, mode="create")
            else:
                (
                    ds.merge_insert("id")
                    .when_matched_update_all()
                    .when_not_matched_insert_all()
                    .execute(batch)
                )
            self._commits_since_compact += 1

    def delete(self, record_id: str) -> None:
        with self._lock:
            ds = self._dataset()
            if ds is not None:
                ds.delete(f"id = '{_quote(record_id)}'")
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
            ds = lance.dataset(self.path)
            stats = ds.cleanup_old_versions(older_than=keep_versions_newer_than)
            self._ds = lance.dataset(self.path)
            self._commits_since_compact = 0
            return {"versions_removed": int(stats.old_versions), "version": self._ds.version}


def _quote(value: str) -> str:
    return value.replace("'", "''")
