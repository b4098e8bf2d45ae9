"""What a submission names, checked and resolved: the script, the input and the output.

Scripts and raw inputs are files of the Data Platform's own machine (the scripts root and the
data root), so they are checked as local paths, symlinks included; lake references become
the lake's URIs. Kept out of the manager, which holds no file code.
"""

from __future__ import annotations

from pathlib import Path

from data_platform.store import Lake
from lakeapi.errors import AlreadyExists, DatasetNotFound, InvalidRequest, ModelNotFound
from lakeapi.names import parse_ref, pinned_uri
from lakeapi.schemas import WriteMode


class Resolver:
    """Resolves a submission's names, or raises InvalidRequest (or a 404 for a lake name)."""

    def __init__(self, scripts_root: Path, data_root: Path, lake: Lake) -> None:
        self.scripts_root = scripts_root.resolve()
        self.data_root = data_root.resolve()
        self.lake = lake

    def script(self, script: str) -> Path:
        """The script's real path under the scripts root."""
        if Path(script).is_absolute() or ".." in Path(script).parts or "\0" in script:
            raise InvalidRequest(
                f"script {script!r} must be a relative path under the scripts root"
            )
        path = (self.scripts_root / script).resolve()
        if not path.is_relative_to(self.scripts_root):
            raise InvalidRequest(f"script {script!r} leads out of the scripts root")
        if not path.is_file():
            raise InvalidRequest(f"script {script!r} not found under the scripts root")
        if path.suffix != ".py":
            raise InvalidRequest(f"script {script!r} is not a .py file")
        return path

    def input(self, value: str) -> str:
        """A lake reference as its URI, or raw data (a local path under the data root).

        A lake reference is resolved now and pinned: the URI ends in ``?version=N``, which
        ``lakekit`` opens, so the task reads that version whatever is written or tagged after
        it was submitted (``datasets/NAME@12``, ``@baseline``; a plain name: its latest
        version at submit). The record says which, so every run names its exact snapshot.
        """
        if not value:
            return ""
        if "\0" in value:
            raise InvalidRequest("input contains a NUL byte")
        ref = parse_ref(value)
        if ref is not None:
            uri = self.lake.path_of(ref.kind, ref.name)
            latest = self.lake.version_of(uri)
            if latest is None:
                missing = DatasetNotFound if ref.kind == "datasets" else ModelNotFound
                raise missing(f"{ref.kind[:-1].capitalize()} '{ref.name}' does not exist")
            return pinned_uri(uri, latest if ref.at is None else self.lake.resolve(ref))
        raw = Path(value)
        if ".." in raw.parts:
            raise InvalidRequest(f"input {value!r} must not contain '..'")
        candidate = raw if raw.is_absolute() else self.data_root / raw
        path = candidate.resolve()
        if not path.is_relative_to(self.data_root):
            raise InvalidRequest(
                f"input {value!r} is outside the data root {self.data_root}: give a path "
                "relative to it (e.g. 'raw/mnist'), or start the Data Platform with "
                "DP_DATA_ROOT set to the folder that holds your raw data"
            )
        if not path.exists():
            raise InvalidRequest(
                f"input {value!r} does not exist under the data root {self.data_root}"
            )
        return str(path)

    def output(self, value: str, mode: WriteMode = WriteMode.OVERWRITE) -> str:
        """The URI of ``datasets/NAME`` or ``models/NAME``.

        Raises:
            AlreadyExists: ``mode`` is create and the output exists.
            InvalidRequest: not a lake name, or append to a model (a model version is a
                whole record).
        """
        ref = self.lake.parse_ref(value)
        if ref is None:
            raise InvalidRequest(f"output {value!r} must be 'datasets/NAME' or 'models/NAME'")
        kind, name = ref
        if mode == WriteMode.APPEND and kind == "models":
            raise InvalidRequest("a model cannot be appended to: use mode 'overwrite'")
        uri = self.lake.path_of(kind, name)
        if mode == WriteMode.CREATE and self.lake.version_of(uri) is not None:
            raise AlreadyExists(
                f"{kind[:-1].capitalize()} '{name}' already exists: submit with mode "
                "'overwrite' for a new version, or 'append'"
            )
        return uri
