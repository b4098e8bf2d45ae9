"""Issue 13's CLI papercuts: a closed pipe, cancel's exit codes, decimal sizes, the progress in
``logs --follow`` (piped and on a terminal), the name rule in words, a pending task's place in
the queue. The pipe and terminal cases run ``python -m aip`` as a real process."""

from __future__ import annotations

import os
import pty
import select
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aip import Client, InvalidRequest
from aip.cli.output import size
from aip.cli.progress import describe_progress
from aip.records import Task
from tests.cli.conftest import Run, ingest
from tests.support import PlatformServers

# Three epochs a little apart, each with a log line and a progress point, as training does.
EPOCHS_SCRIPT = """
import time

import torch

from lakekit.models import save_model
from lakekit.progress import report


def run(input_path, output_path, params):
    for epoch in range(1, 4):
        print(f"epoch {epoch} done", flush=True)
        report(epoch=epoch, epochs=3, loss=1 / epoch, test_accuracy=0.5 + epoch / 10)
        time.sleep(0.3)
    save_model(output_path, torch.nn.Linear(2, 2), torch.zeros(1, 2))  # a training saves one
    return {"epochs": 3}
"""


def command(url: str, *args: str) -> list[str]:
    """The ``aip`` command as a process (this tree's, through the inherited PYTHONPATH)."""
    return [sys.executable, "-m", "aip", "--url", url, *args]


def submitted_id(err: str) -> str:
    line = next(line for line in err.splitlines() if line.startswith("submitted "))
    return line.split()[1]


def task_line(task: dict[str, object]) -> Task:
    base = {"id": "train-1", "kind": "training", "name": "t", "input": "i", "script": "s"}
    return Task.model_validate({**base, "output": "o", "created_at": "2026-01-01T00:00Z", **task})


# -- without a server ----------------------------------------------------------------------


def test_sizes_are_decimal_units():
    assert size(None) == "-" and size(0) == "0 B" and size(999) == "999 B"
    assert size(1000) == "1.0 kB" and size(1500) == "1.5 kB"
    assert size(1_000_000) == "1.0 MB" and size(999_960) == "1.0 MB"  # not "1000.0 kB"
    assert size(12_345_678) == "12.3 MB" and size(2_000_000_000) == "2.0 GB"
    assert size(3 * 10**15) == "3000.0 TB"


def test_a_pending_task_shows_its_place_in_the_queue_when_the_server_says():
    place = {"position": 2, "running": ["train-1"], "slots": 1}
    queued = task_line({"status": "pending", "queue": place})
    assert queued.queue_position == 2
    assert describe_progress(queued) == (None, None, "#2 in the queue, behind train-1")
    assert describe_progress(task_line({"status": "pending"})) == (None, None, "")
    # Once it runs, its progress is what counts.
    running = task_line({"status": "running", "progress": {"epoch": 1}})
    assert describe_progress(running)[2] == "epoch 1"


def test_help_into_a_closed_pipe_exits_quietly():
    assert into_a_closed_pipe(command("http://127.0.0.1:9", "--help")) == (141, "")
    code, err = into_a_closed_pipe(command("http://127.0.0.1:9", "tasks", "--bogus"))
    assert code == 2 and "aip tasks: error:" in err  # a usage error still says so


# -- against the platform ------------------------------------------------------------------


# As in a user's shell: stdout block-buffered when it is a pipe (tests may run unbuffered).
USER_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}


def into_a_closed_pipe(argv: list[str]) -> tuple[int, str]:
    """(exit status, stderr) of ``argv`` whose stdout has no reader from the start."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=USER_ENV)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the process writes: its first write finds no reader
    err = proc.stderr.read().decode()
    return proc.wait(60), err


def test_a_command_into_a_closed_pipe_exits_quietly(platform: PlatformServers):
    assert into_a_closed_pipe(command(platform.url, "tasks", "ls")) == (141, "")


@pytest.mark.slow
def test_models_show_into_a_closed_pipe_exits_quietly(
    platform: PlatformServers, served: tuple[str, str]
):
    model, _ = served
    assert into_a_closed_pipe(command(platform.url, "models", "show", model)) == (141, "")


def test_a_log_into_head_exits_quietly(aip: Run, platform: PlatformServers):
    # 1 MB of log: more than a pipe holds, so aip is still writing when head has left.
    flood = ingest("--param", "mb=1", name="cli_flood", script="fixtures/flood_stdout.py")
    code, _, err = aip(*flood, "--wait")
    assert code == 0, err
    task_id = submitted_id(err)

    def into_head(*args: str) -> subprocess.CompletedProcess[str]:
        pipeline = f"{shlex.join(command(platform.url, *args))} | head -1; exit ${{PIPESTATUS[0]}}"
        return subprocess.run(
            ["bash", "-c", pipeline], capture_output=True, text=True, timeout=60, env=USER_ENV
        )

    # One write of the whole log: the kernel may take it whole or in part before head leaves,
    # so only quiet is certain; the exit status is 0 or 141.
    shell = into_head("tasks", "logs", task_id)
    assert shell.returncode in (0, 141) and shell.stderr == ""
    assert shell.stdout == "x" * 1023 + "\n"
    # Streamed chunk by chunk: a write after head left certainly fails.
    shell = into_head("tasks", "logs", task_id, "--follow")
    assert shell.returncode == 141 and shell.stderr.split() == ["completed"]
    assert shell.stdout == "x" * 1023 + "\n"

    # Following while the log is written: the reader thread meets the closed pipe.
    shell = into_head(*flood, "--follow")
    assert shell.returncode == 141, shell.stderr
    assert "Traceback" not in shell.stderr and "Exception" not in shell.stderr
    assert shell.stderr.startswith("submitted ingest-")


def test_cancel_exits_0_then_4_once_ended_and_3_when_unknown(aip: Run, tmp_path: Path):
    pid_file = tmp_path / "cancel.pid"
    sleeper = ingest(
        "--param", f"pid_file={pid_file}", name="cli_cancel", script="fixtures/sleep_forever.py"
    )
    code, out, err = aip(*sleeper)
    assert code == 0, err
    task_id = out.split()[1]

    code, out, err = aip("tasks", "cancel", task_id)
    assert code == 0 and "failed (cancelled)" in out and err == ""
    code, out, err = aip("tasks", "cancel", task_id)
    assert code == 4 and "failed (cancelled)" in out and "TASK_ALREADY_FINISHED" in err

    code, _, err = aip(*ingest("--wait", name="cli_done", script="fixtures/exit_ok.py"))
    assert code == 0, err
    code, out, err = aip("tasks", "cancel", submitted_id(err))
    assert code == 4 and "completed" in out and "already ended (completed)" in err

    for unknown in ("ingest-000000000000", "train-000000000000", "nonsense"):
        code, out, err = aip("tasks", "cancel", unknown)
        assert code == 3 and out == "" and "TASK_NOT_FOUND" in err


def test_name_errors_say_the_rule_in_words(aip: Run, client: Client):
    code, _, err = aip(*ingest(name="bad name", script="fixtures/exit_ok.py"))
    assert code == 2 and "INVALID_REQUEST" in err
    assert "letters, digits, '_' or '-'" in err and "pattern" not in err
    with pytest.raises(InvalidRequest, match=r"model name 'bad\.model': use 1-64 letters"):
        client.training.submit(name="ok", input="d", script="s.py", output="bad.model")
    with pytest.raises(InvalidRequest, match="service name"):
        client.services.create("-dash", "m")


def test_logs_follow_shows_the_progress_with_the_log(
    aip: Run, platform: PlatformServers, capsys: pytest.CaptureFixture[str]
):
    scripts = Path(platform.dp.env["DP_SCRIPTS_ROOT"])
    (scripts / "cli").mkdir(exist_ok=True)
    (scripts / "cli" / "epochs.py").write_text(EPOCHS_SCRIPT)
    rows = ingest(
        "--param",
        "rows=3",
        "--wait",
        name="cli_epochs_rows",
        script="fixtures/write_rows.py",
        output="cli_epochs_rows",
    )
    assert aip(*rows)[0] == 0
    train = ["--name", "cli_epochs", "--input", "cli_epochs_rows", "--script", "cli/epochs.py"]
    code, out, err = aip("train", *train, "--output", "cli_epochs_model")
    assert code == 0, err
    task_id = out.split()[1]
    assert task_id.startswith("train-")

    # Piped: the log on stdout as written, the progress on stderr, a line per change.
    code, out, err = aip("tasks", "logs", task_id, "--follow")
    assert code == 0, err
    assert [line for line in out.splitlines() if line] == [f"epoch {n} done" for n in (1, 2, 3)]
    assert "epoch 3/3 · loss 0.3333 · acc 0.8" in err and "completed" in err

    # On a terminal: one screen, the log above a live progress line.
    screen = on_a_terminal(command(platform.url, "tasks", "logs", task_id, "--follow"))
    assert "epoch 1 done" in screen and "epoch 3 done" in screen
    assert "epoch 3/3 · loss 0.3333 · acc 0.8" in screen and "100%" in screen


def on_a_terminal(argv: list[str], timeout: float = 60) -> str:
    """What ``argv`` shows with stdout and stderr on a pseudo-terminal."""
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "160", "LINES": "40", "TERM": "xterm-256color"}
    proc = subprocess.Popen(argv, stdin=follower, stdout=follower, stderr=follower, env=env)
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(leader, 65536)
            except OSError:  # EIO: the process closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        assert proc.wait(10) == 0, b"".join(chunks).decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(leader)
    return b"".join(chunks).decode(errors="replace")
