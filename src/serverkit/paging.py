"""The list endpoints' paging parameters, for both services (the rule: ``lakeapi.pages``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Response

from lakeapi.pages import DEFAULT_LIMIT, MAX_LIMIT, NEXT_CURSOR

Limit = Annotated[
    int | None,
    Query(ge=1, le=MAX_LIMIT, description=f"Items per page (default {DEFAULT_LIMIT})."),
]
Cursor = Annotated[
    str | None,
    Query(max_length=1024, description=f"Where to go on: a previous answer's {NEXT_CURSOR}."),
]


def set_next_cursor(response: Response, cursor: str | None) -> None:
    """Say where the next page starts (no header: this was the last page)."""
    if cursor is not None:
        response.headers[NEXT_CURSOR] = cursor
