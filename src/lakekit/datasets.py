"""Open the dataset a task received, with the storage options the platform handed over.

A task's ``input_path`` is a Lance URI: a local path, ``file://...`` or ``s3://bucket/...``.
For object storage the platform passes the credentials and endpoint in the environment
variable ``LAKEKIT_STORAGE_OPTIONS``: a JSON object of Lance's storage option names
(``aws_access_key_id``, ``aws_secret_access_key``, ``aws_endpoint``, ``aws_region``,
``allow_http``, ...). Every function here uses them unless given others::

    from lakekit import datasets

    ds = datasets.open_dataset(input_path)          # a lance.LanceDataset, pinned version
    table = datasets.read_table(input_path, columns=["x", "label"], filter="split = 'train'")

    import daft                                     # Daft reads the same lake:
    df = daft.read_lance(input_path, io_config=datasets.daft_io_config())

A model trained on ``ds`` records ``source_of(ds)`` (URI, name, exact version), which is what
``lakekit.models.save_model(source=ds)`` does.

An input submitted as ``datasets/NAME@12`` (or ``@tag``) arrives pinned, as
``URI?version=12``: ``open_dataset`` and ``read_table`` open that version; ``base_uri`` gives
the plain URI for other readers (``daft.read_lance(base_uri(p))`` reads the latest).

Outputs: ``write_dataset(data, output_path)`` writes as the task was submitted
(``mode`` create, overwrite or append; the platform passes it in ``LAKEKIT_WRITE_MODE``).

Importing this module imports neither torch nor Daft.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import lance

from lakeapi.errors import AlreadyExists, DatasetNotFound
from lakeapi.names import split_uri
from lakekit.modelrec import model_name
from lakekit.taskenv import WRITE_MODE_ENV, write_mode

if TYPE_CHECKING:
    import daft.io
    import pyarrow as pa

__all__ = [
    "ENV_VAR",
    "WRITE_MODE_ENV",
    "DatasetNotFound",
    "base_uri",
    "daft_io_config",
    "open_dataset",
    "read_table",
    "source_of",
    "storage_options",
    "write_dataset",
    "write_mode",
]
ENV_VAR = "LAKEKIT_STORAGE_OPTIONS"
_TRUE = ("1", "true", "yes", "on")


def storage_options() -> dict[str, str]:
    """The storage options the platform passed to this task (empty when there are none).

    Raises:
        ValueError: ``LAKEKIT_STORAGE_OPTIONS`` is set but is not a JSON object.
    """
    raw = os.environ.get(ENV_VAR, "").strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{ENV_VAR} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{ENV_VAR} must be a JSON object of storage options")
    # Lance takes strings only; JSON true/false/numbers are what a person would write.
    return {str(k): _option_text(v) for k, v in value.items()}


def _option_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _options(given: dict[str, str] | None) -> dict[str, str]:
    return storage_options() if given is None else given


def open_dataset(
    uri: str | os.PathLike[str],
    version: int | str | None = None,
    storage_options: dict[str, str] | None = None,
) -> lance.LanceDataset:
    """Open the Lance dataset at ``uri`` (at ``version``: a number or a tag; default latest).

    Raises:
        DatasetNotFound: nothing at ``uri`` (or no such version).
        ValueError: something is there but it is not a Lance dataset.
    """
    uri, pinned = split_uri(os.fspath(uri))
    version = pinned if version is None else version
    local = "://" not in uri or uri.startswith("file://")
    path = uri.removeprefix("file://")
    if local and not os.path.exists(path):
        raise DatasetNotFound(f"no dataset at {uri}")
    try:
        return lance.dataset(uri, version=version, storage_options=_options(storage_options))
    except (ValueError, OSError) as exc:
        text = str(exc).lower()
        if version is not None and ("version" in text or "not found" in text):
            raise DatasetNotFound(f"dataset {uri} has no version {version}") from exc
        if not local and "not found" in text:
            raise DatasetNotFound(f"no dataset at {uri}") from exc
        raise ValueError(f"{uri} is not a Lance dataset: {exc}") from exc


def base_uri(uri: str | os.PathLike[str]) -> str:
    """The dataset's URI without the ``?version=N`` a pinned input carries."""
    return split_uri(os.fspath(uri))[0]


def write_dataset(
    data: Any,
    output_path: str | os.PathLike[str],
    mode: str | None = None,
    storage_options: dict[str, str] | None = None,
    **kwargs: Any,
) -> lance.LanceDataset:
    """Write ``data`` (a table, batches or a reader) to the Lance dataset at ``output_path``.

    Args:
        mode: ``create``, ``overwrite`` or ``append`` (default: the task's, else overwrite);
            overwrite and append on a dataset that does not exist yet create it.
        kwargs: passed to ``lance.write_dataset`` (``schema``, ``max_rows_per_file``, ...).

    Raises:
        AlreadyExists: ``mode`` is create and the dataset exists.
    """
    uri = os.fspath(output_path)
    chosen = mode or write_mode()
    options = _options(storage_options)
    exists = _exists(uri, options)
    if chosen == "create" and exists:
        raise AlreadyExists(f"dataset {uri} already exists (mode 'create')")
    lance_mode = chosen if exists else "create"
    return lance.write_dataset(
        data, uri, mode=lance_mode, storage_options=options or None, **kwargs
    )


def _exists(uri: str, options: dict[str, str]) -> bool:
    try:
        lance.dataset(uri, storage_options=options or None)
    except (ValueError, OSError):
        return False
    return True


def read_table(
    uri: str | os.PathLike[str] | lance.LanceDataset,
    columns: list[str] | None = None,
    filter: str | None = None,
    limit: int | None = None,
    storage_options: dict[str, str] | None = None,
) -> pa.Table:
    """Read ``columns`` of the rows matching ``filter`` (SQL, pushed down to Lance).

    Args:
        uri: the dataset's URI, or a dataset ``open_dataset`` returned (to read the same
            version again).
        columns: the columns to read (default: all).
        filter: e.g. ``"split = 'train' AND age > 3"``.
        limit: at most this many rows.
        storage_options: default: those of the environment.

    Raises:
        DatasetNotFound: nothing at ``uri``.
        ValueError: not a Lance dataset, an unknown column, or a bad filter.
    """
    ds = uri if isinstance(uri, lance.LanceDataset) else open_dataset(uri, None, storage_options)
    missing = sorted(set(columns or []) - set(ds.schema.names))
    if missing:
        raise ValueError(f"dataset {ds.uri} has no columns {missing}; it has {ds.schema.names}")
    try:
        return ds.to_table(columns=columns, filter=filter, limit=limit)
    except (ValueError, OSError) as exc:
        raise ValueError(f"cannot read {ds.uri} with filter {filter!r}: {exc}") from exc


def source_of(dataset: lance.LanceDataset | dict[str, Any]) -> dict[str, Any]:
    """What a model record says about its training data: ``{"path", "name", "version"}``."""
    if isinstance(dataset, dict):
        return dict(dataset)
    uri = base_uri(dataset.uri)
    return {"path": uri, "name": model_name(uri), "version": dataset.version}


# Lance (object_store) option names, aliases included, -> daft S3Config argument.
_S3_KEYS = {
    "aws_access_key_id": "key_id",
    "access_key_id": "key_id",
    "aws_secret_access_key": "access_key",
    "secret_access_key": "access_key",
    "aws_session_token": "session_token",
    "session_token": "session_token",
    "aws_region": "region_name",
    "region": "region_name",
    "aws_endpoint": "endpoint_url",
    "endpoint": "endpoint_url",
    "aws_endpoint_url": "endpoint_url",
    "endpoint_url": "endpoint_url",
}
_S3_FLAGS = {
    "aws_virtual_hosted_style_request": "force_virtual_addressing",
    "virtual_hosted_style_request": "force_virtual_addressing",
    "aws_skip_signature": "anonymous",
    "skip_signature": "anonymous",
}


def daft_s3_kwargs(options: dict[str, str]) -> dict[str, Any]:
    """The ``daft.io.S3Config`` arguments for Lance storage options (unknown ones ignored)."""
    kwargs: dict[str, Any] = {}
    for key, value in options.items():
        key = key.lower()
        if key in _S3_KEYS:
            kwargs[_S3_KEYS[key]] = value
        elif key in _S3_FLAGS:
            kwargs[_S3_FLAGS[key]] = value.lower() in _TRUE
    endpoint = kwargs.get("endpoint_url", "")
    # Lance needs allow_http for an http:// endpoint; Daft needs to be told not to use TLS.
    if endpoint.startswith("http://"):
        kwargs["use_ssl"] = False
    return kwargs


def daft_io_config(storage_options: dict[str, str] | None = None) -> daft.io.IOConfig:
    """A Daft ``IOConfig`` that reaches the lake as these storage options do (default: env)."""
    from daft.io import IOConfig, S3Config

    return IOConfig(s3=S3Config(**daft_s3_kwargs(_options(storage_options))))
