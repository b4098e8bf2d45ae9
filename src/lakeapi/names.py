"""Names and ids: one rule for every resource, checked before anything touches the disk."""

from __future__ import annotations

import re
import secrets

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
