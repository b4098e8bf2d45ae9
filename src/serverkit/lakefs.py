"""The lake's file system, addressed by URI: a local path, ``file:///...`` or ``s3://bucket/p``.

Lance opens datasets by URI with its storage options; what Lance does not do (list a folder,
delete a dataset's tree, check that something exists) goes through ``pyarrow.fs`` built from
the same URI and the same options, so no caller knows whether the lake is a disk or a bucket.

Local lakes are kept as plain absolute paths (``file://`` is folded into one): user scripts and
Lance take those as they are, and the records stay readable by earlier versions.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlparse

import pyarrow.fs as pafs

# Lance's storage option names, and the environment variables that stand in when one is unset.
ENV_FALLBACKS: dict[str, tuple[str, ...]] = {
    "aws_access_key_id": ("AWS_ACCESS_KEY_ID",),
    "aws_secret_access_key": ("AWS_SECRET_ACCESS_KEY",),
    "aws_session_token": ("AWS_SESSION_TOKEN",),
    "aws_endpoint": ("AWS_ENDPOINT_URL", "AWS_ENDPOINT"),
    "aws_region": ("AWS_REGION", "AWS_DEFAULT_REGION"),
    "allow_http": ("AWS_ALLOW_HTTP",),
}

STORAGE_OPTIONS_ENV = "LAKEKIT_STORAGE_OPTIONS"  # how a task's process receives them


def normalize_uri(uri: str) -> str:
    """A local path or ``file://`` URI as an absolute path; other URIs without a trailing /."""
    uri = str(uri).strip()
    if not uri:
        raise ValueError("the lake URI is empty")
    if "://" not in uri:
        return os.path.abspath(os.path.expanduser(uri))
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise ValueError(f"file URI {uri!r} names a host; use file:///absolute/path")
        return os.path.abspath(unquote(parsed.path))
    if not parsed.netloc:
        raise ValueError(f"lake URI {uri!r} names no bucket")
    return uri.rstrip("/")


def is_local(uri: str) -> bool:
    return "://" not in uri


def resolve_storage_options(
    explicit: Mapping[str, Any] | str | None, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The storage options: ``explicit`` (a mapping or a JSON object) first, then AWS_* vars."""
    if isinstance(explicit, str):
        explicit = json.loads(explicit) if explicit.strip() else {}
        if not isinstance(explicit, dict):
            raise ValueError("storage options must be a JSON object")
    options = {str(k): _option_str(v) for k, v in (explicit or {}).items()}
    env = os.environ if environ is None else environ
    for name, variables in ENV_FALLBACKS.items():
        if name in options:
            continue
        for var in variables:
            if env.get(var):
                options[name] = env[var]
                break
    return options


def _option_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class LakeFS:
    """Join, check, list and delete under one lake root, local or object storage.

    Args:
        root: the lake's URI.
        storage_options: Lance's option names; the S3 ones also configure ``pyarrow.fs``.
    """

    def __init__(self, root: str, storage_options: Mapping[str, str] | None = None) -> None:
        self.root = normalize_uri(root)
        self.storage_options = dict(storage_options or {})
        self.is_local = is_local(self.root)
        self._fs: pafs.FileSystem | None = None
        self._base = ""

    def join(self, *parts: str) -> str:
        """The URI of ``parts`` under the root; parts are names, never ``..`` or absolute."""
        for part in parts:
            segments = part.split("/")
            if part.startswith("/") or any(s in ("", ".", "..") for s in segments):
                raise ValueError(f"bad lake path segment {part!r}")
        return "/".join([self.root, *parts])

    def contains(self, uri: str) -> bool:
        """Whether ``uri`` (normalised) lies under the root."""
        try:
            uri = normalize_uri(uri)
        except ValueError:
            return False
        return uri == self.root or uri.startswith(self.root.rstrip("/") + "/")

    def exists(self, uri: str) -> bool:
        info = self.fs.get_file_info(self._path(uri))
        return bool(info.type != pafs.FileType.NotFound)

    def children(self, uri: str) -> list[str]:
        """Names directly under ``uri``, sorted; none when it does not exist."""
        selector = pafs.FileSelector(self._path(uri), allow_not_found=True, recursive=False)
        return sorted(info.base_name for info in self.fs.get_file_info(selector))

    def delete_tree(self, uri: str) -> None:
        """Remove ``uri`` and everything under it (a dataset's tree); nothing there is fine."""
        path = self._path(uri)
        info = self.fs.get_file_info(path)
        if info.type == pafs.FileType.Directory:
            self.fs.delete_dir(path)
        elif info.type != pafs.FileType.NotFound:
            self.fs.delete_file(path)

    def makedirs(self, uri: str) -> None:
        """Create a folder where folders exist (local disks); object storage has none."""
        if self.is_local:
            self.fs.create_dir(self._path(uri), recursive=True)

    @property
    def fs(self) -> pafs.FileSystem:
        if self._fs is None:
            self._fs, self._base = self._filesystem()
        return self._fs

    def _filesystem(self) -> tuple[pafs.FileSystem, str]:
        if self.is_local:
            return pafs.LocalFileSystem(), self.root
        scheme = urlparse(self.root).scheme
        if scheme in ("s3", "s3a"):
            return self._s3(), self.root.split("://", 1)[1]
        return pafs.FileSystem.from_uri(self.root)

    def _s3(self) -> pafs.S3FileSystem:
        opts = self.storage_options
        kwargs: dict[str, Any] = {}
        if opts.get("aws_access_key_id"):
            kwargs["access_key"] = opts["aws_access_key_id"]
            kwargs["secret_key"] = opts.get("aws_secret_access_key", "")
        if opts.get("aws_session_token"):
            kwargs["session_token"] = opts["aws_session_token"]
        if opts.get("aws_region"):
            kwargs["region"] = opts["aws_region"]
        endpoint = opts.get("aws_endpoint")
        if endpoint:
            parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
            kwargs["endpoint_override"] = parsed.netloc
            kwargs["scheme"] = parsed.scheme
        if opts.get("allow_http", "").lower() == "true":
            kwargs["scheme"] = "http"
        return pafs.S3FileSystem(**kwargs)

    def _path(self, uri: str) -> str:
        """The ``pyarrow.fs`` path of a URI under the root."""
        uri = normalize_uri(uri)
        if not self.contains(uri):
            raise ValueError(f"{uri!r} is not under the lake {self.root!r}")
        _ = self.fs  # built on first use; that also sets the base
        return self._base + uri[len(self.root) :]
