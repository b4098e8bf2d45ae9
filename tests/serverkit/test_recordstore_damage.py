"""A record table whose latest manifest is torn or missing still opens, says which file, and
keeps taking writes; one with no readable manifest says so."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from serverkit.recordstore import RecordTable, RecordTableDamaged, list_manifests


def table_with_three_versions(tmp_path: Path) -> tuple[RecordTable, Path]:
    table = RecordTable(str(tmp_path / "t.lance"))
    for i in range(3):
        table.upsert({"id": f"r{i}"})
    return table, tmp_path / "t.lance"


def ids(uri: Path) -> list[str]:
    return sorted(r["id"] for r in RecordTable(str(uri)).load_all())


def test_a_torn_latest_manifest_is_named_set_aside_and_the_table_reads_as_before_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    _, uri = table_with_three_versions(tmp_path)
    version, name = list_manifests(str(uri))[0]
    assert version == 3
    (uri / "_versions" / name).write_bytes(b"torn")
    with caplog.at_level(logging.ERROR):
        assert ids(uri) == ["r0", "r1"]
    assert f"{uri}/_versions/{name}" in caplog.text
    assert (uri / "_damaged" / name).read_bytes() == b"torn"  # kept, not deleted
    RecordTable(str(uri)).upsert({"id": "r9"})  # and it takes writes again
    assert ids(uri) == ["r0", "r1", "r9"]


def test_a_deleted_latest_manifest_is_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    _, uri = table_with_three_versions(tmp_path)
    _, name = list_manifests(str(uri))[0]
    (uri / "_versions" / name).unlink()
    with caplog.at_level(logging.ERROR):
        assert ids(uri) == ["r0", "r1"]
    assert "manifest of version 3 is missing" in caplog.text


def test_no_readable_manifest_is_an_error_naming_the_files(tmp_path: Path):
    _, uri = table_with_three_versions(tmp_path)
    for _, name in list_manifests(str(uri)):
        (uri / "_versions" / name).write_bytes(b"torn")
    with pytest.raises(RecordTableDamaged, match="no manifest can be read"):
        RecordTable(str(uri)).load_all()
