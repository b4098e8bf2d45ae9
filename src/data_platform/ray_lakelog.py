"""Level 3: a task's log and progress as objects in the lake, shipped from the task's node.

Object storage has no append, so the node that runs a task writes its log as numbered chunk
objects, each what the task printed since the previous one (about one a second), and its
progress as one object rewritten whole when it changes::

    <lake>/_system/task-logs/<task>/00000000.log, 00000001.log, ...
    <lake>/_system/task-logs/<task>/progress.jsonl

A reader anywhere (the Data Platform's node, during the run or long after) sees the log as the
concatenation of the chunks: an offset is a position in it, and a follower only probes for
the next chunk's name, one GET per poll. Chunks are never rewritten, so a reader that saw one
never needs to read it again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from data_platform.execution import LogSource
from lakeapi.names import check_name
from serverkit.lakefs import LakeFS

LOGS_FOLDER = ("_system", "task-logs")
PROGRESS_OBJECT = "progress.jsonl"
_CHUNK_SUFFIX = ".log"


class TaskObjects(LakeFS):
    """One task's log chunks and progress object under the lake (local or object storage)."""

    def __init__(self, lake_root: str, storage_options: Mapping[str, str], task_id: str) -> None:
        super().__init__(lake_root, storage_options)
        self.folder = self.join(*LOGS_FOLDER, check_name(task_id, "task id"))

    def chunk_uri(self, seq: int) -> str:
        return f"{self.folder}/{seq:08d}{_CHUNK_SUFFIX}"

    def put(self, uri: str, data: bytes) -> None:
        """Write one whole object (a local lake needs its folder first)."""
        self.makedirs(self.folder)
        with self.fs.open_output_stream(self._path(uri)) as out:
            out.write(data)

    def get(self, uri: str) -> bytes | None:
        """The whole object, or None when there is none."""
        try:
            with self.fs.open_input_stream(self._path(uri)) as fh:
                return bytes(fh.read())
        except FileNotFoundError:
            return None
        except OSError as exc:  # pyarrow's S3 says "not found" as a plain OSError
            if "NoSuchKey" in str(exc) or "Path does not exist" in str(exc):
                return None
            raise

    def chunk_count(self) -> int:
        return sum(name.endswith(_CHUNK_SUFFIX) for name in self.children(self.folder))

    def delete(self) -> None:
        self.delete_tree(self.folder)


class LakeLog(LogSource):
    """A task's log read back from its chunks; one instance per reader (it remembers the
    sizes of the chunks it has seen, and the last chunk's bytes for a partial read)."""

    def __init__(self, objects: TaskObjects) -> None:
        self.objects = objects
        self._sizes: list[int] = []
        self._last: tuple[int, bytes] | None = None

    async def read(self, offset: int, limit: int) -> tuple[bytes, int]:
        return await asyncio.to_thread(self._read, offset, limit)

    async def tail(self, lines: int | None) -> tuple[bytes, int]:
        return await asyncio.to_thread(self._tail, lines)

    def _chunk(self, seq: int) -> bytes | None:
        if self._last is not None and self._last[0] == seq:
            return self._last[1]
        data = self.objects.get(self.objects.chunk_uri(seq))
        if data is None:
            return None
        if seq == len(self._sizes):
            self._sizes.append(len(data))
        self._last = (seq, data)
        return data

    def _read(self, offset: int, limit: int) -> tuple[bytes, int]:
        seq, pos = 0, 0
        while seq < len(self._sizes) and pos + self._sizes[seq] <= offset:
            pos += self._sizes[seq]
            seq += 1
        out = bytearray()
        while len(out) < limit:
            data = self._chunk(seq)
            if data is None:
                break
            skip = max(0, offset - pos)
            out += data[skip : skip + limit - len(out)]
            pos += len(data)
            seq += 1
        return bytes(out), offset + len(out)

    def _tail(self, lines: int | None) -> tuple[bytes, int]:
        try:
            count = self.objects.chunk_count()
        except OSError:  # no folder yet: nothing was shipped
            count = 0
        chunks = [self._chunk(seq) for seq in range(count)]
        data = b"".join(c for c in chunks if c is not None)
        if lines is None:
            return data, len(data)
        if lines == 0:
            return b"", len(data)
        return b"".join(data.splitlines(keepends=True)[-lines:]), len(data)
