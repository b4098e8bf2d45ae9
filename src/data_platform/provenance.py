"""What a task ran on, stamped at submit: the script's sha256, the exact version of a lake
input, and checksums of raw input files. Lineage and reproduce read it back from the record.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from data_platform.store import Lake

MAX_FILES = 1000  # a raw input with more files is recorded by its first files only
MAX_BYTES = 4 * 1024**3  # and no more than this is hashed at submit
_CHUNK = 1024 * 1024


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def stamp(script_path: Path, input_ref: str, input_path: str, lake: Lake) -> dict[str, Any]:
    """The record's provenance fields for a submission."""
    fields: dict[str, Any] = {"script_sha256": sha256_file(script_path)}
    if not input_path:
        return fields
    if lake.parse_ref(input_ref.partition("@")[0]) is not None:
        return fields  # its exact version is pinned in the input path (Task.input_version)
    fields["input_checksums"] = checksums(Path(input_path))
    return fields


def checksums(path: Path) -> dict[str, str]:
    """sha256 of each file under ``path`` (a file: itself), by path relative to it."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    sums: dict[str, str] = {}
    budget = MAX_BYTES
    for file in files[:MAX_FILES]:
        size = file.stat().st_size
        if size > budget:
            sums[_name(file, path)] = "skipped: over the hashing budget"
            continue
        budget -= size
        sums[_name(file, path)] = sha256_file(file)
    return sums


def _name(file: Path, root: Path) -> str:
    return file.name if file == root else str(file.relative_to(root))
