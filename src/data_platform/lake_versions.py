"""Versions, tags and restore of the lake's datasets and models: a part of the store.

A mixin of :class:`data_platform.store.Lake`, kept in a file of its own; like the rest of the
store, the only code that touches Lance.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import lance

from lakeapi.errors import (
    AlreadyExists,
    DatasetNotFound,
    ModelNotFound,
    NotFound,
    TagNotFound,
    VersionNotFound,
)
from lakeapi.names import Ref, check_tag
from lakeapi.schemas import ModelVersion, Restored, Tag


class LakeVersions:
    """What :class:`Lake` adds on versions; it provides the methods declared here."""

    storage_options: dict[str, str]

    def path_of(self, kind: str, name: str) -> str:
        raise NotImplementedError

    def _dataset(self, uri: str, **kwargs: Any) -> lance.LanceDataset:
        raise NotImplementedError

    def _open(self, kind: str, name: str, missing: type[NotFound]) -> lance.LanceDataset:
        raise NotImplementedError

    def resolve(self, ref: Ref) -> int:
        """The exact version a reference names (its latest when it names none).

        Raises:
            DatasetNotFound, ModelNotFound, VersionNotFound, TagNotFound.
        """
        ds = self._open(ref.kind, ref.name, _MISSING[ref.kind])
        return self._version_at(ds, ref)

    def model_versions(self, name: str) -> list[ModelVersion]:
        """Every version of a model record, with its metrics and where it came from."""
        from lakekit import modelrec

        path = self.path_of("models", name)
        ds = self._open("models", name, ModelNotFound)
        tags = tags_by_version(ds)
        found = []
        for v in ds.versions():
            try:
                info = modelrec.read_model_info(path, v["version"], self.storage_options)
            except Exception:  # a version written before it was a model record
                info = {}
            found.append(
                ModelVersion(
                    version=v["version"],
                    timestamp=utc(v.get("timestamp")),
                    num_rows=int_or_none(v.get("metadata", {}).get("total_rows")),
                    tags=tags.get(v["version"], []),
                    created_at=info.get("created_at"),
                    metrics=info.get("metrics") or {},
                    params=info.get("params") or {},
                    source=info.get("source") or {},
                    provenance=info.get("provenance") or {},
                )
            )
        return found

    # -- tags and restore ----------------------------------------------------------------

    def tags(self, kind: str, name: str) -> list[Tag]:
        """The tags of a dataset or model, by name."""
        ds = self._open(kind, name, _MISSING.get(kind, NotFound))
        return sorted((_tag(t, info) for t, info in ds.tags.list().items()), key=_by_name)

    def tag(self, kind: str, name: str, tag: str, at: int | str, move: bool = False) -> Tag:
        """Put ``tag`` on the version ``at`` names (a number, or another tag).

        Args:
            move: move the tag when it exists (else that is 409 ALREADY_EXISTS).

        Raises:
            DatasetNotFound, ModelNotFound, VersionNotFound, TagNotFound, AlreadyExists.
        """
        check_tag(tag)
        ds = self._open(kind, name, _MISSING.get(kind, NotFound))
        version = self._version_at(ds, _ref_at(kind, name, at))
        existing = ds.tags.list()
        if tag in existing and not move:
            raise AlreadyExists(
                f"{kind[:-1].capitalize()} '{name}' already has tag '{tag}' (on version "
                f"{existing[tag]['version']}): move it with PUT"
            )
        if tag in existing:
            ds.tags.update(tag, version)
        else:
            ds.tags.create(tag, version)
        return _tag(tag, ds.tags.list()[tag])

    def untag(self, kind: str, name: str, tag: str) -> None:
        """Remove a tag (the version stays). Raises TagNotFound."""
        ds = self._open(kind, name, _MISSING.get(kind, NotFound))
        if tag not in ds.tags.list():
            raise TagNotFound(f"{kind[:-1].capitalize()} '{name}' has no tag '{tag}'")
        ds.tags.delete(tag)

    def restore(self, kind: str, name: str, at: int | str) -> Restored:
        """Make the content of version ``at`` the latest again, as a new version (nothing is
        rewritten: the new version reads the old one's data files).

        Raises:
            DatasetNotFound, ModelNotFound, VersionNotFound, TagNotFound.
        """
        ds = self._open(kind, name, _MISSING.get(kind, NotFound))
        version = self._version_at(ds, _ref_at(kind, name, at))
        ds.checkout_version(version).restore()
        latest = int(self._dataset(self.path_of(kind, name)).version)
        return Restored(version=latest, restored_from=version)

    def _version_at(self, ds: lance.LanceDataset, ref: Ref) -> int:
        what = f"{ref.kind[:-1].capitalize()} '{ref.name}'"
        if ref.tag is not None:
            tags = ds.tags.list()
            if ref.tag not in tags:
                raise TagNotFound(f"{what} has no tag '{ref.tag}'")
            return int(tags[ref.tag]["version"])
        if ref.version is not None:
            if ref.version not in {int(v["version"]) for v in ds.versions()}:
                raise VersionNotFound(f"{what} has no version {ref.version}")
            return ref.version
        return int(ds.version)


_MISSING: dict[str, type[NotFound]] = {"datasets": DatasetNotFound, "models": ModelNotFound}


def _ref_at(kind: str, name: str, at: int | str) -> Ref:
    if isinstance(at, int) or at.isdigit():
        return Ref(kind, name, version=int(at))
    return Ref(kind, name, tag=check_tag(at))


def _tag(name: str, info: Any) -> Tag:  # a lance tag (a TypedDict)
    return Tag(
        name=name,
        version=int(info["version"]),
        created_at=utc(info.get("created_at")),
        updated_at=utc(info.get("updated_at")),
    )


def _by_name(tag: Tag) -> str:
    return tag.name


def tags_by_version(ds: lance.LanceDataset) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for tag, info in sorted(ds.tags.list().items()):
        found.setdefault(int(info["version"]), []).append(tag)
    return found


def utc(value: Any) -> datetime | None:
    """A Lance version's timestamp in UTC: Lance hands them over as naive *local* times
    (``datetime.fromtimestamp``), which ``astimezone`` reads as such."""
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return None


def int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
