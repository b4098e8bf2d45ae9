"""The HTTP boundary shared by every server: errors become the envelope, in one place; the
guard every request passes first (trusted hosts, API key, body size, JSON content types)."""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from lakeapi.errors import (
    InvalidRequest,
    PayloadTooLarge,
    PlatformError,
    Unauthorized,
    UnsupportedMediaType,
)
from lakeapi.names import NAME_PATTERN, check_name

log = logging.getLogger(__name__)

_CODE_BY_HTTP_STATUS = {
    400: "INVALID_REQUEST",
    401: "UNAUTHORIZED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
}
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
_WILDCARD_BINDS = ("", "0.0.0.0", "::")
_BODY_METHODS = (b"POST", b"PUT", b"PATCH", b"DELETE")


def trusted_hosts(bound: str, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The Host names a server answers: loopback's, the address it binds, and ``extra``
    (``*``: any). A wildcard bind adds nothing: name the host in ``extra``."""
    hosts = [*LOOPBACK_HOSTS, *extra]
    if bound not in _WILDCARD_BINDS:
        hosts.append(bound)
    return tuple(dict.fromkeys(h.lower().strip("[]") for h in hosts))


def _host_name(host: bytes) -> str:
    """The name in a Host header, without its port (``[::1]:80`` -> ``::1``)."""
    text = host.decode("latin-1").strip().lower()
    if text.startswith("["):
        return text[1:].split("]", 1)[0]
    return text.rsplit(":", 1)[0] if text.count(":") == 1 else text


def app_path(scope: Any) -> str:
    """The request's path within the app: without the prefix it is mounted under (a Ray
    Serve application's route, ``/<service id>``)."""
    path: str = scope["path"]
    root = scope.get("root_path") or ""
    if root and path.startswith(root):
        return path[len(root) :] or "/"
    return path


def _in_process(scope: Any) -> bool:
    """Starlette's TestClient calls the app with no socket (its client is ``testclient``, an
    address no socket has): no browser is involved, whatever Host it names."""
    client = scope.get("client")
    return bool(client) and client[0] == "testclient"


def _is_json(content_type: bytes) -> bool:
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or media.endswith(b"+json")


def error_response(err: PlatformError) -> JSONResponse:
    return JSONResponse(err.envelope(), status_code=err.status)


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        loc = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        parts.append(f"{loc or 'body'}: {_describe_error(error, loc or 'name')}")
    return "; ".join(parts) or "invalid request"


def _describe_error(error: dict[str, Any], what: str) -> str:
    """Pydantic's message, except that a name breaking the naming rule gets the rule in words
    (the one ``check_name`` states), not the regular expression."""
    ctx = error.get("ctx") or {}
    if error.get("type") == "string_pattern_mismatch" and ctx.get("pattern") == NAME_PATTERN:
        try:
            check_name(str(error.get("input")), what)
        except InvalidRequest as err:
            return err.message
    return str(error.get("msg", "invalid"))


def install_error_handlers(app: FastAPI) -> None:
    """Map every failure to ``{"error": {"code", "message"}}``; never a traceback."""

    @app.exception_handler(PlatformError)
    async def _platform(_: Request, exc: PlatformError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(PlatformError(_describe_validation(exc), code="INVALID_REQUEST"))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _CODE_BY_HTTP_STATUS.get(exc.status_code, "INVALID_REQUEST")
        if exc.status_code == 404:
            message = f"no route {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"method {request.method} not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        return JSONResponse(
            {"error": {"code": code, "message": message}},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return error_response(
            PlatformError(f"internal error ({type(exc).__name__})", code="INTERNAL_ERROR")
        )


class Guard:
    """ASGI middleware: trusted hosts, an optional bearer API key, a cap on request bodies,
    and JSON-only bodies.

    A Host outside ``allowed_hosts`` is 400 (a page whose name was rebound to 127.0.0.1 must
    not reach us); a body with a content type other than JSON is 415 (a cross-site form or
    ``text/plain`` post, which a browser sends without asking, cannot reach a route), except
    ``application/octet-stream`` on paths ending with one of ``binary_suffixes``. A body with
    no content type is 415 too (``fetch`` of an untyped ``Blob`` sends one cross-site without
    a preflight), except on ``binary_suffixes`` paths: OIP clients (tritonclient) send their
    requests untyped, and those routes read the framing from their own headers.

    Paths ``oip_paths`` matches answer the Open Inference Protocol's error shape
    ``{"error": "..."}`` rather than the envelope: its clients read only that.

    Pure ASGI rather than ``BaseHTTPMiddleware`` so a guarded request costs microseconds.
    """

    def __init__(
        self,
        app: Any,
        *,
        api_key: str | None,
        max_body_bytes: int,
        open_paths: tuple[str, ...] = ("/health",),
        open_prefixes: tuple[str, ...] = (),
        allowed_hosts: Iterable[str] | None = None,
        binary_suffixes: tuple[str, ...] = (),
        oip_paths: re.Pattern[str] | None = None,
    ) -> None:
        self.app = app
        self.api_key = api_key
        self.max_body_bytes = max_body_bytes
        self.open_paths = open_paths
        self.open_prefixes = open_prefixes
        hosts = None if allowed_hosts is None else frozenset(allowed_hosts)
        self.allowed_hosts = None if hosts is None or "*" in hosts else hosts
        self.binary_suffixes = binary_suffixes
        self.oip_paths = oip_paths

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        path = app_path(scope)  # the paths this guard names are the app's own
        refusal = self._refusal(scope, headers, path)
        if refusal is not None:
            await send_error(send, refusal, self._oip(path))
            return

        received = 0
        answered = False

        async def limited_receive() -> Any:
            # A body without Content-Length is counted as it arrives. Past the limit we answer
            # 413 ourselves and tell the app the client left, so it stops reading.
            nonlocal received, answered
            if answered:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    answered = True
                    await send_error(send, _too_large(self.max_body_bytes), self._oip(path))
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Any) -> None:
            if not answered:
                await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not answered:
                raise

    def _oip(self, path: str) -> bool:
        return self.oip_paths is not None and self.oip_paths.match(path) is not None

    def _refusal(self, scope: Any, headers: dict[bytes, bytes], path: str) -> PlatformError | None:
        """Why the request is refused before the app sees it; None when it may go on."""
        if self.allowed_hosts is not None and not _in_process(scope):
            host = _host_name(headers.get(b"host", b""))
            if host not in self.allowed_hosts:
                return InvalidRequest(f"untrusted Host header: {host[:100]!r}")
        is_open = path in self.open_paths or path.startswith(self.open_prefixes or ("\0",))
        if self.api_key and not is_open:
            given = headers.get(b"authorization", b"").decode("latin-1")
            if not hmac.compare_digest(given, f"Bearer {self.api_key}"):
                return Unauthorized("missing or wrong API key")
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            return _too_large(self.max_body_bytes)
        if scope["method"].encode() not in _BODY_METHODS:
            return None
        content_type = headers.get(b"content-type")
        if content_type is None:
            has_body = (length is not None and length != b"0") or b"transfer-encoding" in headers
            if has_body and not path.endswith(self.binary_suffixes or ("\0",)):
                return UnsupportedMediaType(
                    "a body with no content type: send JSON (Content-Type: application/json)"
                )
            return None
        if _is_json(content_type) or self._binary_ok(path, content_type):
            return None
        media = content_type.decode("latin-1")[:100]
        return UnsupportedMediaType(f"content type {media!r}: send JSON")

    def _binary_ok(self, path: str, content_type: bytes) -> bool:
        media = content_type.split(b";", 1)[0].strip().lower()
        return media == b"application/octet-stream" and path.endswith(self.binary_suffixes)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"request body larger than {limit} bytes")


async def send_error(send: Any, err: PlatformError, oip: bool = False) -> None:
    """Answer with the error envelope from pure ASGI code (no Starlette response); with
    ``oip``, in the Open Inference Protocol's shape ``{"error": "..."}``."""
    body = json.dumps({"error": err.message} if oip else err.envelope()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": err.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Any) -> bytes | None:
    """A pure-ASGI handler's whole request body, or None if the client disconnected first
    (or ``Guard`` answered 413 and said so)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def quiet_request_logs(log_requests: bool) -> None:
    """One line per request (ours through uvicorn, httpx's per upstream call) buries what
    matters: off unless asked for; warnings and errors always show."""
    logging.getLogger("httpx").setLevel(logging.INFO if log_requests else logging.WARNING)


SHUTDOWN_GRACE_SECONDS = 3.0


def serve(
    app: Any,
    host: str,
    port: int,
    log_level: str = "warning",
    access_log: bool = False,
    grace: float = SHUTDOWN_GRACE_SECONDS,
) -> None:
    """Run an app with uvicorn until SIGINT/SIGTERM (both stop it gracefully: requests still
    open after ``grace`` seconds, such as log streams that never end, are cancelled)."""
    import uvicorn

    if access_log:
        log_level = "info"  # uvicorn writes its access lines at info
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=access_log,
        # No proxy in front by default: X-Forwarded-* from a local process would otherwise
        # rewrite the client's address, and the middleware costs every request.
        proxy_headers=False,
        timeout_graceful_shutdown=grace,  # type: ignore[arg-type]  # uvicorn takes a float
    )
