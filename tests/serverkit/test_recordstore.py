"""RecordTable and RecordWriter on real Lance files: ordered, batched, durable when resolved."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import lance
import pytest

from serverkit.recordstore import RecordTable, RecordWriter


@pytest.mark.parametrize("as_uri", [False, True], ids=["path", "file-uri"])
def test_writer_commits_in_order_and_futures_mean_durable(tmp_path: Path, as_uri: bool):
    path = tmp_path / "records.lance"
    table = RecordTable(path.as_uri() if as_uri else str(path))
    writer = RecordWriter(table, name="t")
    try:
        futures = [writer.put({"id": f"r{i % 3}", "n": i}) for i in range(30)]
        futures[-1].result(10)
        # A fresh reader (a restart) sees the last change of each record.
        records = {r["id"]: r["n"] for r in RecordTable(str(path)).load_all()}
        assert records == {"r0": 27, "r1": 28, "r2": 29}
        writer.delete("r1").result(10)
        assert {r["id"] for r in RecordTable(str(path)).load_all()} == {"r0", "r2"}
    finally:
        writer.close()
    assert all(f.done() and f.exception() is None for f in futures)


def test_a_failed_commit_fails_its_futures_and_the_writer_goes_on(tmp_path: Path):
    table = RecordTable(str(tmp_path / "records.lance"))
    writer = RecordWriter(table, name="t")
    real = table.upsert
    failing = threading.Event()
    failing.set()

    def upsert(*records: dict[str, Any]) -> None:
        if failing.is_set():
            raise OSError("no space left on device")
        real(*records)

    table.upsert = upsert  # type: ignore[method-assign]
    try:
        with pytest.raises(OSError, match="no space left"):
            writer.put({"id": "a"}).result(10)
        failing.clear()
        writer.put({"id": "b"}).result(10)
        assert [r["id"] for r in table.load_all()] == ["b"]
    finally:
        writer.close()


def test_compaction_runs_between_commits_and_reads_go_on(tmp_path: Path):
    table = RecordTable(str(tmp_path / "records.lance"))
    writer = RecordWriter(table, compact_every=5, name="t")
    try:
        for i in range(20):
            writer.put({"id": f"r{i}"}).result(10)
            assert len(table.load_all()) == i + 1  # reads never see a half-compacted table
        writer.request_compaction()
        assert writer.flush(30)
        ds = lance.dataset(table.uri)
        assert len(ds.versions()) == 1 and len(ds.get_fragments()) == 1
    finally:
        writer.close()


def test_a_closed_writer_refuses_changes(tmp_path: Path):
    writer = RecordWriter(RecordTable(str(tmp_path / "records.lance")), name="t")
    writer.close()
    with pytest.raises(RuntimeError, match="closed"):
        writer.put({"id": "late"}).result(1)
