"""The SDK's one connection to the platform: requests, JSON answers, streams.

``Client``, the resource APIs and the handles all go through a :class:`Transport`; an error
answer raises the server's ``PlatformError`` here, and no answer raises
:class:`~aip.errors.PlatformUnreachable`, so no caller looks at HTTP status codes.
"""

from __future__ import annotations

from typing import Any

import httpx

from aip.errors import PlatformError, PlatformUnreachable, error_from_response
from lakeapi.pages import NEXT_CURSOR

API = "/api/v1"

DEFAULT = object()  # "the transport's timeout", as opposed to None (no timeout)


def join(*parts: str) -> str:
    """A resource path from its parts: ``join(API, "models", "m1")``."""
    return "/".join(parts)


class Transport:
    """HTTP to one platform, with its credentials and timeout.

    Args:
        base_url: the platform's URL (no trailing slash).
        api_key: sent as ``Authorization: Bearer <key>`` when set.
        timeout: seconds for one request (connecting is capped at 10 s).
        transport: an httpx transport (tests: ``httpx.MockTransport``).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        timeout: float,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=base_url, headers=headers, timeout=limits(timeout), transport=transport
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        timeout: Any = DEFAULT,
    ) -> httpx.Response:
        """One request; returns the answer of a success.

        Args:
            timeout: seconds for this call (None: no limit); default the transport's.

        Raises:
            PlatformError: the server answered with an error (its own class and code).
            PlatformUnreachable: no answer.
        """
        limit = httpx.USE_CLIENT_DEFAULT if timeout is DEFAULT else limits(timeout)
        try:
            response = self._http.request(method, path, json=json, params=params, timeout=limit)
        except httpx.HTTPError as exc:
            raise self.unreachable(exc) from exc
        if response.status_code >= 400:
            raise _error(response)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """The decoded JSON of :meth:`request`'s answer."""
        return self.request(method, path, **kwargs).json()

    def every(self, path: str, params: dict[str, Any] | None = None) -> list[Any]:
        """Every item of a list endpoint: its pages, followed by their ``X-Next-Cursor``."""
        query = dict(params or {})
        items: list[Any] = []
        while True:
            response = self.request("GET", path, params=query)
            items += response.json()
            cursor = response.headers.get(NEXT_CURSOR)
            if not cursor:
                return items
            query["cursor"] = cursor

    def stream(self, method: str, path: str, params: dict[str, Any]) -> httpx.Response:
        """Open a streamed answer now, without a read timeout; errors raise here.

        Raises:
            PlatformError, PlatformUnreachable: as :meth:`request`.
        """
        request = self._http.build_request(method, path, params=params, timeout=limits(None))
        try:
            response = self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise self.unreachable(exc) from exc
        if response.status_code >= 400:
            try:
                response.read()
            finally:
                response.close()
            raise _error(response)
        return response

    def unreachable(self, exc: Exception) -> PlatformUnreachable:
        """The error for ``exc``, an httpx error or a broken read of a stream."""
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            why = "cannot connect (is it running? `aip up` starts it)"
        elif isinstance(exc, httpx.TimeoutException):
            why = f"no answer within the timeout ({type(exc).__name__})"
        else:
            why = f"{type(exc).__name__}: {exc}"
        return PlatformUnreachable(
            f"the AI Platform at {self.base_url} is unreachable: {why}", url=self.base_url
        )


def limits(seconds: float | None) -> httpx.Timeout:
    # A refused or unroutable address should fail fast even when reads may take long.
    return httpx.Timeout(seconds, connect=10.0 if seconds is None else min(seconds, 10.0))


def _error(response: httpx.Response) -> PlatformError:
    try:
        body = response.json()
    except ValueError:
        body = response.text
    err = error_from_response(response.status_code, body)
    return err
