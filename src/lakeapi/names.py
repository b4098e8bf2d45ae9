"""Names and ids: one rule for every resource, checked before anything touches the disk."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from lakeapi.errors import InvalidRequest

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
NAME_RULE = (
    "1-64 letters, digits, '_' or '-', starting with a letter or digit"  # the pattern in words
)
_NAME_RE = re.compile(NAME_PATTERN)


def check_name(value: str, what: str = "name") -> str:
    """Return ``value`` if it is a short name of letters, digits, ``_`` and ``-``."""
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
        raise InvalidRequest(f"invalid {what} {value!r}: use {NAME_RULE}")
    return value


def new_id(prefix: str) -> str:
    """A fresh id such as ``task-3f9c2a1b7d4e``."""
    return f"{prefix}-{secrets.token_hex(6)}"


# -- refs: a name with an exact version or a tag ------------------------------------------------

REF_KINDS = ("datasets", "models")
VERSION_QUERY = "?version="  # how a pinned URI names its version (see split_uri)


@dataclass(frozen=True)
class Ref:
    """``datasets/NAME``, ``models/NAME@3`` or ``models/NAME@prod``: a kind, a name and at
    most one of an exact version and a tag (neither: the latest version)."""

    kind: str
    name: str
    version: int | None = None
    tag: str | None = None

    @property
    def at(self) -> int | str | None:
        return self.version if self.version is not None else self.tag

    def __str__(self) -> str:
        at = self.at
        return f"{self.kind}/{self.name}" + ("" if at is None else f"@{at}")


def check_tag(value: str) -> str:
    """A tag is a name that is not all digits (``@12`` always means version 12)."""
    check_name(value, "tag")
    if value.isdigit():
        raise InvalidRequest(f"invalid tag {value!r}: a tag must not be all digits")
    return value


def split_at(value: str, what: str = "name") -> tuple[str, int | str | None]:
    """``NAME``, ``NAME@12`` or ``NAME@tag`` as the checked name and its version or tag."""
    name, sep, at = value.partition("@")
    check_name(name, what)
    if not sep:
        return name, None
    if at.isdigit():
        version = int(at)
        if version < 1:
            raise InvalidRequest(f"invalid version in {value!r}: versions start at 1")
        return name, version
    return name, check_tag(at)


def parse_ref(value: str, kind: str | None = None) -> Ref | None:
    """Parse ``KIND/NAME[@VERSION|@TAG]``; None when ``value`` names no lake kind.

    With ``kind``, a bare ``NAME[@...]`` is taken as that kind.

    Raises:
        InvalidRequest: a lake kind with a bad name, version or tag.
    """
    text = value.strip().strip("/")
    head, sep, rest = text.partition("/")
    if sep and head in REF_KINDS:
        kind, text = head, rest
    elif kind is None or sep:
        return None
    name, at = split_at(text, kind[:-1] + " id")
    if isinstance(at, int):
        return Ref(kind, name, version=at)
    return Ref(kind, name, tag=at)


def pinned_uri(uri: str, version: int) -> str:
    """The URI a task receives for an exact version (``lakekit`` opens that version)."""
    return f"{uri}{VERSION_QUERY}{version}"


def split_uri(uri: str) -> tuple[str, int | None]:
    """A pinned URI as the dataset's own URI and its version (None: not pinned)."""
    base, sep, version = uri.rpartition(VERSION_QUERY)
    if sep and version.isdigit():
        return base, int(version)
    return uri, None
