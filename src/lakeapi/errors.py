"""One error type with a code; one table from code to HTTP status; one envelope.

Both services raise these, the HTTP layer serialises them once, and the SDK rebuilds them from
the body, so callers everywhere check ``err.code``.
"""

from __future__ import annotations

from typing import Any

STATUS_BY_CODE: dict[str, int] = {
    "INVALID_REQUEST": 400,
    "UNAUTHORIZED": 401,
    "NOT_FOUND": 404,
    "VERSION_NOT_FOUND": 404,
    "TAG_NOT_FOUND": 404,
    "DATASET_NOT_FOUND": 404,
    "MODEL_NOT_FOUND": 404,
    "TASK_NOT_FOUND": 404,
    "SERVICE_NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "TASK_ALREADY_RUNNING": 409,
    "TASK_ALREADY_EXISTS": 409,
    "TASK_ALREADY_FINISHED": 409,
    "SERVICE_ALREADY_EXISTS": 409,
    "PORT_IN_USE": 409,
    "ALREADY_EXISTS": 409,
    "IN_USE": 409,
    "SCRIPT_CHANGED": 409,
    "DATASET_CHANGED": 409,
    "LINEAGE_MISSING": 409,
    "PAYLOAD_TOO_LARGE": 413,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "INTERNAL_ERROR": 500,
    "UPSTREAM_UNAVAILABLE": 502,
    "SERVICE_UNAVAILABLE": 503,
    "UPSTREAM_TIMEOUT": 504,
}


class PlatformError(Exception):
    """An error with a stable code from ``STATUS_BY_CODE``."""

    code = "INTERNAL_ERROR"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    @property
    def status(self) -> int:
        return STATUS_BY_CODE.get(self.code, 500)

    def envelope(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}: {self.message})"


class InvalidRequest(PlatformError):
    code = "INVALID_REQUEST"


class Unauthorized(PlatformError):
    code = "UNAUTHORIZED"


class NotFound(PlatformError):
    code = "NOT_FOUND"


class DatasetNotFound(NotFound):
    code = "DATASET_NOT_FOUND"


class ModelNotFound(NotFound):
    code = "MODEL_NOT_FOUND"


class TaskNotFound(NotFound):
    code = "TASK_NOT_FOUND"


class ServiceNotFound(NotFound):
    code = "SERVICE_NOT_FOUND"


class Conflict(PlatformError):
    code = "TASK_ALREADY_RUNNING"


class TaskAlreadyRunning(Conflict):
    code = "TASK_ALREADY_RUNNING"


class TaskAlreadyExists(Conflict):
    code = "TASK_ALREADY_EXISTS"


class TaskAlreadyFinished(Conflict):
    code = "TASK_ALREADY_FINISHED"


class ServiceAlreadyExists(Conflict):
    code = "SERVICE_ALREADY_EXISTS"


class PortInUse(Conflict):
    code = "PORT_IN_USE"


class VersionNotFound(NotFound):
    code = "VERSION_NOT_FOUND"


class TagNotFound(NotFound):
    code = "TAG_NOT_FOUND"


class AlreadyExists(Conflict):
    code = "ALREADY_EXISTS"


class InUse(Conflict):
    code = "IN_USE"


class PayloadTooLarge(PlatformError):
    code = "PAYLOAD_TOO_LARGE"


class UnsupportedMediaType(PlatformError):
    code = "UNSUPPORTED_MEDIA_TYPE"


class UpstreamUnavailable(PlatformError):
    code = "UPSTREAM_UNAVAILABLE"


class ServiceUnavailable(PlatformError):
    code = "SERVICE_UNAVAILABLE"


class UpstreamTimeout(UpstreamUnavailable):
    """The upstream did not answer within its deadline."""

    code = "UPSTREAM_TIMEOUT"


_CLASS_BY_CODE: dict[str, type[PlatformError]] = {
    cls.code: cls
    for cls in (
        InvalidRequest,
        Unauthorized,
        NotFound,
        DatasetNotFound,
        ModelNotFound,
        TaskNotFound,
        ServiceNotFound,
        TaskAlreadyRunning,
        TaskAlreadyExists,
        TaskAlreadyFinished,
        ServiceAlreadyExists,
        PortInUse,
        VersionNotFound,
        TagNotFound,
        AlreadyExists,
        InUse,
        PayloadTooLarge,
        UnsupportedMediaType,
        UpstreamUnavailable,
        UpstreamTimeout,
        ServiceUnavailable,
    )
}


def error_from_response(status: int, body: Any) -> PlatformError:
    """Rebuild the error a server raised from its envelope (or describe a body that is none)."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = str(body["error"].get("code", "INTERNAL_ERROR"))
        message = str(body["error"].get("message", ""))
        cls = _CLASS_BY_CODE.get(code, PlatformError)
        return cls(message, code=code)
    return PlatformError(f"unexpected HTTP {status} without an error envelope: {body!r:.200}")
