"""Version timestamps are UTC whatever the machine's time zone (Lance gives naive local times)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import lance
import pyarrow as pa
import pytest

from data_platform.store import Lake


@pytest.fixture
def far_east(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TZ", "Asia/Shanghai")  # UTC+8, no daylight saving
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_version_timestamps_are_utc_in_another_time_zone(far_east, tmp_path: Path):
    root = tmp_path / "lake"
    lance.write_dataset(pa.table({"x": [1, 2]}), str(root / "datasets" / "d.lance"))
    lake = Lake(str(root))
    now = datetime.now(UTC)
    dataset = lake.get_dataset("d")
    assert dataset.created_at is not None and dataset.created_at.tzinfo is not None
    assert abs(dataset.created_at - now) < timedelta(minutes=5)
    (version,) = lake.dataset_versions("d")
    assert abs(version.timestamp - now) < timedelta(minutes=5)
