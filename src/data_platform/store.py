"""The lake: the only code of the Data Platform that touches Lance.

The lake is one URI (a local path, ``file:///...`` or ``s3://bucket/prefix``) and its storage
options; Lance opens what is under it by URI and ``serverkit.lakefs`` lists and deletes there,
so nothing here assumes a local disk. Layout under the root::

    datasets/{id}.lance     one Lance dataset per dataset
    models/{id}.lance       one Lance dataset per model (see lakekit.modelrec)
    _system/tasks.lance     task records
    _system/completions.lance  completion markers (what a restart trusts, see recovery.py)

Task logs and scratch are the executor's (``DP_WORK_DIR``; by default ``_system/`` of a local
lake), not the lake's.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import lance
import pyarrow as pa

from data_platform.lake_versions import LakeVersions, int_or_none, tags_by_version, utc
from lakeapi.errors import DatasetNotFound, InUse, InvalidRequest, ModelNotFound, NotFound
from lakeapi.names import check_name, parse_ref, split_uri
from lakeapi.pages import page
from lakeapi.schemas import Dataset, DatasetVersion, Model, Task
from serverkit.lakefs import LakeFS, normalize_uri
from serverkit.recordstore import RecordTable

KINDS = ("datasets", "models")
_PIN_PREFIX = "model-"  # a dataset version a model was trained on
SERVICE_PREFIX = "service-"  # a model version a service runs (the AI Platform sets it)
_SUFFIX = ".lance"


class Lake(LakeVersions):
    """Datasets, models and task records under one root.

    Args:
        root: the lake's URI.
        storage_options: Lance's storage options for it (credentials, endpoint, region).
    """

    def __init__(
        self, root: str | os.PathLike[str], storage_options: dict[str, str] | None = None
    ) -> None:
        self.fs = LakeFS(os.fspath(root), storage_options)
        self.root = self.fs.root
        self.storage_options = self.fs.storage_options
        for kind in KINDS:
            self.fs.makedirs(self.fs.join(kind))
        self.tasks = RecordTable(self.fs.join("_system", "tasks.lance"), self.storage_options)
        # Completion markers (recovery.py): apart from the task records they vouch for.
        self.completions = RecordTable(
            self.fs.join("_system", "completions.lance"), self.storage_options
        )

    # -- paths ---------------------------------------------------------------------------

    def path_of(self, kind: str, name: str) -> str:
        """The Lance URI of ``datasets/NAME`` or ``models/NAME`` (names validated)."""
        if kind not in KINDS:
            raise InvalidRequest(f"unknown lake kind {kind!r}: use 'datasets' or 'models'")
        return self.fs.join(kind, check_name(name, kind[:-1] + " id") + _SUFFIX)

    def parse_ref(self, ref: str) -> tuple[str, str] | None:
        """Split ``datasets/NAME`` into its kind and name; None if it is not a lake reference.

        Raises:
            InvalidRequest: the reference names a version or tag (``@``): not an output.
        """
        parsed = parse_ref(ref)
        if parsed is None:
            return None
        if parsed.at is not None:
            raise InvalidRequest(f"{ref!r} names a version: an output is a plain name")
        return parsed.kind, parsed.name

    # -- datasets ------------------------------------------------------------------------

    def list_datasets(
        self, limit: int | None = None, cursor: str | None = None
    ) -> tuple[list[Dataset], str | None]:
        """A page of datasets by name (see lakeapi.pages), and the next page's cursor."""
        return self._scan("datasets", self._describe_dataset, limit, cursor)

    def get_dataset(self, name: str) -> Dataset:
        ds = self._open("datasets", name, DatasetNotFound)
        return self._describe_dataset(name, ds)

    def dataset_versions(self, name: str) -> list[DatasetVersion]:
        ds = self._open("datasets", name, DatasetNotFound)
        tags = tags_by_version(ds)
        return [
            DatasetVersion(
                version=v["version"],
                timestamp=utc(v.get("timestamp")),
                num_rows=int_or_none(v.get("metadata", {}).get("total_rows")),
                tags=tags.get(v["version"], []),
            )
            for v in ds.versions()
        ]

    def delete_dataset(self, name: str, force: bool = False) -> None:
        """Delete a dataset; unless ``force``, refused (409 IN_USE) while a model names a
        version of it as its training data."""
        ds = self._open("datasets", name, DatasetNotFound)
        users = [
            "model {} version {} (trained on version {})".format(
                *tag.removeprefix(_PIN_PREFIX).rpartition("-v")[::2], info["version"]
            )
            for tag, info in ds.tags.list().items()
            if tag.startswith(_PIN_PREFIX)
        ]
        if users and not force:
            raise InUse(
                f"Dataset '{name}' is used by {', '.join(sorted(users))}: delete those models "
                "first, or pass force=true"
            )
        self.fs.delete_tree(self.path_of("datasets", name))

    # -- models --------------------------------------------------------------------------

    def list_models(
        self, limit: int | None = None, cursor: str | None = None
    ) -> tuple[list[Model], str | None]:
        """A page of models by name, and the next page's cursor."""
        return self._scan("models", self._describe_model, limit, cursor)

    def get_model(self, name: str) -> Model:
        ds = self._open("models", name, ModelNotFound)
        return self._describe_model(name, ds)

    def delete_model(self, name: str, force: bool = False) -> None:
        """Delete a model; unless ``force``, refused (409 IN_USE) while a service runs it."""
        ds = self._open("models", name, ModelNotFound)
        users = [
            f"service {tag.removeprefix(SERVICE_PREFIX)} (version {info['version']})"
            for tag, info in ds.tags.list().items()
            if tag.startswith(SERVICE_PREFIX)
        ]
        if users and not force:
            raise InUse(
                f"Model '{name}' is used by {', '.join(sorted(users))}: delete those services "
                "first, or pass force=true"
            )
        for dataset in self._names("datasets"):
            try:
                self._unpin(self.path_of("datasets", dataset), name)
            except (ValueError, OSError):
                continue  # no committed version: nothing pinned there

        self.fs.delete_tree(self.path_of("models", name))

    # -- versions: what models pin, and housekeeping ---------------------------------------

    def pin_model_source(self, model_path: str) -> str | None:
        """Tag the dataset version a model was trained on, so cleanup never removes it.

        Returns the tag, or None when the model names no dataset of this lake.
        """
        from lakekit import modelrec

        info = modelrec.read_model_info(str(model_path), storage_options=self.storage_options)
        source = info.get("source") or {}
        src_path, version = source.get("path"), source.get("version")
        if src_path:
            src_path, pinned = split_uri(str(src_path))
            version = pinned if version is None else version
        if not src_path or version is None or self._dataset_name(str(src_path)) is None:
            return None
        ds = self._dataset(str(src_path))
        tag = f"{_PIN_PREFIX}{modelrec.model_name(model_path)}-v{info['version']}"
        ds.tags.create(tag, int(version))
        return tag

    def model_problem(self, uri: str) -> str | None:
        """What makes the model record at ``uri`` unservable; None when it is a valid one."""
        from lakekit.models import check_model_record  # torch-free without load=True

        return check_model_record(uri, self.storage_options)

    def _dataset_name(self, uri: str) -> str | None:
        """The name of the lake dataset at ``uri``, or None when it is not one of ours."""
        try:
            uri = normalize_uri(uri)
        except ValueError:
            return None
        prefix = self.fs.join("datasets") + "/"
        name = uri[len(prefix) :].removesuffix(_SUFFIX) if uri.startswith(prefix) else ""
        try:
            return name if name and self.path_of("datasets", name) == uri else None
        except InvalidRequest:
            return None

    def _unpin(self, dataset_path: str, model_name: str) -> None:
        ds = self._dataset(dataset_path)
        for tag in list(ds.tags.list()):
            if tag.startswith(f"{_PIN_PREFIX}{model_name}-v"):
                ds.tags.delete(tag)

    def pinned_versions(self, name: str) -> dict[str, int]:
        ds = self._open("datasets", name, DatasetNotFound)
        return {tag: info["version"] for tag, info in ds.tags.list().items()}

    def clean_old_versions(self, older_than: timedelta) -> dict[str, int]:
        """Drop dataset and model versions older than ``older_than``, except each one's latest
        and every tagged version: user tags, model aliases, the dataset versions models were
        trained on (``model-*``) and the model versions services run (``service-*``).
        Returns versions removed per path."""
        removed = {}
        for kind in KINDS:
            for name in self._names(kind):
                try:
                    ds = self._dataset(self.path_of(kind, name))
                    stats = ds.cleanup_old_versions(
                        older_than=older_than, error_if_tagged_old_versions=False
                    )
                except (ValueError, OSError):
                    continue  # being written, or not a dataset
                if stats.old_versions:
                    removed[f"{kind}/{name}"] = int(stats.old_versions)
        return removed

    # -- task outputs: what a failed task must not leave behind ----------------------------

    def version_of(self, uri: str) -> int | None:
        """The current Lance version at ``uri``, or None when nothing is committed there."""
        try:
            return int(self._dataset(uri).version)
        except (ValueError, OSError):
            return None

    def readable(self, uri: str) -> bool:
        """Whether ``uri`` opens, a pinned one (``...?version=N``) at its version."""
        base, version = split_uri(uri)
        try:
            self._dataset(base, version=version)
        except (ValueError, OSError):
            return False
        return True

    def roll_back(self, uri: str, version_before: int | None) -> str | None:
        """Make ``uri`` read as it did before a task wrote to it; returns what was done."""
        if not self.fs.exists(uri):
            return None
        if version_before is None:
            # Nothing was readable there before: whatever the task left is partial.
            self.fs.delete_tree(uri)
            return "removed partial output"
        try:
            ds = self._dataset(uri)
        except (ValueError, OSError):
            return None
        if ds.version == version_before:
            return None
        ds.checkout_version(version_before).restore()
        return f"restored version {version_before}"

    # -- task records --------------------------------------------------------------------

    def load_tasks(self) -> list[Task]:
        return [Task.model_validate(r) for r in self.tasks.load_all()]

    def save_tasks(self, *tasks: Task) -> None:
        self.tasks.upsert(*(t.model_dump(mode="json") for t in tasks))

    # -- helpers -------------------------------------------------------------------------

    def _dataset(self, uri: str, **kwargs: Any) -> lance.LanceDataset:
        return lance.dataset(uri, storage_options=self.storage_options or None, **kwargs)

    def _names(self, kind: str) -> list[str]:
        """Names of the ``*.lance`` entries of a kind (valid names only: others are not ours)."""
        names = []
        for entry in self.fs.children(self.fs.join(kind)):
            name = entry.removesuffix(_SUFFIX)
            if entry.endswith(_SUFFIX) and _valid(name, kind):
                names.append(name)
        return names

    def _open(self, kind: str, name: str, missing: type[NotFound]) -> lance.LanceDataset:
        path = self.path_of(kind, name)
        try:
            return self._dataset(path)
        except (ValueError, OSError) as exc:
            raise missing(f"{kind[:-1].capitalize()} '{name}' does not exist") from exc

    def _scan(
        self,
        kind: str,
        describe: Callable[[str, lance.LanceDataset], Any],
        limit: int | None = None,
        cursor: str | None = None,
    ) -> tuple[list[Any], str | None]:
        # Names are paged before anything is opened: a page costs its own rows only.
        names, next_cursor = page(sorted(self._names(kind)), lambda n: (n,), limit, cursor)
        found = []
        for name in names:
            try:
                ds = self._dataset(self.path_of(kind, name))
            except (ValueError, OSError):
                continue  # no committed version (a task is writing its first one)
            found.append(describe(name, ds))
        return found, next_cursor

    def _describe_dataset(self, name: str, ds: lance.LanceDataset) -> Dataset:
        versions = ds.versions()
        metadata = {k.decode(): v.decode() for k, v in (ds.schema.metadata or {}).items()}
        return Dataset(
            id=name,
            path=str(self.path_of("datasets", name)),
            schema=simple_schema(ds.schema),
            num_rows=ds.count_rows(),
            size_bytes=_size_bytes(ds),
            version=ds.version,
            created_at=utc(versions[0]["timestamp"]) if versions else None,
            updated_at=utc(versions[-1]["timestamp"]) if versions else None,
            metadata=metadata,
            tags={tag: int(info["version"]) for tag, info in ds.tags.list().items()},
        )

    def _describe_model(self, name: str, ds: lance.LanceDataset) -> Model:
        from lakekit import modelrec  # torch-free, but only needed for models

        path = self.path_of("models", name)
        try:
            info = modelrec.read_model_info(path, storage_options=self.storage_options)
        except Exception as exc:  # a foreign dataset under models/ is listed, not fatal
            info = {"error": f"not a model record: {exc}"}
        known = {
            "metrics",
            "params",
            "history",
            "source",
            "input_spec",
            "architecture",
            "signature",
            "labels",
            "preprocessing",
        }
        return Model(
            id=name,
            path=str(path),
            version=ds.version,
            size_bytes=_size_bytes(ds),
            weights_bytes=int(info.get("weights_bytes", 0)),
            created_at=info.get("created_at"),
            architecture=info.get("architecture"),
            metrics=info.get("metrics") or {},
            params=info.get("params") or {},
            history=info.get("history") or [],
            source=info.get("source") or {},
            input_spec=info.get("input_spec") or {},
            signature=info.get("signature"),
            labels=list(info.get("labels") or []),
            preprocessing=info.get("preprocessing"),
            info={k: v for k, v in info.items() if k not in known | {"created_at", "provenance"}},
            provenance=info.get("provenance") or {},
            tags={tag: int(t["version"]) for tag, t in ds.tags.list().items()},
        )


_SIMPLE_TYPES = {
    "large_string": "string",
    "large_binary": "binary",
    "float": "float32",
    "double": "float64",
    "halffloat": "float16",
    "bool": "bool",
}


def simple_type(t: pa.DataType) -> str:
    if pa.types.is_fixed_size_list(t):
        return f"fixed_size_list<{simple_type(t.value_type)}>[{t.list_size}]"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"list<{simple_type(t.value_type)}>"
    name = str(t)
    return _SIMPLE_TYPES.get(name, name)


def simple_schema(schema: pa.Schema) -> dict[str, str]:
    return {f.name: simple_type(f.type) for f in schema}


def _size_bytes(ds: lance.LanceDataset) -> int:
    """Bytes of the data files the current version reads (old versions not counted)."""
    return sum(f.file_size_bytes or 0 for frag in ds.get_fragments() for f in frag.data_files())


def _valid(name: str, kind: str) -> bool:
    try:
        check_name(name, kind[:-1] + " id")
    except InvalidRequest:
        return False
    return True
