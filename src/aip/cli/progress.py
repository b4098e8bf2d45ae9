"""A task's progress while the CLI waits or follows its log: a live bar, or a line per change."""

from __future__ import annotations

import _thread
import sys
import threading
from collections.abc import Iterable, Iterator

from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from aip.cli.output import Output, cell
from aip.errors import PlatformError, TaskFailedError
from aip.handles import LogStream, TaskHandle
from aip.records import Task


def describe_progress(task: Task) -> tuple[float | None, float | None, str]:
    """(done, total, text) for a task's latest point; done/total None when unknown.

    Knows the two shapes the platform's scripts report: ``records_done``/``records_total``
    (ingestion) and ``epoch``/``loss``/``test_accuracy`` (training); anything else is shown
    as ``key value`` pairs. A pending task shows its place in the queue when the server says.
    """
    if task.status == "pending" and task.queue is not None:
        running = task.queue.running
        ahead = f", behind {', '.join(running)}" if running else ""
        return None, None, f"#{task.queue.position} in the queue{ahead}"
    point = {k: v for k, v in (task.progress or {}).items() if k != "time"}
    if not point:
        return None, None, ""
    if "records_done" in point or "records_total" in point:
        done = point.get("records_done")
        total = point.get("records_total")
        text = f"{cell(done)}/{cell(total)} records" if total else f"{cell(done)} records"
        if point.get("split"):
            text += f" ({point['split']})"
        return done, total, text
    if "epoch" in point:
        epoch = point["epoch"]
        total = point.get("epochs") or task.params.get("epochs")
        # An epoch's last point carries its evaluation; points before it only a running loss.
        ended = any(k in point for k in ("test_accuracy", "accuracy", "test_loss"))
        done = epoch if ended else max(epoch - 1, 0)
        parts = [f"epoch {epoch}/{total}" if total else f"epoch {epoch}"]
        loss = point.get("loss", point.get("train_loss"))
        if loss is not None:
            parts.append(f"loss {cell(loss)}")
        accuracy = point.get("test_accuracy", point.get("accuracy"))
        if accuracy is not None:
            parts.append(f"acc {cell(accuracy)}")
        return done, total, " · ".join(parts)
    return None, None, " ".join(f"{k} {cell(v)}" for k, v in point.items())


class TaskView:
    """A live bar when the output is a terminal, else a line per change of the progress.

    Args:
        lines_to_stderr: the per-change lines go to stderr (stdout carries a log then), and
            the bar is live only when both streams are the terminal.
    """

    def __init__(self, out: Output, task: Task, *, lines_to_stderr: bool = False) -> None:
        self.out = out
        self.lines_to_stderr = lines_to_stderr
        terminal = out.console.is_terminal and (out.err.is_terminal or not lines_to_stderr)
        self.live = terminal and not out.json_mode
        self._last_line: str | None = None
        self._lock = threading.Lock()
        self.progress: Progress | None = None
        if self.live:
            self.progress = Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.fields[label]}"),
                BarColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[detail]}", markup=False),  # data, not markup
                TimeElapsedColumn(),
                console=out.console,
            )
            self.bar = self.progress.add_task("", total=None, label=task.name, detail="")

    def __enter__(self) -> TaskView:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def update(self, task: Task) -> None:
        done, total, detail = describe_progress(task)
        status = f"{task.status} ({task.error.reason})" if task.error else task.status
        if self.progress is not None:
            if task.status == "completed":
                done = total = total or done or 1  # a full bar, whatever was reported
            self.progress.update(
                self.bar,
                completed=done or 0,
                total=total,
                label=f"{task.name} {status}",
                detail=detail,
            )
            return
        if self.out.json_mode:
            return
        line = f"{status:<9} {detail}".rstrip()
        if line != self._last_line:
            self._last_line = line
            with self._lock:
                if self.lines_to_stderr:
                    self.out.note(line)
                else:
                    self.out.text(line)

    def log(self, line: str) -> None:
        """One log line, printed above the bar (or to stderr with --json)."""
        if self.out.json_mode:
            sys.stderr.write(line + "\n")
            return
        with self._lock:
            self.out.text(line)


def lines(chunks: Iterable[str]) -> Iterator[str]:
    """Log chunks (cut anywhere) as lines; a last line without a newline comes at the end."""
    pending = ""
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split("\n")
        yield from complete
    if pending:
        yield pending


def wait_for(
    out: Output,
    handle: TaskHandle,
    timeout: float | None,
    follow: bool,
    poll: float = 0.5,
) -> Task:
    """Wait on a task showing its progress (and its log with ``follow``); SDK errors pass."""
    with TaskView(out, handle.record) as view:
        stream = handle.follow_logs() if follow else None
        pump = _start_pump(stream, view) if stream is not None else None
        ended = False
        try:
            task = handle.wait(timeout=timeout, poll=poll, on_progress=view.update)
            ended = True
        except TaskFailedError:
            ended = True
            raise
        finally:
            if stream is not None and pump is not None:
                if ended:
                    # An ended task's stream ends by itself once its last lines (a traceback,
                    # say) are sent: let them in.
                    pump.join(10)
                # Else a timeout or Ctrl-C left the task running: stop reading at once.
                stream.close()
                pump.join(5)
        return task


def _start_pump(stream: LogStream, view: TaskView) -> threading.Thread:
    def pump() -> None:
        try:
            for line in lines(stream):
                view.log(line)
        except PlatformError:
            pass  # the platform went away; the wait in the main thread reports it
        except BrokenPipeError:
            # `aip train --follow | head`: the reader left; end the wait now, not at the
            # task's end. main() sees pipe_closed and exits quietly.
            view.out.pipe_closed = True
            _thread.interrupt_main()

    thread = threading.Thread(target=pump, name="aip-logs", daemon=True)
    thread.start()
    return thread


def follow_log(out: Output, handle: TaskHandle, tail: int | None, poll: float = 0.5) -> None:
    """Print a task's log as it is written until the task ends, with its progress.

    The log goes to stdout as the server sent it (JSON lines with ``--json``). The progress is
    a live bar below the log on a terminal, else a line on stderr per change, so a redirected
    log stays the log.
    """
    with handle.follow_logs(tail=tail) as stream:
        if out.json_mode:
            # One document per log line, so a consumer can parse as it reads.
            for line in lines(stream):
                out.json_line({"id": handle.id, "line": line})
            return
        with TaskView(out, handle.record, lines_to_stderr=True) as view:
            view.update(handle.record)
            stop = threading.Event()
            watcher = threading.Thread(
                target=_watch, args=(handle, view, stop, poll), name="aip-progress", daemon=True
            )
            watcher.start()
            try:
                if view.live:
                    for line in lines(stream):
                        view.log(line)
                else:
                    for chunk in stream:
                        out.write(chunk)
            finally:
                stop.set()
                watcher.join(5)
            _show(handle, view)  # the state it ended in


def _watch(handle: TaskHandle, view: TaskView, stop: threading.Event, poll: float) -> None:
    while not stop.wait(poll):
        if not _show(handle, view) or handle.record.finished:
            return


def _show(handle: TaskHandle, view: TaskView) -> bool:
    """Fetch the task and show it; False when that failed (the log stream reports why)."""
    try:
        view.update(handle.refresh())
    except (PlatformError, OSError):
        return False
    return True
