"""Versions, tags and restore: what datasets and models share in the SDK.

A version is named by its number or by a tag; ``NAME@12`` and ``NAME@baseline`` are what
training inputs and services take (see :func:`ref`).
"""

from __future__ import annotations

import builtins
from typing import Any

from aip.records import Restored, Tag
from aip.transport import API, Transport, join
from lakeapi.names import check_tag


def ref(name: str, at: int | str | None = None) -> str:
    """``NAME``, ``NAME@12`` or ``NAME@tag``: a name with an exact version or a tag."""
    return name if at is None else f"{name}@{at}"


class VersionedAPI:
    """The routes under ``/api/v1/{kind}/{name}`` that name versions and tags."""

    kind = ""  # "datasets" or "models"

    def __init__(self, http: Transport) -> None:
        self._http = http

    def _path(self, name: str, *rest: str) -> str:
        return join(API, self.kind, name, *rest)

    def tags(self, name: str) -> builtins.list[Tag]:
        """The tags (for a model: its aliases), by name, with their versions.

        Raises:
            DatasetNotFound, ModelNotFound.
        """
        return [Tag.from_raw(t) for t in self._http.json("GET", self._path(name, "tags"))]

    def tag(self, name: str, tag: str, version: int | str, move: bool = True) -> Tag:
        """Put ``tag`` on ``version`` (a number or another tag).

        Args:
            move: move the tag if it exists (else that is AlreadyExists). Moving a model's
                alias rolls the services that follow it before this returns.

        Raises:
            VersionNotFound, TagNotFound, AlreadyExists, DatasetNotFound, ModelNotFound.
        """
        check_tag(tag)
        body: dict[str, Any] = {"version": version}
        if move:
            raw = self._http.json("PUT", self._path(name, "tags", tag), json=body)
        else:
            raw = self._http.json("POST", self._path(name, "tags"), json={"tag": tag, **body})
        return Tag.from_raw(raw)

    def untag(self, name: str, tag: str) -> None:
        """Remove a tag; the version stays.

        Raises:
            TagNotFound.
        """
        self._http.request("DELETE", self._path(name, "tags", check_tag(tag)))

    def restore(self, name: str, version: int | str) -> Restored:
        """Make ``version``'s content the latest again, as a new version (nothing rewritten).

        Raises:
            VersionNotFound, TagNotFound.
        """
        raw = self._http.json("POST", self._path(name, "restore"), json={"version": version})
        return Restored.from_raw(raw)

    def delete(self, name: str, force: bool = False) -> None:
        """Delete it and all its versions.

        Args:
            force: even while in use (a dataset a model was trained on, a model a service
                runs), which is InUse otherwise.

        Raises:
            DatasetNotFound, ModelNotFound, InUse.
        """
        params = {"force": "true"} if force else None
        self._http.request("DELETE", join(API, self.kind, name), params=params)
