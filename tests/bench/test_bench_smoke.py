"""Keeps ``make bench`` from rotting: the report writer, the statistics, one real area."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from bench.report import MISS, PASS, SKIP, Report, Row, Target, skipped
from bench.stats import paired_ratio, percentile, rotate

from tests.support import REPO

BENCH = [sys.executable, "-m", "bench.run"]


def test_rows_judge_their_targets_and_the_report_says_so(tmp_path: Path):
    faster = Target("ratio", "<=", 1.3, "<= 1.3x bare")
    rows = [
        Row("a", "fast", "s", 1.2, baseline=1.0, ratio=1.2, target=faster),
        Row("a", "slow", "s", 2.0, baseline=1.0, ratio=2.0, target=faster, note="why"),
        Row("a", "info", "MB", 3.0),
        skipped("a", "later", "not measured here", faster),
    ]
    assert [r.status for r in rows] == [PASS, MISS, "INFO", SKIP]
    report = Report(machine={"cpu": "x", "cores": 2}, command="python -m bench.run")
    report.add("a", rows, {"samples": [1.0, math.nan]}, "how")
    json_path, md_path = report.write(tmp_path, "t")
    data = json.loads(json_path.read_text())
    assert data["misses"] == ["a: slow"]
    assert data["details"]["a"]["samples"] == [1.0, None]  # NaN is not JSON
    markdown = md_path.read_text()
    assert "| a | slow | 2.00 s | 1.00 s | 2.00x | <= 1.3x bare | **MISS** |" in markdown
    assert "measured 2.00x, target <= 1.3x bare; why" in markdown


def test_statistics():
    assert paired_ratio([2.0, 3.0, 10.0], [1.0, 1.0, 1.0]) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile(list(range(101)), 99) == 99
    assert rotate([1, 2, 3], 1) == [2, 3, 1]


@pytest.mark.slow
def test_quick_storage_bench_runs_end_to_end(tmp_path: Path):
    """The quickest real path: ingest (script run directly), Parquet, three timed reads."""
    proc = subprocess.run(
        [*BENCH, "--quick", "--only", "storage", "--out", str(tmp_path), "--name", "smoke"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads((tmp_path / "smoke.json").read_text())
    rows = {r["name"]: r for r in report["rows"]}
    size = rows["MNIST dataset bytes on disk"]
    assert size["status"] in (PASS, MISS) and 5 < size["value"] < 60  # MB of 70k digits
    read = rows["read train split into numpy"]
    assert read["value"] > 0 and read["baseline"] > 0 and read["ratio"] > 0
    assert report["machine"]["cores"] >= 1 and report["machine"]["torch"]
    assert (tmp_path / "smoke.md").read_text().startswith("# Benchmark")
