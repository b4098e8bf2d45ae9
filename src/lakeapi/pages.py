"""Pagination of list endpoints: ``?limit=N&cursor=C``, the next cursor in a header.

A list answers a JSON array, as the design shows (so a client that ignores paging still reads
the first page); when more items follow, the header ``X-Next-Cursor`` carries an opaque
cursor to pass back as ``?cursor=``. Cursors name the last item returned (its sort key), so a
page never repeats or skips an item that existed when the first page was read, however many
were added or removed meanwhile.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import TypeVar

from lakeapi.errors import InvalidRequest

NEXT_CURSOR = "X-Next-Cursor"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

T = TypeVar("T")
Key = tuple[str, ...]


def encode_cursor(key: Key) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Key:
    """The sort key a cursor names; a cursor we did not make is 400."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        key = None
    if not isinstance(key, list) or not key or not all(isinstance(p, str) for p in key):
        raise InvalidRequest(f"invalid cursor {cursor[:80]!r}: pass back an X-Next-Cursor value")
    return tuple(key)


def page(
    items: Sequence[T],
    key: Callable[[T], Key],
    limit: int | None,
    cursor: str | None,
    *,
    newest_first: bool = False,
) -> tuple[list[T], str | None]:
    """One page of ``items`` (already sorted by ``key``, descending if ``newest_first``) after
    ``cursor``, and the cursor of the next page (None on the last)."""
    limit = DEFAULT_LIMIT if limit is None else limit
    rest = list(items)
    if cursor is not None:
        after = decode_cursor(cursor)
        rest = [i for i in rest if (key(i) < after if newest_first else key(i) > after)]
    chunk = rest[:limit]
    more = len(rest) > limit
    return chunk, (encode_cursor(key(chunk[-1])) if more and chunk else None)
