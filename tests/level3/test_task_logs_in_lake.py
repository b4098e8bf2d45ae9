"""A task's log as chunk objects in the lake, read back by offset and by tail, on the S3
endpoint and on a local lake; and the resource request a task's supervisor is placed by."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from data_platform.ray_lakelog import LakeLog, TaskObjects
from data_platform.ray_nodes import ray_options
from lakeapi.errors import InvalidRequest
from tests.level3.s3 import S3Endpoint

pytestmark = [pytest.mark.level3]

CHUNKS = [b"one\ntw", b"o\nthree\n", b"four\n"]


def lakes(s3: S3Endpoint, prefix: str, tmp_path: Path) -> list[tuple[str, dict[str, str]]]:
    return [(s3.uri(f"{prefix}/lake"), s3.storage_options), (str(tmp_path / "lake"), {})]


def test_chunks_read_back_as_one_log_by_offset_and_tail(
    s3: S3Endpoint, s3_prefix: str, tmp_path: Path
) -> None:
    for root, options in lakes(s3, s3_prefix, tmp_path):
        objects = TaskObjects(root, options, "task-1")
        follower = LakeLog(objects)
        assert asyncio.run(follower.read(0, 100)) == (b"", 0)
        objects.put(objects.chunk_uri(0), CHUNKS[0])
        data, offset = asyncio.run(follower.read(0, 100))
        assert (data, offset) == (CHUNKS[0], 6)
        assert asyncio.run(follower.read(offset, 100)) == (b"", 6)  # nothing new yet
        objects.put(objects.chunk_uri(1), CHUNKS[1])
        objects.put(objects.chunk_uri(2), CHUNKS[2])
        # A small limit splits a chunk; the next read goes on where it stopped.
        part, offset = asyncio.run(follower.read(offset, 3))
        rest, end = asyncio.run(follower.read(offset, 100))
        assert part + rest == CHUNKS[1] + CHUNKS[2] and end == sum(map(len, CHUNKS))

        fresh = LakeLog(objects)  # a reader after the end, from nothing
        assert asyncio.run(fresh.tail(None)) == (b"".join(CHUNKS), end)
        assert asyncio.run(fresh.tail(2)) == (b"three\nfour\n", end)
        assert asyncio.run(fresh.read(4, 4)) == (b"two\n", 8)
        assert objects.chunk_count() == 3

        objects.delete()
        assert asyncio.run(LakeLog(objects).tail(None)) == (b"", 0)


def test_a_task_id_that_is_not_a_name_is_refused(s3: S3Endpoint) -> None:
    with pytest.raises(InvalidRequest, match="invalid task id"):
        TaskObjects(s3.uri("x"), s3.storage_options, "../escape")


def test_a_resource_request_becomes_rays_actor_options() -> None:
    assert ray_options(None) == {"num_cpus": 0}
    assert ray_options({"cpus": 2, "memory_mb": 512, "worker1": 1}) == {
        "num_cpus": 2,
        "memory": 512 * 1024 * 1024,
        "resources": {"worker1": 1.0},
    }
    for bad in ({"cpus": -1}, {"gpu": "two"}, {"worker1": True}, {"cpus": float("nan")}):
        with pytest.raises(ValueError, match="non-negative number"):
            ray_options(bad)
    for own in ("CPU", "GPU", "memory", "node:127.0.0.3"):
        with pytest.raises(ValueError, match="is Ray's own"):
            ray_options({own: 1})
