"""Exit codes: one table from an error code (the server's, or the SDK's task outcomes)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
EXIT_UNREACHABLE = 5
EXIT_TIMEOUT = 6
EXIT_INTERRUPTED = 130
# What a shell reports for a command killed by SIGPIPE (128 + 13): `aip ... | head` ends as
# `cat ... | head` would, only without the signal (Python ignores SIGPIPE for its sockets).
EXIT_PIPE_CLOSED = 141

# A code missing here exits 1; tests check that every server code is listed.
EXIT_BY_CODE: dict[str, int] = {
    "INVALID_REQUEST": EXIT_USAGE,
    "UNAUTHORIZED": EXIT_USAGE,  # a missing or wrong --api-key is the caller's to fix
    "METHOD_NOT_ALLOWED": EXIT_USAGE,
    "PAYLOAD_TOO_LARGE": EXIT_USAGE,
    "UNSUPPORTED_MEDIA_TYPE": EXIT_USAGE,
    "NOT_FOUND": EXIT_NOT_FOUND,
    "DATASET_NOT_FOUND": EXIT_NOT_FOUND,
    "MODEL_NOT_FOUND": EXIT_NOT_FOUND,
    "TASK_NOT_FOUND": EXIT_NOT_FOUND,
    "SERVICE_NOT_FOUND": EXIT_NOT_FOUND,
    "TASK_ALREADY_RUNNING": EXIT_CONFLICT,
    "TASK_ALREADY_EXISTS": EXIT_CONFLICT,
    "TASK_ALREADY_FINISHED": EXIT_CONFLICT,
    "SERVICE_ALREADY_EXISTS": EXIT_CONFLICT,
    "PORT_IN_USE": EXIT_CONFLICT,
    "VERSION_NOT_FOUND": EXIT_NOT_FOUND,
    "TAG_NOT_FOUND": EXIT_NOT_FOUND,
    "ALREADY_EXISTS": EXIT_CONFLICT,
    "IN_USE": EXIT_CONFLICT,
    "SCRIPT_CHANGED": EXIT_CONFLICT,  # reproduce: --use-current-script runs it anyway
    "DATASET_CHANGED": EXIT_CONFLICT,
    "LINEAGE_MISSING": EXIT_CONFLICT,
    "UPSTREAM_UNAVAILABLE": EXIT_UNREACHABLE,  # the platform, or the Data Platform behind it
    "UPSTREAM_TIMEOUT": EXIT_UNREACHABLE,  # the Data Platform did not answer in time
    # The platform answered; what failed is the thing asked for (a model server that did not
    # come up, a server bug), as when a task fails.
    "SERVICE_UNAVAILABLE": EXIT_FAILED,
    "INTERNAL_ERROR": EXIT_FAILED,
    "TASK_FAILED": EXIT_FAILED,
    "TASK_CANCELLED": EXIT_FAILED,
    "TASK_TIMEOUT": EXIT_TIMEOUT,
}


def exit_code_for(code: str) -> int:
    """The exit code for an error code (1 when the table does not list it)."""
    return EXIT_BY_CODE.get(code, EXIT_FAILED)
