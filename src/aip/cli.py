"""``aip``: the AI Platform from a shell, over the SDK (``aip.Client``) only.

Every command takes ``--url``, ``--api-key`` and ``--json`` (before or after the command name).
Human output is tables (rich); ``--json`` prints the server's JSON on stdout instead, and errors
as ``{"error": {"code", "message"}}`` on stderr. Exit codes come from one table,
:data:`EXIT_BY_CODE`, and are listed in ``aip --help``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Console, JustifyMethod
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from aip.client import Client, TasksAPI
from aip.errors import PlatformError, TaskFailedError, TaskTimeoutError
from aip.handles import LogStream, TaskHandle
from aip.records import Dataset, Model, Service, Task

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
EXIT_UNREACHABLE = 5
EXIT_TIMEOUT = 6
EXIT_INTERRUPTED = 130

# The one table from an error code (the server's, or the SDK's task outcomes) to an exit code.
# A code missing here exits 1; tests check that every server code is listed.
EXIT_BY_CODE: dict[str, int] = {
    "INVALID_REQUEST": EXIT_USAGE,
    "UNAUTHORIZED": EXIT_USAGE,  # a missing or wrong --api-key is the caller's to fix
    "METHOD_NOT_ALLOWED": EXIT_USAGE,
    "PAYLOAD_TOO_LARGE": EXIT_USAGE,
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
    "UPSTREAM_UNAVAILABLE": EXIT_UNREACHABLE,  # the platform, or the Data Platform behind it
    # The platform answered; what failed is the thing asked for (a model server that did not
    # come up, a server bug), as when a task fails.
    "SERVICE_UNAVAILABLE": EXIT_FAILED,
    "INTERNAL_ERROR": EXIT_FAILED,
    "TASK_FAILED": EXIT_FAILED,
    "TASK_CANCELLED": EXIT_FAILED,
    "TASK_TIMEOUT": EXIT_TIMEOUT,
}

EPILOG = """\
exit codes:
  0    ok
  1    a task failed or was cancelled (--wait/--follow), or the server failed
  2    usage error: bad arguments, or a request the server refused as invalid or unauthorized
  3    not found: dataset, model, task or service
  4    conflict: a task with this name is running, the task already ended, a service name or
       port is taken
  5    the platform is unreachable
  6    timed out waiting (--timeout); the task keeps running
  130  interrupted (Ctrl-C); a task being waited on keeps running

environment:
  AIP_URL      the platform's URL (default http://127.0.0.1:8000); --url overrides it
  AIP_API_KEY  API key sent as 'Authorization: Bearer KEY'; --api-key overrides it

examples:
  aip up
  aip ingest --name mnist --input raw/mnist --script pipelines/mnist_clean.py \\
      --output mnist --param limit=2000 --wait
  aip train --name cnn --input mnist --script training/mnist_cnn.py --output mnist_cnn \\
      --param epochs=1 --follow
  aip serve --name digits --model mnist_cnn
  aip predict digits seven.png two.jpg
  aip --json tasks ls --status failed
"""


def exit_code_for(code: str) -> int:
    """The exit code for an error code (1 when the table does not list it)."""
    return EXIT_BY_CODE.get(code, EXIT_FAILED)


# -- output ------------------------------------------------------------------------------


class Output:
    """Where a command writes: tables and text for people, JSON with ``--json``."""

    def __init__(self, json_mode: bool) -> None:
        self.json_mode = json_mode
        # Piped output gets a wide console so tables are not squeezed to 80 columns.
        width = None if sys.stdout.isatty() else _piped_width()
        self.console = Console(highlight=False, emoji=False, width=width)
        self.err = Console(stderr=True, highlight=False, emoji=False, width=width)

    def json(self, data: Any) -> None:
        # Not through rich: it would wrap long strings.
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
        sys.stdout.flush()

    def json_line(self, data: Any) -> None:
        """One compact JSON document per line (a stream a consumer can parse as it reads)."""
        sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")
        sys.stdout.flush()

    def print(self, *items: Any, **kwargs: Any) -> None:
        if self.console.is_terminal:
            self.console.print(*items, **kwargs)
            return
        # Piped: plain text, so drop the padding rich puts after the last column of a table.
        with self.console.capture() as captured:
            self.console.print(*items, **kwargs)
        lines = captured.get().splitlines()
        sys.stdout.write("".join(line.rstrip() + "\n" for line in lines))
        sys.stdout.flush()

    def text(self, value: str) -> None:
        """Print data (a log, a message) as it is: no markup, no wrapping."""
        self.print(Text(value), soft_wrap=True)

    def table(self, columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str = "") -> None:
        """Print a table; cells are data (``Text``), never rich markup."""
        table = Table(
            box=box.SIMPLE_HEAD,
            show_edge=False,
            pad_edge=False,
            header_style="bold",
            title=title or None,
            title_justify="left",
            title_style="bold",
        )
        cells = [[v if isinstance(v, Text) else Text(_cell(v)) for v in row] for row in rows]
        for i, column in enumerate(columns):
            justify: JustifyMethod = "right" if column in NUMERIC_COLUMNS else "left"
            if column in WHOLE_COLUMNS:
                # Ids and times are copied and compared: never wrapped; the other columns give.
                width = max([len(column), *(row[i].cell_len for row in cells)])
                table.add_column(column, justify=justify, no_wrap=True, min_width=width)
            else:
                table.add_column(column, justify=justify, overflow="fold", min_width=len(column))
        for row in cells:
            table.add_row(*row)
        self.print(table)

    def fields(self, pairs: Iterable[tuple[str, Any]]) -> None:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column(overflow="fold")
        for key, value in pairs:
            if value is None or value == "" or value == {}:
                continue
            grid.add_row(key, value if isinstance(value, Text) else Text(_cell(value)))
        self.print(grid)

    def error(self, code: str, message: str, hint: str = "") -> None:
        if self.json_mode:
            body = {"error": {"code": code, "message": message}}
            sys.stderr.write(json.dumps(body) + "\n")
            return
        line = Text.assemble(("error: ", "bold red"), message, (f" [{code}]", "dim"))
        self.err.print(line, soft_wrap=True)
        if hint:
            self.err.print(Text(hint, style="dim"), soft_wrap=True)

    def note(self, message: str) -> None:
        """A remark for people, on stderr so it never mixes with data."""
        if not self.json_mode:
            self.err.print(Text(message, style="dim"), soft_wrap=True)


def _piped_width() -> int:
    try:
        return max(40, int(os.environ.get("COLUMNS", "")))
    except ValueError:
        return 160


WHOLE_COLUMNS = {"ID", "NAME", "STATUS", "CREATED", "UPDATED", "TIMESTAMP", "DIGIT", "CONFIDENCE"}
NUMERIC_COLUMNS = {"ROWS", "SIZE", "VERSION", "WEIGHTS", "ACCURACY", "CONFIDENCE", "DIGIT", "PORT"}


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, datetime):
        return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"  # unreachable; keeps type checkers content


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 60:
        return f"{value:.1f} s"
    minutes, seconds = divmod(int(value), 60)
    return f"{minutes}m{seconds:02d}s"


STATUS_STYLE = {
    "pending": "yellow",
    "starting": "yellow",
    "running": "cyan",
    "completed": "green",
    "failed": "red",
}


def _status(status: str, reason: str | None = None) -> Text:
    label = f"{status} ({reason})" if reason else status
    return Text(label, style=STATUS_STYLE.get(status, ""))


# -- progress ----------------------------------------------------------------------------


def describe_progress(task: Task) -> tuple[float | None, float | None, str]:
    """(done, total, text) for a task's latest point; done/total None when unknown.

    Knows the two shapes the platform's scripts report: ``records_done``/``records_total``
    (ingestion) and ``epoch``/``loss``/``test_accuracy`` (training); anything else is shown
    as ``key value`` pairs.
    """
    point = {k: v for k, v in (task.progress or {}).items() if k != "time"}
    if not point:
        return None, None, ""
    if "records_done" in point or "records_total" in point:
        done = point.get("records_done")
        total = point.get("records_total")
        text = f"{_cell(done)}/{_cell(total)} records" if total else f"{_cell(done)} records"
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
            parts.append(f"loss {_cell(loss)}")
        accuracy = point.get("test_accuracy", point.get("accuracy"))
        if accuracy is not None:
            parts.append(f"acc {_cell(accuracy)}")
        return done, total, " · ".join(parts)
    return None, None, " ".join(f"{k} {_cell(v)}" for k, v in point.items())


class TaskView:
    """A task's progress while the CLI waits: a live bar on a terminal, else a line per change."""

    def __init__(self, out: Output, task: Task) -> None:
        self.out = out
        self.live = out.console.is_terminal and not out.json_mode
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
                self.out.text(line)

    def log(self, line: str) -> None:
        """One log line, printed above the bar (or to stderr with --json)."""
        if self.out.json_mode:
            sys.stderr.write(line + "\n")
            return
        with self._lock:
            self.out.text(line)


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
        pending = ""
        try:
            for chunk in stream:
                pending += chunk
                *lines, pending = pending.split("\n")
                for line in lines:
                    view.log(line)
        except PlatformError:
            pass  # the platform went away; the wait in the main thread reports it
        if pending:
            view.log(pending)

    thread = threading.Thread(target=pump, name="aip-logs", daemon=True)
    thread.start()
    return thread


# -- commands ----------------------------------------------------------------------------


class Context:
    """What a command gets: its arguments, where to write, and a client made on first use."""

    def __init__(self, args: argparse.Namespace, out: Output) -> None:
        self.args = args
        self.out = out
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(base_url=self.args.url, api_key=self.args.api_key)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


Command = Callable[[Context], int]


def cmd_up(ctx: Context) -> int:
    from lakestack.launcher import main as launch  # only this command needs the servers

    return launch()


# datasets


def cmd_datasets_ls(ctx: Context) -> int:
    datasets = ctx.client.datasets.list()
    if ctx.out.json_mode:
        ctx.out.json([d.raw for d in datasets])
        return EXIT_OK
    rows = [
        (d.id, d.num_rows, _size(d.size_bytes), d.version, d.updated_at or d.created_at)
        for d in sorted(datasets, key=lambda d: d.id)
    ]
    ctx.out.table(("ID", "ROWS", "SIZE", "VERSION", "UPDATED"), rows)
    if not rows:
        ctx.out.note("no datasets yet: `aip ingest ...` makes one")
    return EXIT_OK


def _dataset_fields(d: Dataset) -> list[tuple[str, Any]]:
    return [
        ("id", d.id),
        ("path", d.path),
        ("rows", d.num_rows),
        ("size", _size(d.size_bytes)),
        ("version", d.version),
        ("created", d.created_at),
        ("updated", d.updated_at),
    ]


def cmd_datasets_show(ctx: Context) -> int:
    d = ctx.client.datasets.get(ctx.args.id)
    if ctx.out.json_mode:
        ctx.out.json(d.raw)
        return EXIT_OK
    ctx.out.fields(_dataset_fields(d))
    ctx.out.table(("COLUMN", "TYPE"), d.schema_.items(), title="schema")
    if d.metadata:
        ctx.out.table(("KEY", "VALUE"), d.metadata.items(), title="metadata")
    return EXIT_OK


def cmd_datasets_versions(ctx: Context) -> int:
    versions = ctx.client.datasets.versions(ctx.args.id)
    if ctx.out.json_mode:
        ctx.out.json([v.raw for v in versions])
        return EXIT_OK
    ctx.out.table(
        ("VERSION", "ROWS", "TIMESTAMP"), [(v.version, v.num_rows, v.timestamp) for v in versions]
    )
    return EXIT_OK


def cmd_datasets_rm(ctx: Context) -> int:
    ctx.client.datasets.delete(ctx.args.id)
    return _deleted(ctx, "dataset", ctx.args.id)


def _deleted(ctx: Context, kind: str, ident: str) -> int:
    if ctx.out.json_mode:
        ctx.out.json({"deleted": ident, "kind": kind})
    else:
        ctx.out.print(Text(f"deleted {kind} {ident}"))
    return EXIT_OK


# models


def _accuracy(m: Model) -> Any:
    return m.metrics.get("test_accuracy", m.metrics.get("accuracy"))


def cmd_models_ls(ctx: Context) -> int:
    models = ctx.client.models.list()
    if ctx.out.json_mode:
        ctx.out.json([m.raw for m in models])
        return EXIT_OK
    rows = [
        (
            m.id,
            m.version,
            (m.architecture or "-").split(":")[0],
            _accuracy(m),
            _size(m.weights_bytes),
            (m.source or {}).get("name"),
            m.created_at,
        )
        for m in sorted(models, key=lambda m: m.id)
    ]
    columns = ("ID", "VERSION", "ARCHITECTURE", "ACCURACY", "WEIGHTS", "DATASET", "CREATED")
    ctx.out.table(columns, rows)
    if not rows:
        ctx.out.note("no models yet: `aip train ...` makes one")
    return EXIT_OK


def cmd_models_show(ctx: Context) -> int:
    m = ctx.client.models.get(ctx.args.id)
    if ctx.out.json_mode:
        ctx.out.json(m.raw)
        return EXIT_OK
    source = m.source or {}
    trained_on = f"{source.get('name')} v{source.get('version')}" if source else None
    ctx.out.fields(
        [
            ("id", m.id),
            ("path", m.path),
            ("version", m.version),
            ("architecture", m.architecture),
            ("weights", _size(m.weights_bytes)),
            ("size", _size(m.size_bytes)),
            ("created", m.created_at),
            ("dataset", trained_on),
            ("input", m.input_spec),
        ]
    )
    if m.metrics:
        ctx.out.table(("METRIC", "VALUE"), m.metrics.items(), title="metrics")
    if m.params:
        # As JSON: values to copy into --param, not numbers to read (no "2,000").
        params = [(k, json.dumps(v)) for k, v in m.params.items()]
        ctx.out.table(("PARAM", "VALUE"), params, title="params")
    _history_table(ctx.out, m.history, "history")
    return EXIT_OK


def _history_table(out: Output, history: list[dict[str, Any]], title: str, last: int = 10) -> None:
    if not history:
        return
    shown = history[-last:]
    columns: list[str] = []
    for point in shown:
        columns += [k for k in point if k != "time" and k not in columns]
    if len(history) > len(shown):
        title += f" (last {len(shown)} of {len(history)})"
    rows = [[point.get(c) for c in columns] for point in shown]
    out.table([c.upper() for c in columns], rows, title=title)


def cmd_models_rm(ctx: Context) -> int:
    ctx.client.models.delete(ctx.args.id)
    return _deleted(ctx, "model", ctx.args.id)


# tasks


def parse_params(pairs: Sequence[str] | None, params_json: str | None) -> dict[str, Any]:
    """``--params-json`` first, then each ``--param k=v`` over it; values are JSON if they parse.

    Raises:
        UsageError: a pair without ``=``, or ``--params-json`` that is not a JSON object.
    """
    params: dict[str, Any] = {}
    if params_json:
        try:
            params = json.loads(params_json)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--params-json is not valid JSON: {exc}") from None
        if not isinstance(params, dict):
            raise UsageError("--params-json must be a JSON object")
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--param {pair!r}: use KEY=VALUE")
        try:
            params[key] = json.loads(value)  # 2 -> 2, true -> True, [1,2] -> list
        except json.JSONDecodeError:
            params[key] = value  # a bare word stays a string
    return params


class UsageError(Exception):
    """Bad arguments argparse could not see (exit 2)."""


def _submit(ctx: Context, api: TasksAPI) -> int:
    args = ctx.args
    params = parse_params(args.param, args.params_json)
    handle = api.submit(
        name=args.name, input=args.input, script=args.script, output=args.output, params=params
    )
    if not (args.wait or args.follow):
        if ctx.out.json_mode:
            ctx.out.json(handle.record.raw)
        else:
            ctx.out.print(Text(f"submitted {handle.id} ({handle.name})"))
            ctx.out.note(f"aip tasks show {handle.id} | aip tasks logs {handle.id} --follow")
        return EXIT_OK
    ctx.out.note(f"submitted {handle.id} ({handle.name})")
    return _wait(ctx, handle, args.timeout, args.follow)


def _wait(ctx: Context, handle: TaskHandle, timeout: float | None, follow: bool) -> int:
    """Wait with progress, then show the outcome; errors map to exit codes in main."""
    try:
        task = wait_for(ctx.out, handle, timeout, follow)
    except TaskFailedError as exc:
        if ctx.out.json_mode:
            ctx.out.json(exc.task.raw)
        raise
    except (TaskTimeoutError, KeyboardInterrupt):
        ctx.out.note(f"{handle.id} keeps running; `aip tasks cancel {handle.id}` stops it")
        raise
    if ctx.out.json_mode:
        ctx.out.json(task.raw)
        return EXIT_OK
    line = Text.assemble(
        ("completed ", "bold green"), f"{task.id} ({task.name}) in {_seconds(task.duration)}"
    )
    ctx.out.print(line)
    if task.result:
        ctx.out.table(("RESULT", "VALUE"), task.result.items())
    return EXIT_OK


def cmd_ingest(ctx: Context) -> int:
    return _submit(ctx, ctx.client.ingestion)


def cmd_train(ctx: Context) -> int:
    return _submit(ctx, ctx.client.training)


def cmd_tasks_ls(ctx: Context) -> int:
    tasks = ctx.client.list_tasks(kind=ctx.args.kind, status=ctx.args.status)
    if ctx.out.json_mode:
        ctx.out.json([t.raw for t in tasks])
        return EXIT_OK
    rows = [
        (
            t.id,
            t.name,
            _status(t.status, t.error.reason if t.error else None),
            t.script,
            t.output,
            describe_progress(t)[2] or "-",
            t.created_at,
        )
        for t in tasks
    ]
    ctx.out.table(("ID", "NAME", "STATUS", "SCRIPT", "OUTPUT", "PROGRESS", "CREATED"), rows)
    return EXIT_OK


def cmd_tasks_show(ctx: Context) -> int:
    task = ctx.client.task(ctx.args.id).record
    if ctx.out.json_mode:
        ctx.out.json(task.raw)
        return EXIT_OK
    ctx.out.fields(
        [
            ("id", task.id),
            ("kind", task.kind),
            ("name", task.name),
            ("status", _status(task.status)),
            ("input", task.input),
            ("script", task.script),
            ("output", task.output),
            ("params", task.params),
            ("created", task.created_at),
            ("started", task.started_at),
            ("completed", task.completed_at),
            ("duration", _seconds(task.duration) if task.duration is not None else None),
            ("progress", describe_progress(task)[2]),
            ("error", Text(task.error.describe(), style="red") if task.error else None),
        ]
    )
    if task.result:
        ctx.out.table(("RESULT", "VALUE"), task.result.items(), title="result")
    _history_table(ctx.out, task.history, "history")
    return EXIT_OK


def cmd_tasks_cancel(ctx: Context) -> int:
    task = ctx.client.task(ctx.args.id).cancel()
    if ctx.out.json_mode:
        ctx.out.json(task.raw)
        return EXIT_OK
    line = Text(f"{task.id} ({task.name}): ")
    line.append_text(_status(task.status, task.error.reason if task.error else None))
    ctx.out.print(line)
    return EXIT_OK


def cmd_tasks_logs(ctx: Context) -> int:
    handle = ctx.client.task(ctx.args.id)
    if not ctx.args.follow:
        text = handle.logs(tail=ctx.args.tail)
        if ctx.out.json_mode:
            ctx.out.json({"id": handle.id, "logs": text})
        else:
            sys.stdout.write(text)
        return EXIT_OK
    with handle.follow_logs(tail=ctx.args.tail) as stream:
        if not ctx.out.json_mode:
            for chunk in stream:
                sys.stdout.write(chunk)
                sys.stdout.flush()
            return EXIT_OK
        # JSON lines, one per log line, so a consumer can parse as it reads.
        pending = ""
        for chunk in stream:
            pending += chunk
            *lines, pending = pending.split("\n")
            for line in lines:
                ctx.out.json_line({"id": handle.id, "line": line})
        if pending:
            ctx.out.json_line({"id": handle.id, "line": pending})
    return EXIT_OK


def cmd_tasks_wait(ctx: Context) -> int:
    return _wait(ctx, ctx.client.task(ctx.args.id), ctx.args.timeout, ctx.args.follow)


# services


def _service_fields(s: Service) -> list[tuple[str, Any]]:
    return [
        ("id", s.id),
        ("name", s.name),
        ("model", f"{s.model} v{s.model_version}" if s.model_version is not None else s.model),
        ("status", _status(s.status)),
        ("endpoint", s.endpoint),
        ("device", s.device),
        ("created", s.created_at),
        ("started", s.started_at),
        ("error", Text(s.error, style="red") if s.error else None),
    ]


def cmd_serve(ctx: Context) -> int:
    args = ctx.args
    ctx.out.note(f"starting {args.name} with model {args.model} (waits for the model to load)")
    handle = ctx.client.services.create(args.name, args.model, device=args.device, port=args.port)
    if ctx.out.json_mode:
        ctx.out.json(handle.record.raw)
        return EXIT_OK
    ctx.out.fields(_service_fields(handle.record))
    ctx.out.note(f"aip predict {handle.name} IMAGE...")
    return EXIT_OK


def cmd_services_ls(ctx: Context) -> int:
    services = ctx.client.services.list()
    if ctx.out.json_mode:
        ctx.out.json([s.raw for s in services])
        return EXIT_OK
    rows = [
        (s.id, s.name, s.model, s.model_version, _status(s.status), s.endpoint, s.device)
        for s in services
    ]
    ctx.out.table(("ID", "NAME", "MODEL", "VERSION", "STATUS", "ENDPOINT", "DEVICE"), rows)
    return EXIT_OK


def cmd_services_show(ctx: Context) -> int:
    s = ctx.client.services.get(ctx.args.service).record
    if ctx.out.json_mode:
        ctx.out.json(s.raw)
        return EXIT_OK
    ctx.out.fields(_service_fields(s))
    return EXIT_OK


def cmd_services_rm(ctx: Context) -> int:
    handle = ctx.client.services.get(ctx.args.service)
    handle.delete()
    return _deleted(ctx, "service", handle.id)


def cmd_services_logs(ctx: Context) -> int:
    handle = ctx.client.services.get(ctx.args.service)
    text = handle.logs(tail_bytes=ctx.args.tail_bytes)
    if ctx.out.json_mode:
        ctx.out.json({"id": handle.id, "logs": text})
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_predict(ctx: Context) -> int:
    images: list[bytes] = []
    for path in ctx.args.images:
        try:
            with open(path, "rb") as fh:
                images.append(fh.read())
        except OSError as exc:
            raise UsageError(f"cannot read image {path}: {exc.strerror or exc}") from None
    handle = ctx.client.services.get(ctx.args.service)
    predictions = handle.predict_batch(images)
    if ctx.out.json_mode:
        ctx.out.json(
            [{"image": path, **p.raw} for path, p in zip(ctx.args.images, predictions, strict=True)]
        )
        return EXIT_OK
    rows = [
        (path, p.prediction, f"{p.confidence:.3f}")
        for path, p in zip(ctx.args.images, predictions, strict=True)
    ]
    ctx.out.table(("IMAGE", "DIGIT", "CONFIDENCE"), rows)
    return EXIT_OK


# -- parser ------------------------------------------------------------------------------


def _global_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    # On the top parser with real defaults; on every subcommand with SUPPRESS, so that
    # `aip --json tasks ls` and `aip tasks ls --json` both work and neither resets the other.
    default: Any = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--url", default=default, help="platform URL (env AIP_URL, default http://127.0.0.1:8000)"
    )
    parser.add_argument("--api-key", default=default, help="API key (env AIP_API_KEY)")
    parser.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="machine-readable JSON on stdout (errors as JSON on stderr)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aip",
        description="The AI Platform from a shell: datasets, models, ingestion and training "
        "tasks, inference services.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _global_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(
        group: Any, name: str, func: Command, help: str, **kwargs: Any
    ) -> argparse.ArgumentParser:
        sub = group.add_parser(name, help=help, description=help, **kwargs)
        _global_options(sub, suppress=True)
        sub.set_defaults(func=func)
        return sub

    def group(name: str, help: str) -> Any:
        sub = commands.add_parser(name, help=help, description=help)
        _global_options(sub, suppress=True)
        return sub.add_subparsers(dest="action", metavar="ACTION", required=True)

    command(
        commands,
        "up",
        cmd_up,
        "start the Data Platform and the AI Platform in the foreground (Ctrl-C stops both, "
        "exit 0); settings from the DP_* and AIP_* environment variables",
    )

    datasets = group("datasets", "datasets in the lake")
    command(datasets, "ls", cmd_datasets_ls, "list datasets")
    command(datasets, "show", cmd_datasets_show, "one dataset and its schema").add_argument("id")
    command(datasets, "versions", cmd_datasets_versions, "a dataset's Lance versions").add_argument(
        "id"
    )
    command(datasets, "rm", cmd_datasets_rm, "delete a dataset and all its versions").add_argument(
        "id"
    )

    models = group("models", "trained models in the lake")
    command(models, "ls", cmd_models_ls, "list models")
    command(models, "show", cmd_models_show, "one model: metrics, params, history").add_argument(
        "id"
    )
    command(models, "rm", cmd_models_rm, "delete a model and all its versions").add_argument("id")

    for name, func, what, input_help, output_help in (
        (
            "ingest",
            cmd_ingest,
            "an ingestion task",
            "raw data path under the data root",
            "dataset name",
        ),
        ("train", cmd_train, "a training task", "dataset name", "model name"),
    ):
        sub = command(commands, name, func, f"submit {what}")
        sub.add_argument("--name", required=True, help="task name (one active task per name)")
        sub.add_argument("--input", required=True, help=input_help)
        sub.add_argument("--script", required=True, help="script path under the scripts root")
        sub.add_argument("--output", required=True, help=output_help)
        _task_params(sub)
        _wait_options(sub)

    tasks = group("tasks", "ingestion and training tasks")
    ls = command(tasks, "ls", cmd_tasks_ls, "list tasks, newest first")
    ls.add_argument("--kind", choices=("ingestion", "training"))
    ls.add_argument("--status", choices=("pending", "running", "completed", "failed"))
    command(
        tasks, "show", cmd_tasks_show, "one task: status, progress, error, result"
    ).add_argument("id")
    command(
        tasks, "cancel", cmd_tasks_cancel, "cancel a task (no error if it already ended)"
    ).add_argument("id")
    logs = command(tasks, "logs", cmd_tasks_logs, "a task's log")
    logs.add_argument("id")
    logs.add_argument("--tail", type=_non_negative_int, metavar="N", help="only the last N lines")
    logs.add_argument("--follow", "-f", action="store_true", help="stream until the task ends")
    wait = command(tasks, "wait", cmd_tasks_wait, "wait for a task to end, showing its progress")
    wait.add_argument("id")
    wait.add_argument("--timeout", type=float, metavar="S", help="give up after S seconds (exit 6)")
    wait.add_argument("--follow", "-f", action="store_true", help="also stream its log")

    serve = command(commands, "serve", cmd_serve, "start an inference service for a model")
    serve.add_argument("--name", required=True, help="service name")
    serve.add_argument("--model", required=True, help="model name in the lake")
    serve.add_argument("--port", type=int, help="model server port (default: a free one)")
    serve.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")

    services = group("services", "inference services")
    command(services, "ls", cmd_services_ls, "list services")
    command(services, "show", cmd_services_show, "one service (by id or name)").add_argument(
        "service"
    )
    command(services, "rm", cmd_services_rm, "stop a service (by id or name)").add_argument(
        "service"
    )
    slogs = command(services, "logs", cmd_services_logs, "a service's model-server log")
    slogs.add_argument("service")
    slogs.add_argument("--tail-bytes", type=_non_negative_int, metavar="N")

    predict = command(commands, "predict", cmd_predict, "classify images with a service")
    predict.add_argument("service", help="service id or name")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="PNG/JPEG files (any size)")
    return parser


def _task_params(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--param",
        action="append",
        metavar="K=V",
        help="a script parameter; V is read as JSON if it parses (2, true, [1,2]), else a "
        "string; repeatable",
    )
    sub.add_argument("--params-json", metavar="JSON", help="all parameters as a JSON object")


def _wait_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--wait", action="store_true", help="wait for the end, with a progress bar")
    sub.add_argument("--follow", "-f", action="store_true", help="like --wait, and stream the log")
    sub.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help="with --wait/--follow: give up after S s (exit 6)",
    )


def _non_negative_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return number


# -- main --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``aip`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    out = Output(json_mode=args.json)
    ctx = Context(args, out)
    try:
        return args.func(ctx)
    except UsageError as exc:
        out.error("USAGE", str(exc))
        return EXIT_USAGE
    except TaskFailedError as exc:
        hint = "" if exc.reason == "cancelled" else f"log: aip tasks logs {exc.task.id}"
        out.error(exc.code, str(exc), hint)
        return exit_code_for(exc.code)
    except TaskTimeoutError as exc:
        out.error(exc.code, str(exc))
        return exit_code_for(exc.code)
    except PlatformError as exc:
        out.error(exc.code, exc.message)
        return exit_code_for(exc.code)
    except KeyboardInterrupt:
        out.error("INTERRUPTED", "interrupted")
        return EXIT_INTERRUPTED
    finally:
        ctx.close()


if __name__ == "__main__":
    sys.exit(main())
