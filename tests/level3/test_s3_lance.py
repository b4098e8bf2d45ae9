"""Lance and Daft on a real S3 endpoint: the storage layer Level 3's lake stands on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import lance
import pyarrow as pa
import pytest

from tests.level3.s3 import S3Endpoint
from tests.support import REPO, wait_until

pytestmark = [
    pytest.mark.level3,
    # Popen forks the test process, which has lance loaded, and execs at once: safe.
    pytest.mark.filterwarnings("ignore:lance is not fork-safe"),
]

WRITES_PER_WRITER = 8


def test_lance_writes_appends_and_reads_a_table_on_the_endpoint(
    s3: S3Endpoint, s3_prefix: str
) -> None:
    uri = s3.uri(f"{s3_prefix}/t.lance")
    lance.write_dataset(pa.table({"x": [1, 2, 3]}), uri, storage_options=s3.storage_options)
    lance.write_dataset(
        pa.table({"x": [4]}), uri, mode="append", storage_options=s3.storage_options
    )

    table = lance.dataset(uri, storage_options=s3.storage_options)
    assert table.version == 2
    assert sorted(table.to_table()["x"].to_pylist()) == [1, 2, 3, 4]
    # The files really are objects in the bucket, not a local directory.
    keys = s3.list_keys(f"{s3_prefix}/t.lance/")
    assert sum("/_versions/" in k for k in keys) == 2
    assert sum("/data/" in k for k in keys) == 2


def test_the_endpoint_refuses_a_second_put_if_none_match(s3: S3Endpoint, s3_prefix: str) -> None:
    """Lance's commit on S3 is a put of the next manifest with ``If-None-Match: *``: only
    safe if the endpoint refuses the loser's put, as AWS does (412)."""
    key = f"{s3_prefix}/manifest-1"
    first = s3.request("PUT", key, b"first", {"If-None-Match": "*"})
    second = s3.request("PUT", key, b"second", {"If-None-Match": "*"})

    assert first.status_code == 200, first.text
    assert second.status_code == 412, second.text
    assert s3.request("GET", key).content == b"first"


def test_the_wrong_secret_is_refused(s3: S3Endpoint) -> None:
    wrong = S3Endpoint(s3.endpoint, s3.region, s3.access_key, "not-the-secret", s3.bucket)
    assert wrong.request("HEAD").status_code == 403
    with pytest.raises((OSError, ValueError), match="SignatureDoesNotMatch"):
        lance.dataset(wrong.uri("nowhere.lance"), storage_options=wrong.storage_options)


@pytest.mark.parametrize("mode", ["append", "merge"])
def test_two_writers_committing_to_one_table_concurrently_lose_nothing(
    s3: S3Endpoint, s3_prefix: str, tmp_path: Path, mode: str
) -> None:
    uri = s3.uri(f"{s3_prefix}/shared.lance")
    empty = pa.table({"k": pa.array([], pa.string()), "writer": pa.array([], pa.string())})
    lance.write_dataset(empty, uri, storage_options=s3.storage_options)
    go = tmp_path / "go"
    env = {
        **os.environ,
        "LEVEL3_STORAGE_OPTIONS": json.dumps(s3.storage_options),
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    writers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.level3.writer",
                uri,
                mode,
                who,
                str(WRITES_PER_WRITER),
                str(go),
            ],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for who in ("a", "b")
    ]
    # Both have imported lance (a few seconds) before either commits: their commits overlap.
    wait_until(lambda: all((tmp_path / f"ready-{w}").exists() for w in "ab"), timeout=60)
    go.touch()
    spans = []
    for writer in writers:
        out, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err.decode()[-3000:]
        spans.append(json.loads(out.decode().strip().splitlines()[-1]))
    (a, b) = spans
    assert a["began"] < b["ended"] and b["began"] < a["ended"], "the writers did not overlap"

    table = lance.dataset(uri, storage_options=s3.storage_options)
    keys = table.to_table()["k"].to_pylist()
    expected = {f"{w}-{i}-{j}" for w in "ab" for i in range(WRITES_PER_WRITER) for j in range(5)}
    assert len(keys) == len(expected)
    assert set(keys) == expected
    # One version per commit: none was overwritten by the other writer's.
    assert table.version == 1 + 2 * WRITES_PER_WRITER


@pytest.mark.slow
def test_daft_writes_and_reads_lance_on_the_endpoint_through_its_io_config(
    s3: S3Endpoint, s3_prefix: str
) -> None:
    import daft

    uri = s3.uri(f"{s3_prefix}/daft.lance")
    io_config = s3.io_config()
    daft.from_pydict({"label": [3, 1, 4, 1, 5], "name": list("abcde")}).write_lance(
        uri, io_config=io_config
    )
    daft.from_pydict({"label": [9], "name": ["f"]}).write_lance(
        uri, mode="append", io_config=io_config
    )

    read = (
        daft.read_lance(uri, io_config=io_config)
        .where(daft.col("label") > daft.lit(1))
        .sort("label")
    )
    assert read.to_pydict() == {"label": [3, 4, 5, 9], "name": ["a", "c", "e", "f"]}
    # The same table, read back by bare Lance with the storage options.
    assert lance.dataset(uri, storage_options=s3.storage_options).count_rows() == 6
