"""Handles on things that live on the server: a task you can wait on, a service you predict with.

A handle holds an id, the resource's path and the last record seen; every method that says
"fresh" asks the server. Handles are made by the resource APIs of :class:`aip.Client`.
"""

from __future__ import annotations

import codecs
import contextlib
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from aip.errors import TaskAlreadyFinished, TaskCancelledError, TaskFailedError, TaskTimeoutError
from aip.images import ImageLike, encode_image
from aip.records import Prediction, Service, Task
from aip.transport import Transport, join


class TaskHandle:
    """An ingestion or training task on the server.

    Attributes:
        id: the task id (``ingest-…`` or ``train-…``).
        record: the last :class:`~aip.records.Task` fetched (``refresh()`` renews it).
    """

    def __init__(self, transport: Transport, path: str, record: Task) -> None:
        self._transport = transport
        self._path = path  # /api/v1/{kind}-tasks/{id}
        self.id = record.id
        self.record = record

    @property
    def kind(self) -> str:
        """``ingestion`` or ``training``."""
        return str(self.record.kind)

    @property
    def name(self) -> str:
        return self.record.name

    def __repr__(self) -> str:
        return f"TaskHandle({self.id!r}, name={self.name!r}, status={self.record.status!r})"

    def refresh(self) -> Task:
        """Fetch the record fresh from the server (and keep it as ``record``).

        Raises:
            TaskNotFound: the task no longer exists.
            PlatformUnreachable: no answer from the platform.
        """
        self.record = Task.from_raw(self._transport.json("GET", self._path))
        return self.record

    def status(self) -> str:
        """The status, fresh from the server: ``pending``, ``running``, ``completed``, ``failed``.

        Raises:
            TaskNotFound: the task no longer exists.
        """
        return self.refresh().status

    def progress(self) -> dict[str, Any] | None:
        """The latest progress point, fresh (e.g. ``{"epoch": 2, "loss": 0.1, ...}``), or None.

        Raises:
            TaskNotFound: the task no longer exists.
        """
        return self.refresh().progress

    def wait(
        self,
        timeout: float | None = None,
        poll: float = 0.5,
        on_progress: Callable[[Task], object] | None = None,
    ) -> Task:
        """Block until the task ends; returns the final record of a completed task.

        Args:
            timeout: seconds to wait at most; None waits for ever.
            poll: seconds between two looks at the server.
            on_progress: called with the fresh record whenever its status or progress point
                changed (at least once, with the first record seen).

        Raises:
            TaskCancelledError: the task was cancelled (a TaskFailedError).
            TaskFailedError: the task failed; ``.task``, ``.error`` and ``.reason`` say how.
            TaskTimeoutError: ``timeout`` passed while the task still runs (a TimeoutError);
                the task is left running.
            PlatformUnreachable: the platform stopped answering.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        seen: tuple[str, Any, int] | None = None
        while True:
            task = self.refresh()
            state = (task.status, task.progress, len(task.history))
            if on_progress is not None and state != seen:
                on_progress(task)
            seen = state
            if task.finished:
                return _outcome(task)
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TaskTimeoutError(task, timeout or 0.0)
                time.sleep(min(poll, left))
            else:
                time.sleep(poll)

    def cancel(self, *, finished_ok: bool = True) -> Task:
        """Cancel the task; returns its final record. Idempotent by default.

        A task that already ended (cancelled before, completed or failed) is not an error: its
        record is returned as it is, so calling ``cancel()`` twice is safe.

        Args:
            finished_ok: False raises ``TaskAlreadyFinished`` for a task that already ended
                (the record is still refreshed first), for callers that must tell the two apart.

        Raises:
            TaskNotFound: no such task.
            TaskAlreadyFinished: with ``finished_ok=False``, the task had already ended.
        """
        try:
            self.record = Task.from_raw(self._transport.json("POST", join(self._path, "cancel")))
        except TaskAlreadyFinished:
            self.refresh()
            if not finished_ok:
                raise
        return self.record

    def logs(self, tail: int | None = None) -> str:
        """The task's log so far (stdout and stderr of the script).

        Args:
            tail: only the last ``tail`` lines.

        Raises:
            TaskNotFound: no such task.
        """
        return task_logs(self._transport, self._path, tail)

    def follow_logs(self, tail: int | None = None) -> LogStream:
        """Stream the log as text until the task ends (like ``tail -f``).

        The request is made at once, so errors raise here and not on the first ``next()``.
        Chunks are not aligned on lines. ``close()`` it (or use it as a context manager) to
        stop early; that is safe from another thread.

        Args:
            tail: start with only the last ``tail`` lines of what was already written.

        Raises:
            TaskNotFound: no such task.
        """
        params: dict[str, Any] = {"follow": "true"}
        if tail is not None:
            params["tail"] = tail
        response = self._transport.stream("GET", join(self._path, "logs"), params)
        return LogStream(response, self._transport)


def task_logs(transport: Transport, task_path: str, tail: int | None) -> str:
    """The log of the task at ``task_path`` (its last ``tail`` lines)."""
    params = {"tail": tail} if tail is not None else None
    return transport.request("GET", join(task_path, "logs"), params=params).text


def _outcome(task: Task) -> Task:
    if task.status == "completed":
        return task
    if task.cancelled:
        raise TaskCancelledError(task)
    raise TaskFailedError(task)


class LogStream:
    """A task's log as it is written: iterate for text chunks (not aligned on lines).

    Ends when the task ends. ``close()`` stops it early and may be called from another
    thread: a read blocked there waiting for output returns, and the iteration just ends.
    """

    def __init__(self, response: httpx.Response, transport: Transport) -> None:
        self._response = response
        self._transport = transport
        self._chunks = response.iter_bytes()
        # Incremental: a UTF-8 character split over two chunks must not become two U+FFFDs.
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._closed = False
        self._done = False
        self._reading = False  # a thread is inside next(): close() must not close under it

    def __iter__(self) -> LogStream:
        return self

    def __next__(self) -> str:
        while not self._done:
            self._reading = True
            try:
                chunk = next(self._chunks)
            except StopIteration:
                self._finish()
                rest = self._decoder.decode(b"", final=True)
                if rest:
                    return rest
                break
            except (httpx.HTTPError, OSError) as exc:
                self._finish()
                if self._closed:  # our own close() broke the read: a normal end
                    break
                raise self._transport.unreachable(exc) from exc
            finally:
                self._reading = False
            text = self._decoder.decode(chunk)
            if text:
                return text
        raise StopIteration

    def _finish(self) -> None:
        self._done = True
        self._response.close()

    def close(self) -> None:
        """Stop following. Safe to call twice, and from another thread than the reader's."""
        if self._closed:
            return
        self._closed = True
        # Closing a socket does not wake a thread blocked reading it on Linux; shutdown does.
        # The reader then sees the connection end and closes the response itself.
        stream = self._response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if not self._reading and not self._done:
            self._finish()

    def __enter__(self) -> LogStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ServiceHandle:
    """An inference service on the server.

    Attributes:
        id: the service id (``serve-…``).
        record: the last :class:`~aip.records.Service` fetched (``refresh()`` renews it).
    """

    def __init__(self, transport: Transport, path: str, record: Service) -> None:
        self._transport = transport
        self._path = path  # /api/v1/inference-services/{id}
        self.id = record.id
        self.record = record

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def endpoint(self) -> str:
        """The model server's own URL (``POST {endpoint}/predict`` works without the platform)."""
        return self.record.endpoint

    def __repr__(self) -> str:
        return f"ServiceHandle({self.id!r}, name={self.name!r}, status={self.record.status!r})"

    def refresh(self) -> Service:
        """Fetch the record fresh from the server (and keep it as ``record``).

        Raises:
            ServiceNotFound: the service was deleted.
        """
        self.record = Service.from_raw(self._transport.json("GET", self._path))
        return self.record

    def status(self) -> str:
        """``starting``, ``running`` or ``failed``, fresh from the server."""
        return self.refresh().status

    def predict(self, image: ImageLike) -> Prediction:
        """Classify one image through the platform.

        Args:
            image: PNG/JPEG bytes, a path to such a file, a numpy uint8 array (28x28 raw, or any
                size) or a PIL image; see :func:`aip.images.encode_image`.

        Raises:
            InvalidRequest: the server could not use the image.
            ServiceUnavailable: the service is not running.
            ServiceNotFound: the service was deleted.
            TypeError, ValueError, FileNotFoundError: the image could not be read here.
        """
        body = {"image": encode_image(image)}
        return Prediction.from_raw(self._transport.json("POST", self._predict_path, json=body))

    def predict_batch(self, images: Iterable[ImageLike]) -> list[Prediction]:
        """Classify several images in one request (one forward pass); answers in order.

        Raises:
            The same as :meth:`predict`; one bad image fails the whole batch.
        """
        body = {"images": [encode_image(image) for image in images]}
        if not body["images"]:
            return []
        answer = self._transport.json("POST", self._predict_path, json=body)
        return [Prediction.from_raw(p) for p in answer["predictions"]]

    @property
    def _predict_path(self) -> str:
        return join(self._path, "predict")

    def logs(self, tail_bytes: int | None = None) -> str:
        """The model server's log.

        Args:
            tail_bytes: only the last ``tail_bytes`` bytes.

        Raises:
            ServiceNotFound: no such service.
        """
        params = {"tail_bytes": tail_bytes} if tail_bytes is not None else None
        return self._transport.request("GET", join(self._path, "logs"), params=params).text

    def delete(self) -> None:
        """Stop the service and free its port.

        Raises:
            ServiceNotFound: already deleted.
        """
        self._transport.request("DELETE", self._path)
